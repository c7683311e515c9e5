# A flood of made-up keys is no flood of queries: each look-up of a key not
# in the cache costs a token of its client's key_lookup bucket first, so
# five seconds of random well-formed keys from one address cost a bounded
# number of queries on the primary, while a real key sent meanwhile (from
# the cache) is answered every time.  Unknown prefixes are cached in their
# own bounded space and never push a known key out.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;
use Time::HiRes qw(sleep time);

plan skip_all => 'wrk is needed' unless -x '/usr/bin/wrk';

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:256k;
    dr_limit_zone zone=limits:1m;
    dr_tier steady rate=100/s burst=100 daily=0;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth required; empty_gif; }
        location = /metrics { dr_metrics; }
    }
EOF
$t->start;

my $key = $t->create_key(tier => 'steady', name => 'real');
is($t->get('/x', headers => { 'X-API-Key' => $key })->{status}, 200,
    'the real key is known (and now cached)');

sub queries {
    my ($m) = $t->get('/metrics')->{content}
        =~ /^dr_pg_queries_total\{outcome="ok"\} (\d+)$/m;
    my ($u) = $t->get('/metrics')->{content}
        =~ /^dr_pg_queries_total\{outcome="unavailable"\} (\d+)$/m;
    return ($m // 0) + ($u // 0);
}

my $before = queries();

my $lua = $t->dir . '/keys.lua';
open my $fh, '>', $lua or die;
print $fh <<'LUA';
math.randomseed(os.time())
local an = "abcdefghijklmnopqrstuvwxyz0123456789"
local function pick(n, chars)
    local t = {}
    for i = 1, n do
        local k = math.random(1, #chars)
        t[i] = chars:sub(k, k)
    end
    return table.concat(t)
end
request = function()
    local key = "dr_" .. pick(8, an) .. "_" .. pick(32, an .. "ABCDEFGH")
    return wrk.format("GET", "/x", { ["X-API-Key"] = key })
end
LUA
close $fh;

my $pid = fork // die;
if ($pid == 0) {
    exec 'wrk', '-t', 2, '-c', 32, '-d', '5s', '-s', $lua,
        'http://127.0.0.1:' . $t->port . '/';
}

# the real key, meanwhile, from the same address
my @real;
my $t0 = time;
while (time - $t0 < 5) {
    push @real, $t->get('/x', headers => { 'X-API-Key' => $key })->{status};
    sleep 0.05;
}
waitpid $pid, 0;

my $spent = queries() - $before;
diag("the flood cost $spent queries");
ok($spent <= 2000, "five seconds of made-up keys cost at most 2,000 "
    . "queries ($spent)");
ok(@real >= 20, scalar(@real) . ' requests with the real key meanwhile');
is(scalar(grep { $_ != 200 } @real), 0, 'every one of them answered 200');

my $log = $t->error_log;
like($log, qr/looks up too many unknown API keys: refused without a query/,
    'the refusals are logged');

# once more, in a row: past the bucket's burst, a made-up key is refused
# before its look-up
my $refused;
for my $i (1 .. 400) {
    my $r = $t->get('/x', headers => { 'X-API-Key' =>
        sprintf('dr_zz%06d_%s', $i, 'A' x 32) });
    if ($r->{status} == 429) {
        $refused = $r;
        last;
    }
}
ok($refused, 'made-up keys in a row meet a 429');
like($refused && $refused->{content}, qr/"error":"too_many_key_lookups"/,
    'saying why');
ok($refused && $refused->{headers}{'retry-after'}, 'with Retry-After');

$t->stop;
$t->check_log;
done_testing();
