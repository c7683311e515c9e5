# The response cache: hits are served from shared memory by every worker
# with their Age, ETag gives 304s, new scores invalidate it at once (the
# answer after the notification is fresh), and when PostgreSQL is down
# cached answers are still served while uncached ones get a 503 without
# waiting on the database.  CORS is answered from the allow-list.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

my $pg = DR::Test::Cluster->private;
my $t = DR::Test->new(db => 1, cluster => $pg, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=30s;

    server {
        listen 127.0.0.1:%%PORT%%;
        error_page 400 404 405 413 414 494 /_dr_error;
        location / {
            dr_api;
            dr_cors_origins https://app.example https://admin.example;
        }
        location = /_dr_error { internal; dr_api; }
    }
EOF
DR::Fixture::load($t->dbh);
$t->start;
ok($t->wait_log(qr/listening for notifications/),
    'the node listens for published scores and changed keys');

my $path = '/api/domains/alpha.example/public';

my $first = $t->get($path);
is($first->{status}, 200, 'a miss is answered');
ok(!defined $first->{headers}{age}, 'a miss has no Age');
my $etag = $first->{headers}{etag};

# the other worker shares the zone: every later request is a hit
my $hits = 0;
for (1 .. 10) {
    my $r = $t->get($path);
    $hits++ if defined $r->{headers}{age} && $r->{content} eq $first->{content}
        && $r->{headers}{etag} eq $etag;
}
is($hits, 10, 'ten hits with the same body and ETag, each with an Age');

# the same answer however it is asked
my $r = $t->get('/api/domains/ALPHA.EXAMPLE./public?include_alerts=false');
ok(defined $r->{headers}{age}, 'a differently written request is a hit');

# conditional requests
$r = $t->get($path, headers => { 'If-None-Match' => $etag });
is($r->{status}, 304, 'If-None-Match with the ETag: 304');
is(length($r->{content} // ''), 0, '304 has no body');
$r = $t->get($path, headers => { 'If-None-Match' => '"0000000000000000"' });
is($r->{status}, 200, 'another ETag: 200');

# new scores invalidate the cache at once (trigger, NOTIFY, listener)
$t->dbh->do(q{UPDATE domain_scores SET memory_score = 70
              WHERE domain_id = 1 AND run_id = 2});
my ($fresh, $t0) = (undef, time);
DR::Test::wait_for(sub {
    $r = $t->get($path);
    $fresh = $r unless defined $r->{headers}{age};
    $fresh;
}, 30, 0.02);
ok($fresh, 'after new scores an answer is no longer from the cache')
    and diag(sprintf 'invalidated within %.0f ms', 1000 * (time - $t0));
is($fresh && $fresh->{json}{ai_intelligence}{memory_score}, 70,
    'and carries the new score');
isnt($fresh && $fresh->{headers}{etag}, $etag, 'with a new ETag');

# CORS
$r = $t->get($path, headers => { Origin => 'https://app.example' });
is($r->{headers}{'access-control-allow-origin'}, 'https://app.example',
    'an allowed origin is named');
like($r->{headers}{vary} // '', qr/Origin/, 'Vary: Origin');
like($r->{headers}{'access-control-expose-headers'} // '', qr/ETag/,
    'ETag and the rate-limit headers are exposed');
$r = $t->get($path, headers => { Origin => 'https://evil.example' });
ok(!defined $r->{headers}{'access-control-allow-origin'},
    'another origin is not');
$r = $t->http('OPTIONS', $path, headers => {
    Origin => 'https://admin.example',
    'Access-Control-Request-Method' => 'GET' });
is($r->{status}, 204, 'a preflight is answered in nginx');
is($r->{headers}{'access-control-allow-methods'}, 'GET, HEAD, OPTIONS',
    'preflight: methods');
like($r->{headers}{'access-control-allow-headers'}, qr/X-API-Key/,
    'preflight: the key header is allowed');
$r = $t->http('OPTIONS', $path, headers => {
    Origin => 'https://evil.example',
    'Access-Control-Request-Method' => 'GET' });
is($r->{status}, 403, 'a preflight from another origin: 403');
is($r->{json}{error}, 'origin_not_allowed', 'in JSON');

# PostgreSQL down

$t->get('/api/rankings');    # cached, and fresh
$pg->stop;

$r = $t->get('/api/rankings');
is($r->{status}, 200, 'down: a fresh cached answer is served');
ok(defined $r->{headers}{age}, 'with its Age');

# waiting on the database, it would meet the client's deadline (599)
$r = $t->get('/api/ticker', timeout => 5);
is($r->{status}, 503, 'down: an answer never cached is a 503, at once');
is($r->{json}{error}, 'database_unavailable', 'in JSON');
diag(sprintf 'the 503 came in %.0f ms', 1000 * $r->{elapsed});
is($r->{headers}{'cache-control'}, 'no-store', 'errors are never cached');

# a stale answer (invalidated) is still better than none while down
$r = $t->get($path);
is($r->{status}, 200, 'down: an invalidated answer is served as stale');
ok(defined $r->{headers}{age}, 'with its Age');

$pg->start;
ok(DR::Test::wait_for(sub { $t->get('/api/ticker')->{status} == 200 }, 60),
    'back: uncached answers again');

$t->stop;

done_testing;
