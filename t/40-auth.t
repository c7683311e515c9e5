# API keys: every way a key can be missing or wrong gets a clear 401 in
# JSON with WWW-Authenticate; good keys pass with their limits in the
# headers and the log variables; keys are cached (unknown ones too), so
# cached keys keep working while PostgreSQL is down; the admin API makes,
# lists and revokes keys, and a revocation reaches the key cache by
# notification, long before the cache's time to live.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

my $pg = DR::Test::Cluster->private;
my $conf = <<'EOF';
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m ttl=60s negative_ttl=60s;
    dr_limit_zone zone=limits:1m;
    dr_tier free rate=100/s burst=50 daily=1000;
    dr_usage_flush 300ms;

    log_format dr '$status key=$dr_key_id tier=$dr_tier limit=$dr_limit_status';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/dr.log dr;

        location / {
            dr_auth required;
            dr_api;
        }
        location /open/ {
            dr_auth optional;
            dr_api;
        }
        location /hop/ {
            dr_auth optional;
            try_files /nonexistent /api/stats;
        }
        location /admin/ {
            dr_auth required;
            dr_admin;
        }
    }
EOF
my $t = DR::Test->new(db => 1, cluster => $pg, no_start => 1, http => $conf);
DR::Fixture::load($t->dbh);

# configuration errors first
{
    my $secret = $t->{secret};
    for my $mode (0644, 0640, 0620) {
        chmod $mode, $secret;
        my ($rc, $out) = $t->test_conf;
        isnt($rc, 0, sprintf 'a secret file of mode %04o is refused', $mode);
        my $says = qq{"dr_key_secret_file": "$secret" may be read or }
            . 'written by users other than its owner; make it readable by '
            . 'its owner only (chmod 600)';
        like($out, qr/\[emerg\] .*\Q$says\E/,
            'and the message says what to do');
    }
    chmod 0600, $secret;

    $t->write_conf($conf =~ s/dr_key_secret_file %%SECRET%%;//r);
    my ($rc, $out) = $t->test_conf;
    like($out, qr/"dr_auth" needs "dr_key_secret_file"/,
        'dr_auth without a secret is refused');
    $t->write_conf($conf);
    ($rc, $out) = $t->test_conf;
    is($rc, 0, 'the configuration is good') or diag($out);
}

$t->start;
ok($t->wait_log(qr/listening for notifications/),
    'the node listens for published scores and changed keys');

my $key = $t->create_key(tier => 'free', name => 'alice');
my $admin = $t->create_key(tier => 'admin', name => 'root');
like($key, qr/^dr_[a-z0-9]{8}_[A-Za-z0-9]{32}$/, 'a key has its form');

sub call {
    my ($path, %h) = @_;
    return $t->get($path, headers => \%h);
}

sub refused {
    my ($r, $code, $name) = @_;
    is($r->{status}, 401, "$name: 401");
    is($r->{json} && $r->{json}{error}, $code, "$name: error $code");
    like($r->{headers}{'www-authenticate'} // '', qr/^Bearer realm=/,
        "$name: WWW-Authenticate");
    unlike($r->{content}, qr/dr_[a-z0-9]{8}_/, "$name: no key in the answer");
}

refused(call('/api/stats'), 'missing_key', 'no key');
refused(call('/api/stats', 'X-API-Key' => ''), 'missing_key', 'an empty key')
    ;
refused(call('/api/stats', 'X-API-Key' => 'x' x 8000), 'invalid_key',
    'an 8 KB key');
{
    # HTTP::Tiny will not send raw bytes in a header
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port) or die;
    print $s "GET /api/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        . "X-API-Key: dr_abcdefgh_\xc3\xa9" . ('a' x 30) . "\r\n\r\n";
    local $/;
    my $answer = <$s>;
    like($answer, qr{^HTTP/1\.1 401 }, 'a non-ASCII key: 401');
    like($answer, qr{"error":"invalid_key"}, 'a non-ASCII key: invalid_key');
}
refused(call('/api/stats', 'X-API-Key' => 'dr_ABCDEFGH_' . 'a' x 32),
    'invalid_key', 'an upper-case prefix');
refused(call('/api/stats', 'X-API-Key' => 'sk-' . 'a' x 40), 'invalid_key',
    'a key of another form');
# another Authorization scheme is the upstream's (a gateway passes it on):
# it carries no key
refused(call('/api/stats', Authorization => "Basic $key"), 'missing_key',
    'another scheme');
refused(call('/api/stats', 'X-API-Key' => $key,
    Authorization => "Bearer $admin"), 'invalid_key', 'two different keys');
my $unknown = 'dr_zzzzzzzz_' . 'A' x 32;
refused(call('/api/stats', 'X-API-Key' => $unknown), 'invalid_key',
    'an unknown key');
(my $wrong = $key) =~ s/.$/$& eq 'A' ? 'B' : 'A'/e;
refused(call('/api/stats', 'X-API-Key' => $wrong), 'invalid_key',
    'a known prefix with a wrong secret');

