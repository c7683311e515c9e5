# A worker claims of a provider only what its share of the provider's
# rate can call within half a lease: with a slow provider (60 calls a
# minute) and a short lease (6 s), a run of 21 jobs takes twenty seconds
# and no job outlives its lease, so none is claimed, and asked, twice.
# A job waits for its call at most a second or two of the half lease it
# was sized to: a busy machine has seconds to spare before a lease ends,
# while a worker claiming the whole run at once would see most of it
# expire.
#
# And a job is ended only by the claim that holds it: when a job's lease
# is lost while its call is under way (as a stalled worker or database
# would lose it) and the same worker claims it again, the first call's
# answer, coming while the second call is under way, stores nothing; the
# second's is stored, once.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $sim = DR::Sim->start(latency_ms => 30, seed => 2, rpm => 60);

$ENV{DR_TEST_KEY_OPENAI} = 'sim-test-key-openai-0001';
my $base = $sim->base_url('openai');
my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF2");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=$base model=gpt-4o-mini
                key_env=DR_TEST_KEY_OPENAI rpm=60;
    dr_runner on;
    dr_runner_lease 6s;
    dr_schedule off;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF2
my @domains = map { "brand$_.com" } 1 .. 7;
$t->dbh->do('INSERT INTO domains (domain, category) VALUES '
    . join(',', map { "('$_', 'Tech')" } @domains));
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $r = $t->http('POST', '/admin/runs', headers => { 'X-API-Key' => $admin },
    body => encode_json({ models => ['openai/gpt-4o-mini'] }));
is($r->{json}{jobs}, 21, '7 domains x 1 model x 3 prompts');
my $run = $r->{json}{run_id};

my $t0 = time;
my $status = $t->wait_run($run, 300);
my $took = time - $t0;
is($status, 'done', 'the run ends');

my ($stored, $max_attempts) = $t->dbh->selectrow_array(q{
    SELECT (SELECT count(*) FROM responses WHERE run_id = $1),
           (SELECT max(attempts) FROM jobs WHERE run_id = $1)}, undef, $run);
is($stored, 21, 'every answer stored');
is($max_attempts, 1, 'no job claimed twice');
my $stats = $sim->stats;
is($stats->{totals}{requests}, 21, 'the provider asked once per job');
is($sim->over_limit, 0, 'never over its limit');
diag(sprintf '21 jobs in %.1f s at 60 calls a minute', $took);

$t->stop;

# the late answer of a lost claim
$sim->configure(latency_ms => 5000, rpm => 6000);

my $u = DR::Test->new(db => 1, no_start => 1, workers => 1, http => <<"EOF2");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=$base model=gpt-4o-mini
                key_env=DR_TEST_KEY_OPENAI rpm=6000;
    dr_runner on;
    dr_runner_lease 60s;
    dr_schedule off;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF2
$u->dbh->do(q{INSERT INTO domains (domain, category)
              VALUES ('late.example.com', 'Tech')});
$u->start;
$sim->reset;

$admin = $u->create_key(tier => 'admin');
$r = $u->http('POST', '/admin/runs', headers => { 'X-API-Key' => $admin },
    body => encode_json({ domains => ['late.example.com'],
                          models => ['openai/gpt-4o-mini'],
                          prompts => ['business_analysis'] }));
is($r->{json}{jobs}, 1, 'a run of one job');
$run = $r->{json}{run_id};
my $dbh = $u->dbh;
my ($job) = $dbh->selectrow_array('SELECT id FROM jobs WHERE run_id = ?',
    undef, $run);

# the first call is under way: answered in about 5 s
my $deadline = time + 20;
sleep 0.1 while time < $deadline && $sim->stats->{totals}{requests} < 1;
is($sim->stats->{totals}{requests}, 1, 'the first call is under way');

# the second call, whenever it comes, is answered in about 12 s: the
# first's answer comes while it is under way
$sim->configure(latency_ms => 12000);
my ($token) = $dbh->selectrow_array(
    'SELECT lease_token FROM jobs WHERE id = ?', undef, $job);
$dbh->do(q{UPDATE jobs SET lease_expires = now() - interval '1 second'
           WHERE id = ?}, undef, $job);

$deadline = time + 20;
my ($attempts, $token2);
while (time < $deadline) {
    ($attempts, $status, $token2) = $dbh->selectrow_array(
        'SELECT attempts, status, lease_token FROM jobs WHERE id = ?',
        undef, $job);
    last if $attempts == 2 && $status eq 'leased';
    sleep 0.1;
}
is("$attempts $status", '2 leased', 'the job was claimed again');
ok(defined $token && defined $token2 && $token ne $token2,
    'under a token of its own');

# the first answer comes
my $refused = "job $job was no longer held by its claim when its outcome "
    . 'came: nothing stored';
ok($u->wait_log(qr/\Q$refused\E/, 15),
    'the first call\'s answer is refused: its claim was lost');
($stored) = $dbh->selectrow_array(
    'SELECT count(*) FROM responses WHERE job_id = ?', undef, $job);
($status) = $dbh->selectrow_array('SELECT status FROM jobs WHERE id = ?',
    undef, $job);
is($stored, 0, 'and nothing is stored');
is($status, 'leased', 'the job stays the second claim\'s');

# the second answer comes
is($u->wait_run($run, 30), 'done', 'the run ends');
my $rows = $dbh->selectall_arrayref(
    'SELECT latency_ms FROM responses WHERE job_id = ?', undef, $job);
is(scalar @$rows, 1, 'the job is stored once');
cmp_ok($rows->[0][0] // 0, '>=', 9000,
    'with the answer of the claim that held it (the 12 s call)');
is($sim->stats->{totals}{requests}, 2, 'the provider asked twice');

$u->stop;

done_testing;
