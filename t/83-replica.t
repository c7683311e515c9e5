# A real streaming read replica: a primary of the test's own, a standby
# made from it with pg_basebackup on its own port, and nginx with
# dr_pg_replica pointing at the standby.  Public reads are answered from
# the standby (a change made on the primary while the standby's replay is
# paused stays unseen), writes go to the primary, a stopped standby is
# skipped (reads still answer 200) and used again when it returns, and a
# standby paused in replay never makes a revoked key or a retired domain
# come back.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $primary = DR::Test::Cluster->private;
my $t = DR::Test->new(db => 1, cluster => $primary, no_start => 1);
DR::Fixture::load($t->dbh);

my $standby = $primary->standby;
ok($standby->catch_up, 'the standby has replayed the test data');
is($standby->super('SELECT pg_is_in_recovery()'), 't',
    'it is a standby (in recovery)');
is($primary->super('SELECT count(*) FROM pg_stat_replication '
    . "WHERE state = 'streaming'"), 1, 'streaming from the primary');

my $replica = "host=$standby->{socket} port=$standby->{port} "
    . "user=$standby->{user} dbname=$t->{dbname}";

$t->write_conf(<<"EOF");
    dr_pg "%%PG%%";
    dr_pg_replica "$replica";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier anonymous rate=100000/s burst=100000 daily=0;
    dr_tier free rate=100000/s burst=100000 daily=0;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth optional; dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
$t->start;
ok($t->wait_log(qr/listening for notifications/), 'the node is up');

my $admin = $t->create_key(tier => 'admin');
my $dbh = $t->dbh;

sub category {
    my $r = $t->get('/api/domains/alpha.example/public');
    return $r->{status} == 200
        ? $r->{json}{business_profile}{category} : "status $r->{status}";
}

# -- reads come from the standby --------------------------------------------

is(category(), 'Technology', 'a public read answers');
ok($standby->nginx_backends($t->{dbname}) > 0,
    'nginx workers hold connections to the standby');

$standby->replay_pause;
$dbh->do(q{UPDATE domains SET category = 'Changed on the primary'
           WHERE domain = 'alpha.example'});

my @seen = map { category() } 1 .. 10;
is_deeply(\@seen, [('Technology') x 10],
    'with replay paused, ten reads show what the standby has, not the '
    . 'primary\'s change: reads are answered by the standby');

# -- writes go to the primary -------------------------------------------------

my $r = $t->keyed($admin, 'POST', '/admin/domains',
    '{"domains": ["written.example"], "category": "Writes"}');
is($r->{status}, 200, 'a write answers while the standby is paused')
    or diag($r->{content});
is($r->{json}{added}, 1, 'it added the domain');
my ($on_primary) = $dbh->selectrow_array(
    q{SELECT count(*) FROM domains WHERE domain = 'written.example'});
is($on_primary, 1, 'the row is on the primary');
my $sdbh = $standby->dbh($t->{dbname});
my ($on_standby) = $sdbh->selectrow_array(
    q{SELECT count(*) FROM domains WHERE domain = 'written.example'});
is($on_standby, 0, 'and not yet on the paused standby');

$standby->replay_resume;
ok($standby->catch_up, 'replay resumed, the standby catches up');
is(category(), 'Changed on the primary', 'reads now show the change');
($on_standby) = $sdbh->selectrow_array(
    q{SELECT count(*) FROM domains WHERE domain = 'written.example'});
is($on_standby, 1, 'and the written row reached the standby');
$sdbh->disconnect;

# -- a stopped standby is skipped, and used again when it returns ------------

$standby->stop;
my $t0 = time;
my (@first, @after);
while (time - $t0 < 1) {
    push @first, $t->get('/api/domains/alpha.example/public')->{status};
    sleep 0.02;
}
@after = map { $t->get('/api/domains/alpha.example/public')->{status} }
    1 .. 20;
is_deeply(\@after, [(200) x 20],
    'a second after the standby stopped, every read answers 200');