my $r = call('/api/stats', 'X-API-Key' => $key);
is($r->{status}, 200, 'a good key in X-API-Key passes');
$r = call('/api/stats', Authorization => "Bearer $key");
is($r->{status}, 200, 'and in Authorization: Bearer');
$r = call('/api/stats', Authorization => "Bearer $key", 'X-API-Key' => $key);
is($r->{status}, 200, 'and in both, the same');

is($r->{headers}{'ratelimit-policy'}, '"free";q=100;w=1, "daily";q=1000;w=86400',
    'RateLimit-Policy names the tier and the daily quota');
like($r->{headers}{ratelimit}, qr/^"free";r=\d+;t=\d+, "daily";r=997;t=\d+$/,
    'RateLimit: remaining and reset of both (3 of 1000 used today)');
is($r->{headers}{'x-ratelimit-limit'}, 100, 'X-RateLimit-Limit');
like($r->{headers}{'x-ratelimit-remaining'}, qr/^4[0-9]$/,
    'X-RateLimit-Remaining: about burst minus 3');
like($r->{headers}{'x-ratelimit-reset'}, qr/^[01]$/, 'X-RateLimit-Reset');

# expired and revoked
my $old = $t->create_key(tier => 'free', expires => '2001-01-01T00:00:00Z');
refused(call('/api/stats', 'X-API-Key' => $old), 'expired_key', 'expired');
my $gone = $t->create_key(tier => 'free');
$t->dbh->do('UPDATE api_keys SET revoked_at = now() WHERE prefix = ?',
    undef, substr($gone, 3, 8));
refused(call('/api/stats', 'X-API-Key' => $gone), 'revoked_key', 'revoked');

# anonymous
$r = call('/open/stats');
isnt($r->{status}, 401, 'dr_auth optional lets a client without key in');
$r = call('/hop/x');
is($r->{status}, 401,
    'but not, through an internal redirect, into a location needing a key');

# a refused request's body is read and dropped: it is never taken for a
# request of its own (request smuggling).  A last request, which closes
# the connection, ends what there is to read: two answers, not three.
{
    my $smuggled = "GET /open/stats HTTP/1.1\r\nHost: t\r\n\r\n";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port) or die;
    print $s "POST /api/stats HTTP/1.1\r\nHost: t\r\nContent-Length: "
        . length($smuggled) . "\r\n\r\n$smuggled"
        . "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    my $got = '';
    my $sel = IO::Select->new($s);
    while ($sel->can_read(30)) {
        last unless sysread $s, $got, 65536, length $got;
    }
    my @answers = $got =~ m{^HTTP/1\.1 (\d+)}mg;
    is_deeply(\@answers, [401, 200],
        'two answers (401, and 200 to the last request, health needs no '
        . 'key): the body is no request');
}

# the admin API
$r = $t->http('POST', '/admin/keys', headers => { 'X-API-Key' => $key },
    body => '{"name":"x","tier":"free"}');
is($r->{status}, 403, 'a free key cannot use the admin API');

$r = $t->http('POST', '/admin/keys', headers => { 'X-API-Key' => $admin,
    'Content-Type' => 'application/json' },
    body => '{"name":"bob","tier":"pro","expires_at":"2099-01-01T00:00:00Z"}');
is($r->{status}, 201, 'an admin makes a key: 201');
my $made = $r->{json} // {};
like($made->{key} // '', qr/^dr_[a-z0-9]{8}_[A-Za-z0-9]{32}$/,
    'the new key is shown');
is_deeply([@$made{qw(name tier expires_at revoked_at)}],
    ['bob', 'pro', '2099-01-01T00:00:00Z', undef], 'with its fields');
is($r->{headers}{'cache-control'}, 'no-store', 'and never cached');

my ($stored) = $t->dbh->selectrow_array(
    'SELECT encode(secret_hash, \'hex\') FROM api_keys WHERE id = ?', undef,
    $made->{id});
unlike($stored, qr/\Q@{[substr($made->{key}, 12)]}\E/,
    'only a hash of the secret is stored');

$r = call('/api/stats', 'X-API-Key' => $made->{key});
is($r->{status}, 200, 'the new key works at once');
is($r->{headers}{'x-ratelimit-limit'}, 100,
    'with the limits of its tier (pro: 100 a minute)');

