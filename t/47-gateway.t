# The gateway in front of a real upstream application: what reaches the
# upstream is counted.  A missing key (401) and a refusal (429) never reach
# it; the key is stripped and the identity passed; each route's policies
# are its own; cost=N takes N; a per-minute and a per-hour policy apply
# together; dry run lets through; a reload keeps drained buckets drained;
# a long poll and a websocket pass unaffected; an auth_request into a
# protected location carries the decision.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use DR::Upstream;
use IO::Socket::INET;
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1);
my $up = DR::Upstream->start(dir => $t->dir, poll_ms => 1500);
my $u = 'http://127.0.0.1:' . $up->port;

$t->write_conf(<<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier gold rate=1000/m burst=1000 daily=0;

    dr_limit_policy app rate=3/m burst=3;
    dr_limit_policy app tier=pro rate=30/m burst=30;
    dr_limit_policy other rate=100/m burst=50;
    dr_limit_policy minute rate=10/m burst=10;
    dr_limit_policy hourly rate=4/h burst=4;
    dr_limit_policy costly rate=10/m burst=10;
    dr_limit_policy dry rate=1/m burst=1;

    log_format gw '\$status \$dr_key_id \$dr_tier \$dr_limit_policy';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/gw.log gw;

        location /app/ {
            dr_auth required;
            dr_auth_hide_credentials on;
            dr_limit app;
            proxy_set_header X-Consumer-Id \$dr_key_id;
            proxy_set_header X-Consumer-Tier \$dr_tier;
            proxy_set_header X-Consumer-Name \$dr_key_name;
            proxy_set_header X-Limit-Remaining \$dr_limit_remaining;
            proxy_pass $u;
        }
        location /other/ {
            dr_auth required;
            dr_auth_hide_credentials on;
            dr_limit other;
            proxy_pass $u;
        }
        location /both/ {
            dr_auth required;
            dr_limit minute;
            dr_limit hourly;
            proxy_pass $u;
        }
        location /cost/ {
            dr_auth required;
            dr_limit costly cost=4;
            proxy_pass $u;
        }
        location /dry/ {
            dr_auth required;
            dr_limit dry;
            dr_limit_dry_run on;
            proxy_pass $u;
        }
        location /poll/ {
            dr_auth required;
            dr_limit other;
            proxy_read_timeout 10s;
            proxy_pass $u;
        }
        location /ws/ {
            dr_auth required;
            dr_auth_hide_credentials on;
            dr_limit other;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_pass $u;
        }
        location /guarded/ {
            auth_request /_check;
            proxy_pass $u;
        }
        location = /_check {
            internal;
            dr_auth required;
            empty_gif;
        }
    }
EOF
$t->start;

my $key = $t->create_key(tier => 'gold', name => 'gateway-client');
my $key2 = $t->create_key(tier => 'gold', name => 'second');
my ($id) = $t->dbh->selectrow_array(
    q{SELECT id FROM api_keys WHERE name = 'gateway-client'});

sub count { $up->count }

# no key: 401, the upstream sees nothing
my $r = $t->get('/app/orders');
is($r->{status}, 401, 'no key: 401');
is(count(), 0, 'the upstream saw nothing');

# a key, in the header and as a Bearer: three admitted
my @s = (
    $t->get('/app/orders', headers => { 'X-API-Key' => $key }),
    $t->get('/app/orders', headers => { Authorization => "Bearer $key" }),
    $t->get('/app/orders', headers => { 'X-API-Key' => $key,
                                        Authorization => 'Basic dXNlcg==' }),
);
is_deeply([map { $_->{status} } @s], [200, 200, 200],
    'with a key (header, Bearer, header beside Basic): 200 three times');
my $seen = $up->seen;
is(scalar @$seen, 3, 'the upstream saw three requests');
is_deeply([map { $_->{headers}{'x-consumer-id'} } @$seen], [($id) x 3],
    'each with the key\'s id');
is_deeply([map { $_->{headers}{'x-consumer-tier'} } @$seen], [('gold') x 3],
    'and its tier');
is($seen->[0]{headers}{'x-consumer-name'}, 'gateway-client', 'and its name');
is_deeply([map { $_->{headers}{'x-limit-remaining'} } @$seen], [2, 1, 0],
    'and what is left of the route\'s policy');
ok(!grep({ exists $_->{headers}{'x-api-key'} } @$seen),
    'no X-API-Key reached it');
ok(!defined $seen->[1]{headers}{authorization},
    'no Bearer key reached it');