is_deeply([ grep { $_ != 200 } @first ], [],
    'and none failed in that second, while it was going away ('
    . scalar(@first) . ' reads)');

$r = $t->get('/readyz');
is($r->{status}, 200, 'the node stays ready without its replica');
is_deeply($r->{json}{replicas}, [ { name => 'replica 1', status => 'down' } ],
    '/readyz reports the replica down')
    or diag(explain($r->{json}));

$standby->start;
$standby->replay_pause;
$dbh->do(q{UPDATE domains SET category = 'Second change'
           WHERE domain = 'alpha.example'});

# each worker tries its replica again after a back-off (at most 2 s): then
# ten reads in a row show what only the standby has
my ($row, $n) = (0, 0);
$t0 = time;
while (time - $t0 < 10 && $row < 10) {
    $row = category() eq 'Changed on the primary' ? $row + 1 : 0;
    $n++;
    sleep 0.05;
}
is($row, 10, 'the standby back, reads are answered by it again');
diag(sprintf 'all reads on the standby again after %.1f s (%d reads)',
    time - $t0, $n);
ok($standby->nginx_backends($t->{dbname}) > 0,
    'nginx workers hold connections to it again');
is($t->get('/readyz')->{json}{replicas}[0]{status}, 'up',
    '/readyz reports the replica up');
$standby->replay_resume;
ok($standby->catch_up, 'the standby catches up');

# -- a paused standby never brings back a revoked key ------------------------

my $key = $t->create_key(tier => 'free', name => 'to revoke');
my ($prefix) = $key =~ /^dr_([a-z0-9]+)_/;
my ($key_id) = $dbh->selectrow_array(
    'SELECT id FROM api_keys WHERE prefix = ?', undef, $prefix);
ok($standby->catch_up, 'the new key reached the standby');
is($t->get('/api/stats', headers => { 'X-API-Key' => $key })->{status}, 200,
    'the key works');

$standby->replay_pause;
$r = $t->keyed($admin, 'DELETE', "/admin/keys/$key_id");
ok($r->{status} >= 200 && $r->{status} < 300, 'the key is revoked')
    or diag($r->{content});
$sdbh = $standby->dbh($t->{dbname});
my $revoked;
($revoked) = $sdbh->selectrow_array(
    'SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = ?', undef,
    $key_id);
ok(!$revoked, 'the paused standby still has it unrevoked');
$sdbh->disconnect;

my @codes;
my $deadline = time + 2;
while (time < $deadline) {
    push @codes,
        $t->get('/api/stats', headers => { 'X-API-Key' => $key })->{status};
    sleep 0.05;
}
ok(@codes >= 10, 'the key was tried ' . scalar(@codes) . ' times in 2 s');
is_deeply([ grep { $_ != 401 } @codes ], [],
    'every try is refused 401: the revocation holds');

# -- a paused standby never brings back a retired domain ---------------------

is($t->get('/api/domains/beta.example/public')->{status}, 200,
    'beta.example is served');
$r = $t->keyed($admin, 'DELETE', '/admin/domains/beta.example');
ok($r->{status} >= 200 && $r->{status} < 300, 'and retired')
    or diag($r->{content});

{
    local $TODO = 'a public read is served by a standby that has not '
        . 'replayed the retirement: see docs/operations.md';
    my @st = map { $t->get('/api/domains/beta.example/public')->{status} }
        1 .. 10;
    is_deeply([ grep { $_ != 404 } @st ], [],
        'the retired domain stays gone (404) while the standby lags');
    my $rank = $t->get('/api/rankings?limit=100');
    ok(!grep({ $_->{domain} eq 'beta.example' }
             @{$rank->{json}{domains} // []}),
        'and out of the rankings');
}

$standby->replay_resume;
ok($standby->catch_up, 'the standby catches up');
is($t->get('/api/domains/beta.example/public')->{status}, 404,
    'once replayed, the retired domain is gone');

$t->stop;

done_testing;
