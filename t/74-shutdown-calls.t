# A worker told to stop while provider calls are under way: nginx's
# graceful stop does not wait for them (their timers do not hold a
# worker), so the worker ends them as it leaves, their connections
# closed, and nginx reports no socket left open.  Their jobs are not
# lost: their leases expire and another worker takes them.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use JSON::PP;
use Test::More;

# answers that take a minute: every call is still under way at the stop
my $sim = DR::Sim->start(latency_ms => 60000, seed => 4);

$ENV{DR_TEST_KEY_OPENAI} = 'sim-test-key-FAKE-openai-0074';
my $base = $sim->base_url('openai');
my $conf = <<"EOF2";
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_provider name=openai base=$base model=gpt-4o-mini
                key_env=DR_TEST_KEY_OPENAI;
    dr_runner on;
    dr_runner_lease 5s;
    dr_schedule off;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF2

my $t = DR::Test->new(db => 1, no_start => 1, http => $conf);
my @domains = map { "brand$_.com" } 1 .. 4;
$t->dbh->do('INSERT INTO domains (domain, category) VALUES '
    . join(',', map { "('$_', 'Tech')" } @domains));
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $r = $t->http('POST', '/admin/runs', headers => { 'X-API-Key' => $admin },
    body => encode_json({ models => ['openai/gpt-4o-mini'] }));
is($r->{json}{jobs}, 12, '4 domains x 1 model x 3 prompts');

ok(DR::Test::wait_for(sub {
    ($sim->stats(recent => 0)->{totals}{requests} // 0) >= 12
}, 60, 0.1), 'every call is under way at the simulator');

# QUIT: the harness fails the file on any [alert], such as nginx's "open
# socket left in connection" of a worker that left sockets behind
$t->stop;

my $dbh = $t->dbh;
is($dbh->selectrow_array('SELECT count(*) FROM responses'), 0,
   'no answer was stored');
is($dbh->selectrow_array(q{SELECT count(*) FROM jobs
    WHERE status IN ('queued', 'leased')}), 12,
   'every job is still to do');

done_testing;