for my $bad (['{"name":"x"}', 'tier'], ['{"name":"","tier":"free"}', 'name'],
             ['{"name":"x","tier":"gold"}', 'tier'],
             ['{"name":"x","tier":"free","extra":1}', 'unknown field'],
             ['{"name":"x","tier":"free","expires_at":"tomorrow"}',
              'expires_at'],
             ['{"name":"x","tier":"free","expires_at":"2001-01-01T00:00:00Z"}',
              'in the future'],
             ['{"name":"x","tier":"free","expires_at":"2099-01-01T00:00:00+29:00"}',
              'expires_at'],
             ['{"name":"' . ('a' x 100) . '\\nb","tier":"free"}',
              'control characters'],
             ['[1,2]', 'object'], ['{"name":', 'not valid JSON'],
             ['{"name":"a","name":"b","tier":"free"}', 'not valid JSON'])
{
    my ($body, $says) = @$bad;
    $r = $t->http('POST', '/admin/keys', headers => { 'X-API-Key' => $admin },
        body => $body);
    is($r->{status}, 400, "bad key request $body: 400");
    like($r->{json} && $r->{json}{message}, qr/\Q$says\E/, "and says $says");
}

# a body in chunks, as curl sends a stream
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $t->port) or die;
    print $s "POST /admin/keys HTTP/1.1\r\nHost: t\r\nX-API-Key: $admin\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        . "8\r\n{\"name\":\r\n";
    select undef, undef, undef, 0.2;
    print $s "17\r\n\"chunky\",\"tier\":\"free\"}\r\n0\r\n\r\n";
    local $/;
    my $answer = <$s> // '';
    like($answer, qr{^HTTP/1\.1 201 }, 'a chunked body in two pieces: 201');
}

$r = $t->http('GET', '/admin/keys', headers => { 'X-API-Key' => $admin });
is($r->{status}, 200, 'the admin lists keys');
my @keys = @{$r->{json}{keys} // []};
is(scalar @keys, 6, 'six keys');
ok(!grep({ exists $_->{key} || exists $_->{secret_hash} } @keys),
    'without secrets');

$r = $t->http('DELETE', "/admin/keys/$made->{id}",
    headers => { 'X-API-Key' => $admin });
is($r->{status}, 200, 'the admin revokes a key');
ok($r->{json}{revoked_at}, 'revoked_at is set');

# the key stays cached for 60 s: refused well before, it was told
my $t0 = time;
my $refused = DR::Test::wait_for(sub {
    $r = call('/api/stats', 'X-API-Key' => $made->{key});
    $r->{status} == 401;
}, 30, 0.01);
ok($refused, 'the revoked key is refused though it was cached, '
    . 'without waiting for its time to live')
    and diag(sprintf 'refused %.0f ms after the revocation',
                     1000 * (time - $t0));
is($r->{json}{error}, 'revoked_key', 'as revoked');

$r = $t->http('DELETE', '/admin/keys/99999',
    headers => { 'X-API-Key' => $admin });
is($r->{status}, 404, 'revoking an unknown key: 404');
$r = $t->http('DELETE', '/admin/keys/abc',
    headers => { 'X-API-Key' => $admin });
is($r->{status}, 400, 'a key id that is no number: 400');

# daily usage reaches the database in batches
{
    my ($id) = $t->dbh->selectrow_array(
        'SELECT id FROM api_keys WHERE prefix = ?', undef, substr($key, 3, 8));
    my $passed = grep { / key=$id tier=free limit=passed$/ } do {
        open my $fh, '<', $t->dir . '/dr.log' or die; <$fh> };
    my ($n, $used);
    DR::Test::wait_for(sub {
        ($n, $used) = $t->dbh->selectrow_array(q{
            SELECT sum(u.requests), max(k.last_used_at) IS NOT NULL
              FROM usage_daily u JOIN api_keys k ON k.id = u.key_id
             WHERE u.key_id = ?}, undef, $id);
        ($n // 0) >= $passed;
    }, 30);
    is($n, $passed, "usage_daily holds the key's $passed admitted requests");
    ok($used, 'and last_used_at is set');
}

# the log variables
my @log = do { open my $fh, '<', $t->dir . '/dr.log' or die; <$fh> };
ok(scalar(grep { /^200 key=\d+ tier=free limit=passed$/ } @log),
    '$dr_key_id, $dr_tier and $dr_limit_status are logged');

# PostgreSQL down: cached keys still pass, uncached ones get 503
$pg->stop;
$r = call('/api/stats', 'X-API-Key' => $key);
isnt($r->{status}, 401, 'down: a cached key still authenticates');
refused(call('/api/stats', 'X-API-Key' => $unknown), 'invalid_key',
    'down: a cached unknown key is still refused');
my $fresh = 'dr_yyyyyyyy_' . 'B' x 32;
$r = call('/api/stats', 'X-API-Key' => $fresh);
is($r->{status}, 503, 'down: a key never seen cannot be checked: 503');
is($r->{json}{error}, 'database_unavailable', 'in JSON');
$pg->start;

# one info line per refusal at most, never a secret
my @lines = split /\n/, $t->error_log;
ok(!grep({ /\[error\]/ && /API key/ } @lines), 'no [error] for bad keys');
ok(!grep({ /[A-Za-z0-9]{32}/ && !/request:/ } @lines),
    'no secret in the error log');

$t->stop;

done_testing;
