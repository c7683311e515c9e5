# The crawl: POST /admin/runs queues one job per domain, model and prompt;
# the queue's workers (dr_runner on) in two nginx workers claim them with
# FOR UPDATE SKIP LOCKED, ask the provider simulator, and store every
# answer exactly once.  Faulty answers are retried with backoff; a job
# whose every attempt failed ends dead with its error, and its run ends.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 30, seed => 11,
                         faults => '500=0.05,429=0.05,malformed=0.03');

my $t = DR::Test->new(db => 1, no_start => 1,
                      http => $sim->crawler_conf(rpm => 600));
$t->dbh->do(q{INSERT INTO domains (domain, category)
              VALUES ('stripe.com', 'Finance'), ('github.com', 'Tech'),
                     ('notion.so', 'Tech')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
sub admin { $t->keyed($admin, @_) }

sub wait_run {
    my ($run, $limit) = @_;
    my $r;
    DR::Test::wait_for(sub {
        $r = admin('GET', "/admin/runs/$run");
        ($r->{json}{status} // '') eq 'done';
    }, $limit, 0.25);
    return $r->{json} // {};
}

my $t0 = time;
my $r = admin('POST', '/admin/runs', '{}');
is($r->{status}, 202, 'a run of everything is queued');
is($r->{json}{jobs}, 3 * 8 * 3, '72 jobs');
my $run = $r->{json}{run_id};

my $p = wait_run($run, 300);
my $took = time - $t0;
is($p->{status}, 'done', 'the run ends') or diag(explain($p));
is($p->{done}, 72, 'every job done');
is($p->{dead}, 0, 'none dead: the faults were retried');

my $dbh = $t->dbh;
my ($n, $keys, $sim_n) = $dbh->selectrow_array(q{
    SELECT count(*),
           count(DISTINCT (domain_id, model_id, prompt_id)),
           count(*) FILTER (WHERE simulated)
    FROM responses WHERE run_id = ?}, undef, $run);
is($n, 72, 'one answer stored per job');
is($keys, 72, 'no answer stored twice');
is($sim_n, 72, 'each marked as the simulator\'s');

my ($empty) = $dbh->selectrow_array(q{SELECT count(*) FROM responses
    WHERE run_id = ? AND (answer = '' OR http_status <> 200
                          OR latency_ms <= 0)}, undef, $run);
is($empty, 0, 'every answer has text, status 200 and a latency');

my ($in, $out, $cost, $started, $finished) = $dbh->selectrow_array(q{
    SELECT input_tokens, output_tokens, cost, started_at IS NOT NULL,
           finished_at IS NOT NULL FROM runs WHERE id = ?}, undef, $run);
my ($sin, $sout, $scost) = $dbh->selectrow_array(q{
    SELECT sum(input_tokens), sum(output_tokens), sum(cost)
    FROM responses WHERE run_id = ?}, undef, $run);
ok($in > 0 && $out > 0, 'the run counts its tokens');
is($in, $sin, 'input tokens: the run\'s total is the answers\' sum');
is($out, $sout, 'output tokens too');
ok($cost > 0 && abs($cost - $scost) < 0.000002, 'and the cost')
    or diag("run $cost, answers $scost");
ok($started && $finished, 'the run has its start and its end');

my ($retried) = $dbh->selectrow_array(q{SELECT count(*) FROM jobs
    WHERE run_id = ? AND attempts > 1}, undef, $run);
my $stats = $sim->stats;
ok($stats->{totals}{requests} > 72, 'the simulator saw retries: '
    . "$stats->{totals}{requests} calls for 72 jobs, $retried jobs retried");
is($sim->over_limit, 0, 'no call over a provider\'s limit');

my ($owners) = $dbh->selectrow_array(q{SELECT count(*) FROM jobs
    WHERE run_id = ? AND (lease_owner IS NOT NULL OR status <> 'done')},
    undef, $run);
is($owners, 0, 'every job done, no lease left');
diag(sprintf '72 jobs in %.1f s', $took);

# every attempt fails: the job ends dead with its error, and the run ends
$sim->configure(faults => 'openai:500=1');
$r = admin('POST', '/admin/runs', encode_json({ domains => ['stripe.com'],
    models => ['openai/gpt-4o-mini', 'sonar'],
    prompts => ['business_analysis'] }));
is($r->{json}{jobs}, 2, 'a run of 2 jobs');
my $run2 = $r->{json}{run_id};
$p = wait_run($run2, 300);
is($p->{status}, 'done', 'a run with a dead job ends');
is_deeply([@{$p}{qw(done dead)}], [1, 1], 'one done, one dead');
my ($attempts, $err) = $dbh->selectrow_array(q{SELECT attempts, last_error
    FROM jobs WHERE run_id = ? AND status = 'dead'}, undef, $run2);
is($attempts, 3, 'after its 3 attempts');
like($err // '', qr/500|server|error/i, 'with its error kept');
($n) = $dbh->selectrow_array(
    'SELECT count(*) FROM responses WHERE run_id = ?', undef, $run2);
is($n, 1, 'only the answer that came is stored');
$sim->configure(faults => '');

# bad answers (an HTML error page, no choices, invalid UTF-8, a 10 MB
# body, truncated JSON) are failed attempts with their error, never
# stored; an answer without usage is stored, its tokens unknown (NULL)
$sim->configure(faults => 'html=0.15,empty_choices=0.15,bad_utf8=0.15,'
    . 'huge=0.05,truncated=0.1,no_usage=0.1');
$r = admin('POST', '/admin/runs', encode_json({ domains => ['github.com'] }));
my $run3 = $r->{json}{run_id};
$dbh->do('UPDATE jobs SET max_attempts = 20 WHERE run_id = ?', undef,
    $run3);
$p = wait_run($run3, 300);
is($p->{status}, 'done', 'a run through bad answers ends');
is($p->{done}, 24, 'every job done');
my ($bad_stats) = $sim->stats->{totals}{faults};
my ($errors) = $dbh->selectcol_arrayref(q{SELECT DISTINCT last_error
    FROM jobs WHERE run_id = ? AND last_error IS NOT NULL}, undef, $run3);
($n, my $garbage) = $dbh->selectrow_array(q{SELECT count(*),
    count(*) FILTER (WHERE answer = '' OR answer LIKE '%<html%'
                     OR octet_length(answer) > 100000)
    FROM responses WHERE run_id = ?}, undef, $run3);
is($n, 24, 'one answer stored per job');
is($garbage, 0, 'no error page, empty or huge body stored as an answer');
diag('faults: ' . encode_json($bad_stats));
$sim->configure(faults => '');

# a job done twice stores once: the lease of a done job is put back by hand
$dbh->do(q{UPDATE jobs SET status = 'queued', attempts = 0,
           lease_owner = NULL WHERE run_id = ? AND id = (SELECT min(id)
           FROM jobs WHERE run_id = ?)}, undef, $run, $run);
ok(DR::Test::wait_for(sub {
    my ($s) = $dbh->selectrow_array(q{SELECT status FROM jobs
        WHERE id = (SELECT min(id) FROM jobs WHERE run_id = ?)}, undef,
        $run);
    $s eq 'done';
}, 120, 0.2), 'the job put back is done again');
($n) = $dbh->selectrow_array(
    'SELECT count(*) FROM responses WHERE run_id = ?', undef, $run);
is($n, 72, 'a job done again stores no second answer');
my ($in2) = $dbh->selectrow_array(
    'SELECT input_tokens FROM runs WHERE id = ?', undef, $run);
is($in2, $in, 'nor counts its tokens twice');

unlike($t->error_log, qr/sim-test-key/, 'no provider key in the error log');

$t->stop;

done_testing;
