# A key's usage: GET /api/usage?days= for the caller's own key and GET
# /admin/usage?key=&days= for any, per UTC day the requests, refusals
# and errors, today's to the second: what the limit zone has not flushed
# yet (the flush is a minute away here) is in the answer already.  The
# tier's limits and what remains of them; a 401 without a key; a JSON
# 400 for every bad parameter; answers as the OpenAPI document says.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::OpenAPI;
use DR::Test;
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep time);

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_usage_flush 60s;
    dr_tier tiny rate=1/h burst=2 daily=5;
    dr_tier roomy rate=60/m burst=200 daily=100000;
    dr_tier usage_report rate=100/h burst=100;

    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
        location / { dr_auth optional; dr_api; }
    }
EOF
my $dbh = $t->dbh;
$dbh->do(q{INSERT INTO domains (domain, category)
           VALUES ('alpha.example', 'Technology')});
$t->start;

my $admin = $t->create_key(tier => 'admin');
my $key = $t->create_key(tier => 'roomy', name => 'reporting');
my $tiny = $t->create_key(tier => 'tiny', name => 'small');
my ($id) = $dbh->selectrow_array(q{SELECT id FROM api_keys
    WHERE name = 'reporting'});
my ($tiny_id) = $dbh->selectrow_array(q{SELECT id FROM api_keys
    WHERE name = 'small'});