is($seen->[2]{headers}{authorization}, 'Basic dXNlcg==',
    'another scheme (the upstream\'s own) did');
ok(!grep({ (join ' ', values %{$_->{headers}}) =~ /\Q$key\E/ } @$seen),
    'the key is nowhere in what it received');

# the fourth: refused before the upstream
$r = $t->get('/app/orders', headers => { 'X-API-Key' => $key });
is($r->{status}, 429, 'the fourth: 429');
like($r->{headers}{ratelimit} // '', qr/^"app";r=0;t=\d+/,
    'RateLimit names the constraining policy');
like($r->{headers}{'ratelimit-policy'} // '',
    qr/"gold";q=1000;w=60, "app";q=3;w=60/,
    'RateLimit-Policy lists every policy that applied');
ok($r->{headers}{'retry-after'}, 'with Retry-After');
is(count(), 3, 'the upstream was not touched');

# another route, its own policy; another key, its own buckets
is($t->get('/other/x', headers => { 'X-API-Key' => $key })->{status}, 200,
    'another location with its own policy still admits');
is($t->get('/app/orders', headers => { 'X-API-Key' => $key2 })->{status},
    200, 'another key has its own bucket of the policy');

# per-minute and per-hour together: the hour's 4 run out first
@s = map { $t->get('/both/x', headers => { 'X-API-Key' => $key })->{status} }
    1 .. 5;
is_deeply(\@s, [200, 200, 200, 200, 429], 'minute and hour: 4, then 429');
$r = $t->get('/both/x', headers => { 'X-API-Key' => $key });
like($r->{headers}{ratelimit} // '', qr/^"hourly";r=0/,
    'the hour is the constraint');
like($r->{headers}{'ratelimit-policy'} // '',
    qr/"minute";q=10;w=60, "hourly";q=4;w=3600/, 'both are listed');

# cost: 4 of 10 each
@s = map { $t->get('/cost/x', headers => { 'X-API-Key' => $key })->{status} }
    1 .. 3;
is_deeply(\@s, [200, 200, 429], 'cost=4 of a burst of 10: two, then 429');

# dry run: over the policy, let through and logged
@s = map { $t->get('/dry/x', headers => { 'X-API-Key' => $key })->{status} }
    1 .. 3;
is_deeply(\@s, [200, 200, 200], 'dry run: nothing refused');
like($t->error_log, qr/limiting requests, dry run, of key \d+.*by "dry"/,
    'the log says which policy would have refused');

# a long poll and a websocket pass
my $before = count();
$r = $t->get('/poll/wait', headers => { 'X-API-Key' => $key });
is($r->{status}, 200, 'a long poll answers');
like($r->{content}, qr/"polled":1/, 'after its wait upstream');

my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
    PeerPort => $t->port) or die;
print $sock "GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    . "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-API-Key: $key\r\n\r\n";
my $head = '';
while (my $line = <$sock>) {
    $head .= $line;
    last if $line eq "\r\n";
}
like($head, qr{^HTTP/1\.1 101}, 'a websocket upgrades through the gateway');
# a masked text frame "hi"
my @mask = (1, 2, 3, 4);
my $payload = join '', map { chr(ord(substr('hi', $_, 1)) ^ $mask[$_ % 4]) }
    0 .. 1;
print $sock chr(0x81) . chr(0x80 | 2) . join('', map { chr } @mask)
    . $payload;
my $frame = '';
sysread($sock, $frame, 64);
like($frame, qr/echo: hi/, 'and its messages flow both ways');
close $sock;
my $ws = (grep { $_->{path} eq '/ws/echo' } @{$up->seen})[0];
ok($ws && !exists $ws->{headers}{'x-api-key'},
    'the websocket upstream got no key either');

# auth_request into a protected location carries the decision
is($t->get('/guarded/x')->{status}, 401,
    'auth_request into dr_auth required: no key, 401');
my $n = count();
is($t->get('/guarded/x', headers => { 'X-API-Key' => $key })->{status}, 200,
    'with the key: 200');
is(count(), $n + 1, 'and it reached the upstream once');

# a reload keeps drained buckets drained
$t->reload;
is($t->get('/app/orders', headers => { 'X-API-Key' => $key })->{status},
    429, 'after a reload the drained policy bucket stays drained');

open my $fh, '<', $t->dir . '/gw.log' or die;
my @refused = grep { /^429 / } <$fh>;
ok(scalar(grep { / app$/ } @refused), '$dr_limit_policy logs the policy '
    . 'that refused');

$up->stop;
$t->stop;
$t->check_log;
done_testing();
