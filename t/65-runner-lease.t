# A worker claims of a provider only what its share of the provider's
# rate can call within half a lease: with a slow provider (60 calls a
# minute) and a short lease (6 s), a run of 21 jobs takes twenty seconds
# and no job outlives its lease, so none is claimed, and asked, twice.
# A job waits for its call at most a second or two of the half lease it
# was sized to: a busy machine has seconds to spare before a lease ends,
# while a worker claiming the whole run at once would see most of it
# expire.

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

done_testing;
