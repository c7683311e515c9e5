# The crawl survives its dependencies failing: a run of 200 domains x 8
# models x 3 prompts (4,800 jobs) ends with every job done and every
# answer stored exactly once while the simulator answers 429s, 500s,
# timeouts, malformed JSON and HTML error pages, a worker is killed with
# SIGKILL, PostgreSQL is restarted and nginx is reloaded, all mid-run.
# Everything is counted in the database.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

plan skip_all => 'too slow under valgrind' if $ENV{DR_VALGRIND};

my $rpm = 1200;
my $sim = DR::Sim->start(latency_ms => 40, seed => 5, rpm => $rpm,
    timeout_hold_s => 3,
    faults => '429=0.02,500=0.03,timeout=0.01,malformed=0.02,html=0.01,'
        . 'empty_choices=0.01');

# a private cluster: it is restarted mid-run
my $pg = DR::Test::Cluster->private;
my $t = DR::Test->new(db => 1, cluster => $pg, no_start => 1,
                      http => $sim->crawler_conf(rpm => $rpm, lease => '15s'));
$t->{expected_alert} = qr/worker process \d+ exited on signal 9/;

$t->dbh->do(q{INSERT INTO domains (domain, category)
    SELECT 'brand' || i || '.com', 'Tech' FROM generate_series(1, 200) i});
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $r = $t->http('POST', '/admin/runs', headers => { 'X-API-Key' => $admin },
    body => '{}');
is($r->{status}, 202, 'a run of everything is queued');
is($r->{json}{jobs}, 4800, '200 domains x 8 models x 3 prompts');
my $run = $r->{json}{run_id};

# enough attempts that the injected faults alone cannot kill a job
$t->dbh->do('UPDATE jobs SET max_attempts = 10 WHERE run_id = ?', undef,
    $run);

sub done_count {
    my $n = eval {
        my $dbh = $t->dbh;
        my ($c) = $dbh->selectrow_array(q{SELECT count(*) FROM jobs
            WHERE run_id = ? AND status = 'done'}, undef, $run);
        $dbh->disconnect;
        $c;
    };
    return $n // -1;
}

sub wait_done {
    my ($n, $limit) = @_;
    my $c;
    DR::Test::wait_for(sub { ($c = done_count()) >= $n }, $limit, 0.25);
    return $c;
}

my $t0 = time;

ok(wait_done(1000, 600) >= 1000, 'a quarter done');
my ($victim) = $t->worker_pids;
ok(kill('KILL', $victim), "worker $victim killed with SIGKILL");

ok(wait_done(2000, 600) >= 2000, 'half done');
my $from = $t->log_size;
$pg->stop;
ok($t->wait_log(qr/PostgreSQL .* connection lost|could not connect/, 60,
    $from), 'the node saw PostgreSQL go');
sleep 2;    # and it stays away a while: answers coming meanwhile wait
$pg->start;
pass('PostgreSQL restarted');

ok(wait_done(3000, 600) >= 3000, 'three quarters done');
$t->reload;
pass('nginx reloaded');

my $done = wait_done(4800, 900);
my $took = time - $t0;
is($done, 4800, 'every job done');

my $dbh = $t->dbh;
my ($n, $keys, $dead, $sim_n) = $dbh->selectrow_array(q{
    SELECT count(*), count(DISTINCT (domain_id, model_id, prompt_id)),
           (SELECT count(*) FROM jobs WHERE run_id = $1
              AND status <> 'done'),
           count(*) FILTER (WHERE simulated)
    FROM responses WHERE run_id = $1}, undef, $run);
is($n, 4800, 'one answer stored per job');
is($keys, 4800, 'none stored twice');
is($dead, 0, 'no job left undone');
is($sim_n, 4800, 'all marked simulated');

my ($garbage) = $dbh->selectrow_array(q{SELECT count(*) FROM responses
    WHERE run_id = ? AND (answer = '' OR answer LIKE '%<html%'
                          OR http_status <> 200)}, undef, $run);
is($garbage, 0, 'no error page or empty answer stored as an answer');

my ($status, $in, $sin) = $dbh->selectrow_array(q{SELECT r.status,
    r.input_tokens, (SELECT sum(input_tokens) FROM responses
                     WHERE run_id = r.id)
    FROM runs r WHERE r.id = ?}, undef, $run);
is($status, 'done', 'the run is done');
is($in, $sin, 'its tokens counted once per stored answer');

my ($retried) = $dbh->selectrow_array(q{SELECT count(*) FROM jobs
    WHERE run_id = ? AND attempts > 1}, undef, $run);
my $stats = $sim->stats;
ok($retried > 50, "$retried jobs needed more than one attempt");
is($sim->over_limit, 0, 'no call over a provider\'s limit');

# the rate: 600 jobs a provider at $rpm a minute
my $ideal = 600 / ($rpm / 60);
diag(sprintf '4800 jobs in %.1f s (%.0f s at the providers\' limit), '
    . '%d calls, %d retried jobs: calls at %.1f%% of the allowed rate',
    $took, $ideal, $stats->{totals}{requests}, $retried,
    100 * $stats->{totals}{requests} / $took / (8 * $rpm / 60));

unlike($t->error_log, qr/sim-test-key/, 'no provider key in the error log');

$t->stop;

done_testing;
