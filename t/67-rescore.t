# POST /admin/rescore writes every domain's scores again from the stored
# answers, its runs in order: rows that were lost or changed (a formula
# changed, a worker died between the commit of a last job and its check)
# come back exactly as the runner wrote them; a (run, domain) with jobs
# left is counted, not scored; bad input changes nothing.  A (run,
# domain) left unscored is also found by the node itself.

use strict;
use warnings;

use File::Temp qw(tempdir);
use FindBin;
use IO::Socket::INET;
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
my $sim = DR::Sim->start(latency_ms => 10, seed => 4, know_all => 1,
                         forget_file => $forget);
my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 600, api => 1,
                                                 cache => 1));
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech'),
                  ('notion.so', 'Tech')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($_[3] // $admin, @_[0 .. 2]) }

# every column but the time it was computed, one row per (domain, run)
my $cols = q{d.domain, s.run_id, s.memory_score, s.ai_consensus, s.cohesion,
    s.drift_score, s.trend, s.volatility, s.score, s.models_positive,
    s.models_neutral, s.models_negative, s.models_tracking,
    s.response_count, s.reputation_risk, s.risk_level, s.alerts::text,
    s.details::text};
sub rows {
    return $dbh->selectall_arrayref(qq{SELECT $cols FROM domain_scores s
        JOIN domains d ON d.id = s.domain_id ORDER BY 1, 2});
}
sub computed {
    return { map { ("$_->[0]/$_->[1]" => $_->[2]) } @{ $dbh->selectall_arrayref(
        q{SELECT d.domain, s.run_id, s.computed_at::text FROM domain_scores s
          JOIN domains d ON d.id = s.domain_id}) } };
}

sub crawl {
    my $r = admin('POST', '/admin/runs', '{}');
    my $run = $r->{json}{run_id};
    is($t->wait_run($run, 300), 'done', "run $run crawled");
    DR::Test::wait_for(sub {
        $dbh->selectrow_array(
            'SELECT count(*) FROM domain_scores WHERE run_id = ?',
            undef, $run) == 3;
    }, $ENV{DR_VALGRIND} ? 240 : 60);
    return $run;
}

# two runs, the second forgetting notion.so: its drift and trend need the
# first run's answers and scores
my $run1 = crawl();
open $fh, '>', $forget or die;
print $fh "notion.so\n";
close $fh;
my $run2 = crawl();

my $written = rows();
is(scalar @$written, 6, 'the runner wrote 3 domains x 2 runs');

# a run made by hand with one job that cannot be claimed for a day
my ($run3) = $dbh->selectrow_array(q{INSERT INTO runs (kind, scope, status,
    total_jobs) VALUES ('on_demand', '{}', 'queued', 1) RETURNING id});
$dbh->do(q{INSERT INTO jobs (run_id, domain_id, model_id, prompt_id,
    not_before) SELECT ?, d.id, (SELECT min(id) FROM models WHERE active),
    (SELECT min(id) FROM prompts WHERE active), now() + interval '1 day'
    FROM domains d WHERE d.domain = 'stripe.com'}, undef, $run3);

# the damage: a lost row, whose successor reads it, and changed figures
$dbh->do(q{DELETE FROM domain_scores WHERE run_id = ? AND domain_id =
    (SELECT id FROM domains WHERE domain = 'notion.so')}, undef, $run1);
$dbh->do(q{UPDATE domain_scores SET memory_score = 0, score = 0,
    details = '{}', alerts = '{}' WHERE run_id = ?}, undef, $run2);
isnt(scalar @{ rows() }, 6, 'a row is gone');

# bad input: a clear error, nothing written
my $before = computed();
my $user = $t->create_key(tier => 'free');
for my $case (
    [POST => '{"domains": "stripe.com"}', 400, 'invalid_body', 'not a list'],
    [POST => '{"domains": []}', 400, 'invalid_body', 'an empty list'],
    [POST => '{"domains": ["not a domain!"]}', 400, 'invalid_body',
        'an invalid name'],
    [POST => '{"domain": ["stripe.com"]}', 400, 'invalid_body',
        'an unknown field'],
    [POST => '["stripe.com"]', 400, 'invalid_body', 'not an object'],
    [POST => '{"domains": [', 400, 'invalid_json', 'broken JSON'],
    [GET => undef, 405, 'method_not_allowed', 'GET'],
    [POST => '{}', 403, 'forbidden', 'a key of the free tier', $user],
) {
    my ($method, $body, $status, $error, $what, $key) = @$case;
    my $r = admin($method, '/admin/rescore', $body, $key);
    is($r->{status}, $status, "$what: $status");
    is($r->{json}{error}, $error, "$what: $error");
}
is(admin('GET', '/admin/rescore')->{headers}{allow}, 'POST',
   '405 says what is allowed');
is_deeply(computed(), $before, 'bad input rescored nothing');

# one domain: only its rows are written
my $r = admin('POST', '/admin/rescore', '{"domains": ["github.com"]}');
is($r->{status}, 200, 'one domain rescored');
is_deeply([@{ $r->{json} }{qw(domains runs scored unfinished failed)}],
          [1, 2, 2, 0, 0], 'its two runs') or diag(explain($r->{json}));
my $after = computed();
for my $k (sort keys %$before) {
    if ($k =~ m{^github\.com/}) {
        isnt($after->{$k}, $before->{$k}, "$k written again");
    } else {
        is($after->{$k}, $before->{$k}, "$k left alone");
    }
}

# the damaged rows, as the API caches them: stripe.com fell to 0 in run 2
# (github.com was rescored above; notion.so lost its run 1 row)
my @cached = map { $_->{domain} }
    @{ $t->get('/api/shadows')->{json}{declining} // [] };
is_deeply(\@cached, ['stripe.com'], 'the damage is what the API shows');

# everything: the rows are the runner's again, the unfinished run is not
$r = admin('POST', '/admin/rescore');
is($r->{status}, 200, 'all rescored, without a body');
is_deeply([@{ $r->{json} }{qw(domains runs scored unfinished failed)}],
          [3, 7, 6, 1, 0], '3 domains, 7 (run, domain), 1 with a job left')
    or diag(explain($r->{json}));
is_deeply(rows(), $written, 'every row as the runner wrote it')
    or diag(explain(rows()));
is($dbh->selectrow_array('SELECT count(*) FROM domain_scores WHERE run_id = ?',
    undef, $run3), 0, 'no row for the run with a job left');
is($dbh->selectrow_array('SELECT status FROM runs WHERE id = ?', undef,
    $run3), 'queued', 'and that run is not ended');

# the nodes are told once for the rows written: the cached answer goes
my $shadows;
DR::Test::wait_for(sub {
    $shadows = $t->get('/api/shadows')->{json}{declining} // [];
    @$shadows == 1 && $shadows->[0]{domain} eq 'notion.so';
}, 30, 0.05);
is_deeply([map { $_->{domain} } @$shadows], ['notion.so'],
          'the API answers from the rescored rows, its cache dropped');

# a client that leaves does not stop the work
$dbh->do('DELETE FROM domain_scores WHERE run_id = ?', undef, $run2);
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
    or die "connect: $!";
print $s "POST /admin/rescore HTTP/1.1\r\nHost: test\r\n"
    . "X-API-Key: $admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
close $s;
DR::Test::wait_for(sub { @{ rows() } == 6 }, $ENV{DR_VALGRIND} ? 240 : 60);
is_deeply(rows(), $written, 'rescored after the client left');

# a (run, domain) whose jobs ended a while ago without scores (its last
# job's worker died before the check) is found by the node itself
$dbh->do(q{UPDATE jobs SET updated_at = now() - interval '2 minutes'
           WHERE run_id = ?}, undef, $run1);
$dbh->do(q{DELETE FROM domain_scores WHERE run_id = ? AND domain_id =
    (SELECT id FROM domains WHERE domain = 'github.com')}, undef, $run1);
# the node looks every minute: the deadline leaves it two looks and more
my $t0 = time;
DR::Test::wait_for(sub { @{ rows() } == 6 }, 180, 0.5);
is_deeply(rows(), $written, 'a domain left unscored is scored by the '
    . 'node, without asking')
    and diag(sprintf 'scored %.0f s after it was lost', time - $t0);
ok($t->wait_log(qr/1 \(run, domain\) whose jobs ended have no scores/),
   'and the node says so');

$t->stop;

done_testing;