sub usage {
    my ($k, $query) = @_;
    return $t->keyed($k, 'GET', '/api/usage' . ($query // ''));
}

sub day_of { strftime('%Y-%m-%d', gmtime(time - 86400 * $_[0])) }

# --- a new key's requests, before any flush ---------------------------------

for (1 .. 5) {
    is($t->keyed($key, 'GET', '/api/stats')->{status}, 200,
        "request $_ of the new key");
}
sleep 1;

my $today = day_of(0);
my $r = usage($key, '?days=7');
is($r->{status}, 200, 'GET /api/usage?days=7 with the key');
DR::OpenAPI::response_ok('GET', '/api/usage', 200, $r->{content},
    'the answer is as the OpenAPI document says');
my $u = $r->{json} // {};
is_deeply($u->{key}, { id => $id + 0, prefix => $u->{key}{prefix},
    name => 'reporting', tier => 'roomy' }, 'the key, by id, name and tier');
like($u->{key}{prefix} // '', qr/^[a-z0-9]{8}$/, 'and its prefix');
is($u->{days}, 7, '7 days');
is_deeply([map { $_->{date} } @{$u->{usage}}],
    [map { day_of($_) } reverse 0 .. 6], 'the last 7 UTC days, oldest first');
is_deeply($u->{today}, { date => $today, requests => 5, refused => 0,
    errors => 0 }, 'today: the 5 requests, to the second; reading the '
    . 'usage is none');
is_deeply($u->{usage}[-1], $u->{today}, 'today is the last day');
my ($flushed) = $dbh->selectrow_array(
    'SELECT count(*) FROM usage_daily WHERE key_id = ?', undef, $id);
is($flushed, 0, 'none of them was flushed yet: they came from the zone');
is_deeply($u->{limits}, { tier => 'roomy', rate => 60,
    period_seconds => 60, burst => 200, daily => 100000 },
    'the tier\'s limits');
is($u->{remaining}{daily}, 100000 - 5, 'what remains of the daily quota');
ok($u->{remaining}{burst} >= 195 && $u->{remaining}{burst} <= 198,
    "and of the burst: $u->{remaining}{burst}");
my $reset = $u->{remaining}{daily_reset_seconds};
ok($reset > 0 && $reset <= 86400, "the day resets in $reset s");
is($r->{headers}{'cache-control'}, 'no-store', 'never kept by a cache');
ok($r->{headers}{ratelimit}, 'with the rate-limit headers');

# --- errors, counted in the log phase, written within a second or two -------

is($t->keyed($key, 'GET', '/api/domains/unknown.example/public')->{status},
    404, 'an unknown domain: an error of the key');
is($t->keyed($key, 'GET', '/api/rankings?limit=1000')->{status}, 400,
    'a bad parameter: another');
my $e = {};
for (1 .. 40) {
    $e = usage($key, '?days=1')->{json}{today} // {};
    last if ($e->{errors} // 0) >= 2;
    sleep 0.1;
}
is($e->{errors}, 2, 'today shows the 2 errors');
is($e->{requests}, 7, 'among today\'s 7 requests');
my ($db_errors) = $dbh->selectrow_array(q{SELECT errors FROM usage_daily
    WHERE key_id = ? AND day = ?}, undef, $id, $today);
is($db_errors, 2, 'written to usage_daily');

# --- refusals, and any key's usage for an admin -----------------------------

my @codes = map { $t->keyed($tiny, 'GET', '/api/stats')->{status} } 1 .. 4;
is_deeply(\@codes, [200, 200, 429, 429], 'a tiny key: 2 in, 2 refused');
$r = $t->keyed($admin, 'GET', "/admin/usage?key=$tiny_id&days=1");
is($r->{status}, 200, 'GET /admin/usage?key=ID&days=1');
is_deeply($r->{json}{usage}, [{ date => $today, requests => 2, refused => 2,
    errors => 0 }], 'the refusals are no errors');
is($r->{json}{key}{tier}, 'tiny', 'of the tiny key');
is_deeply($r->{json}{remaining}, { burst => 0, daily => 3,
    daily_reset_seconds => $r->{json}{remaining}{daily_reset_seconds} },
    'its bucket is empty, 3 of its daily 5 remain');
# a key refused everywhere else still reads its usage: the reading takes
# from a bucket of its own (the usage_report tier, here 100 at once), not
# the key's
$r = usage($tiny);
is($r->{status}, 200, 'the drained tiny key still reads its own usage');
is_deeply($r->{json}{today}, { date => $today, requests => 2, refused => 2,
    errors => 0 }, 'and sees its 2 refusals');
is($r->{json}{remaining}{burst}, 0, 'and its empty bucket');
my @reads = map { usage($tiny)->{status} } 1 .. 110;
is(scalar(grep { $_ == 200 } @reads[0 .. 89]), 90,
    'reading it is limited apart: 90 more readings in');
ok((grep { $_ == 429 } @reads), 'then refused');
is(usage($tiny)->{json}{detail}, 'too many requests: slow down',
    'with the usual answer');

# --- days already flushed ---------------------------------------------------

$dbh->do(q{INSERT INTO usage_daily (key_id, day, requests, rejected, errors)
           VALUES (?, ?, 7, 1, 3), (?, ?, 777, 0, 0)}, undef,
         $id, day_of(3), $id, day_of(10));
$u = usage($key, '?days=7')->{json};
is_deeply($u->{usage}[3], { date => day_of(3), requests => 7, refused => 1,
    errors => 3 }, 'a day 3 days ago, as stored');
is(scalar(grep { $_->{requests} == 777 } @{$u->{usage}}), 0,
    'a day before the 7 asked is not shown');
$u = usage($key)->{json};
is($u->{days}, 30, 'days defaults to 30');
is(scalar(grep { $_->{requests} == 777 } @{$u->{usage}}), 1,
    'which includes 10 days ago');
is($u->{usage}[0]{date}, day_of(29), 'from 29 days ago');

# --- refusals of bad input --------------------------------------------------

$r = $t->get('/api/usage');
is($r->{status}, 401, 'without a key: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/,
    'with WWW-Authenticate');
is($r->{json}{error}, 'missing_key', 'and a JSON error');
DR::OpenAPI::response_ok('GET', '/api/usage', 401, $r->{content},
    'as documented');
$r = $t->http('GET', '/api/usage',
    headers => { 'X-API-Key' => 'dr_abcdefgh_' . ('x' x 32) });
is($r->{status}, 401, 'an unknown key: 401');

for my $q ('?days=0', '?days=91', '?days=abc', '?days=1&days=2',
           '?days=-1', '?days=1.5')
{
    $r = usage($key, $q);
    is($r->{status}, 400, "/api/usage$q: 400");
    is($r->{json}{error}, 'invalid_parameter', '... invalid_parameter');
}
DR::OpenAPI::response_ok('GET', '/api/usage', 400, $r->{content},
    'a 400 as documented');
is(usage($key, '?days=90&_t=123')->{status}, 200,
    '90 days, and an unknown parameter is ignored');

for my $q ('', '?key=abc', '?key=0', "?key=$id&days=91", "?key=$id&days=x") {
    $r = $t->keyed($admin, 'GET', "/admin/usage$q");
    is($r->{status}, 400, "/admin/usage$q: 400");
    like($r->{json}{message} // '', qr/^(key|days):/, '... saying which');
}
is($t->keyed($admin, 'GET', '/admin/usage?key=999999')->{status}, 404,
    'an unknown key: 404');
is($t->keyed($key, 'GET', "/admin/usage?key=$id")->{status}, 403,
    'a key that is not an admin\'s: 403');
is($t->keyed($admin, 'POST', '/admin/usage', '{}')->{status}, 405,
    'POST /admin/usage: 405');

$t->stop;

done_testing;
