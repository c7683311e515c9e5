# Scores from stored answers: when the last job of a (run, domain) ends,
# its domain_scores row is written from the run's answers and the
# previous run's.  Two simulated runs of the same domains, the simulator
# forgetting one brand in the second: /api/shadows lists exactly that
# one, with its two memory scores, and /api/drift reports its drift.

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $dir = tempdir(CLEANUP => 1);
my $forget = "$dir/forget.txt";
open my $fh, '>', $forget or die;
close $fh;

# every model knows every brand and answers alike each run, but for the
# one forgotten
my $sim = DR::Sim->start(latency_ms => 20, seed => 9, know_all => 1,
                         forget_file => $forget);
my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 600, api => 1));
$t->dbh->do(q{INSERT INTO domains (domain, category)
              VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech'),
                     ('notion.so', 'Tech')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub crawl {
    my $r = $t->http('POST', '/admin/runs',
        headers => { 'X-API-Key' => $admin }, body => '{}');
    my $run = $r->{json}{run_id};
    is($t->wait_run($run, 300), 'done', "run $run crawled");
    return $run;
}

# the rows follow the end of the run's last jobs: wait for the three
sub scores {
    my ($run) = @_;
    my $rows;
    DR::Test::wait_for(sub {
        $rows = $t->dbh->selectall_hashref(q{SELECT d.domain, s.*
            FROM domain_scores s JOIN domains d ON d.id = s.domain_id
            WHERE s.run_id = ?}, 'domain', undef, $run);
        keys %$rows == 3;
    }, $ENV{DR_VALGRIND} ? 240 : 60);
    return $rows;
}

my $run1 = crawl();
my $s1 = scores($run1);
is_deeply([sort keys %$s1], [qw(github.com notion.so stripe.com)],
    'one row of scores per domain of the first run');
for my $d (sort keys %$s1) {
    ok($s1->{$d}{memory_score} > 50, "$d is remembered: "
        . "memory $s1->{$d}{memory_score}");
    is($s1->{$d}{response_count}, 24, "$d: from its 24 answers");
    is($s1->{$d}{models_tracking}, 8, "$d: by 8 models");
    my $det = decode_json($s1->{$d}{details});
    is(scalar(keys %{ $det->{models} }), 8, "$d: each model's verdict kept");
}

# the second run: the models forget notion.so
open $fh, '>', $forget or die;
print $fh "notion.so\n";
close $fh;

my $run2 = crawl();
my $s2 = scores($run2);
is(scalar(keys %$s2), 3, 'one row per domain of the second run');
ok($s2->{'notion.so'}{memory_score} < $s1->{'notion.so'}{memory_score},
    'the forgotten brand\'s memory fell: '
    . "$s1->{'notion.so'}{memory_score} to $s2->{'notion.so'}{memory_score}");
for my $d (qw(github.com stripe.com)) {
    ok($s2->{$d}{memory_score} >= $s1->{$d}{memory_score},
        "$d\'s did not");
}

my $r = $t->get('/api/shadows');
is($r->{status}, 200, '/api/shadows answers');
my @declining = @{ $r->{json}{declining} // [] };
is_deeply([map { $_->{domain} } @declining], ['notion.so'],
    'it lists exactly the forgotten brand') or diag(explain(\@declining));
my $round = sub { sprintf '%.1f', $_[0] };
is($round->($declining[0]{previousScore} // -1),
   $round->($s1->{'notion.so'}{memory_score}), 'with its previous score');
is($round->($declining[0]{currentScore} // -1),
   $round->($s2->{'notion.so'}{memory_score}), 'and its current score');
is(scalar @{ $declining[0]{modelsForgetting} // [] }, 8,
   'forgotten by all eight models');

$r = $t->get('/api/drift/notion.so');
is($r->{status}, 200, '/api/drift answers');
my $drift = $r->{json}{drift} // {};
ok(($drift->{drift_score} // 0) > 0.3,
   "its drift is reported: $drift->{drift_score}") or diag(explain($r->{json}));
is_deeply([@{$drift}{qw(drift_direction severity)}], ['declining', 'decayed'],
   'declining, decayed');
is($t->get('/api/drift/stripe.com')->{json}{drift}{drift_score}, 0,
   'a brand answered alike twice has no drift');

# scoring again writes the same row
my ($n) = $t->dbh->selectrow_array(
    'SELECT count(*) FROM domain_scores WHERE run_id IN (?, ?)', undef,
    $run1, $run2);
is($n, 6, 'six rows, no more');

$t->stop;

done_testing;
