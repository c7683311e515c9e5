#!/usr/bin/perl
# The gateway benchmark: in one run, on this machine, one nginx (1 worker)
# proxying to an upstream application (a second server of the same nginx
# answering "return 200"):
#
#   (1) proxy_pass behind nginx limit_req (a rate that never refuses),
#   (2) the same proxy_pass behind dr_auth required + dr_limit (a key,
#       its tier bucket and a policy, a rate that never refuses),
#   (3) refusals: limit_req refusing a flood (every request over its rate),
#   (4) refusals: dr_limit refusing the same flood with a drained key,
#   (5) refusals: a flood of made-up keys from one address, refused by the
#       key_lookup bucket before any query (the first ones are looked up),
#   (6) the flood of (5) against limit_req keyed by the same header,
#
# each measured with wrk; requests per second, p50 and p99, and the
# ratios of each to its limit_req counterpart.  Writes bench/gateway.md.
#
#   perl bench/gateway.pl [seconds per measurement, default 10]
#
# Each case runs three times, the cases taking turns; the median is kept.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";
use DR::Test;
use POSIX qw(strftime);
use Test::More ();

my $seconds = shift // 10;
my $rounds = 3;
my $conns = 64;

Test::More->builder->no_ending(1);
Test::More->builder->output('/dev/null');

my $up = DR::Test::free_port();

my $t = DR::Test->new(db => 1, workers => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:16m;
    dr_limit_zone zone=limits:64m;
    dr_tier bench rate=10000000/s burst=10000000 daily=0;
    dr_tier drained rate=1/d burst=1 daily=0;
    dr_limit_policy wide rate=10000000/s burst=10000000;
    dr_limit_policy narrow rate=1/d burst=1;

    limit_req_zone \$binary_remote_addr zone=wide:16m rate=10000000r/s;
    limit_req_zone \$binary_remote_addr zone=narrow:16m rate=1r/m;
    limit_req_zone \$http_x_api_key zone=bykey:64m rate=100r/s;
    limit_req_status 429;

    upstream app {
        server 127.0.0.1:$up;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$up;
        access_log off;
        location / { return 200 "{\\"ok\\":true}\\n"; }
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";

        location /lr/ {
            limit_req zone=wide burst=1000 nodelay;
            proxy_pass http://app;
        }
        location /dr/ {
            dr_auth required;
            dr_auth_hide_credentials on;
            dr_limit wide;
            # a location's proxy_set_header replaces the server's: the
            # upstream connection's keepalive header is repeated here
            proxy_set_header Connection "";
            proxy_set_header X-Consumer-Id \$dr_key_id;
            proxy_pass http://app;
        }
        location /lr-refuse/ {
            limit_req zone=narrow;
            proxy_pass http://app;
        }
        location /dr-refuse/ {
            dr_auth required;
            dr_limit narrow;
            proxy_pass http://app;
        }
        location /lr-keys/ {
            limit_req zone=bykey burst=200 nodelay;
            proxy_pass http://app;
        }
        location /dr-keys/ {
            dr_auth required;
            proxy_pass http://app;
        }
    }
EOF
$t->start;

my $key = $t->create_key(tier => 'bench', name => 'bench');
my $drained = $t->create_key(tier => 'drained', name => 'drained');

# drain: the one token of the day of each bucket
$t->get('/dr-refuse/x', headers => { 'X-API-Key' => $drained });
$t->get('/lr-refuse/x');

my $keys_lua = $t->dir . '/keys.lua';
open my $fh, '>', $keys_lua or die;
print $fh <<'LUA';
math.randomseed(os.time())
local an = "abcdefghijklmnopqrstuvwxyz0123456789"
local function pick(n)
    local t = {}
    for i = 1, n do
        local k = math.random(1, #an)
        t[i] = an:sub(k, k)
    end
    return table.concat(t)
end
request = function()
    return wrk.format("GET", nil,
        { ["X-API-Key"] = "dr_" .. pick(8) .. "_" .. pick(32) })
end
LUA
close $fh;

sub wrk {
    my ($path, $header, $script) = @_;
    my @cmd = ('wrk', '-t', 1, '-c', $conns, '-d', "${seconds}s",
        '--latency');
    push @cmd, '-H', "'$header'" if $header;
    push @cmd, '-s', $script if $script;
    my $out = `@cmd http://127.0.0.1:@{[$t->port]}$path 2>&1`;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my %lat;
    for my $p (qw(50 99)) {
        my ($v, $unit) = $out =~ /^\s+$p%\s+([\d.]+)(us|ms|s)/m;
        $lat{$p} = $v * ({ us => 0.001, ms => 1, s => 1000 }->{$unit} // 0)
            if defined $v;
    }
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    my ($n) = $out =~ /(\d+) requests in/;
    die "wrk failed:\n$out" unless $rps;
    return { rps => $rps, p50 => $lat{50}, p99 => $lat{99},
             refused => $non2xx // 0, n => $n // 0 };
}

my @cases = (
    [ lr => '/lr/x' ],
    [ dr => '/dr/x', "X-API-Key: $key" ],
    [ lr_refuse => '/lr-refuse/x' ],
    [ dr_refuse => '/dr-refuse/x', "X-API-Key: $drained" ],
    [ dr_keys => '/dr-keys/x', undef, $keys_lua ],
    [ lr_keys => '/lr-keys/x', undef, $keys_lua ],
);

my (%runs, %r);
for my $round (1 .. $rounds) {
    for my $case (@cases) {
        my ($name, @args) = @$case;
        push @{$runs{$name}}, wrk(@args);
    }
}
for my $name (keys %runs) {
    my @sorted = sort { $a->{rps} <=> $b->{rps} } @{$runs{$name}};
    $r{$name} = $sorted[$#sorted / 2];
}


$t->stop;

my $cpu = `grep -m1 'model name' /proc/cpuinfo`;
$cpu =~ s/.*:\s*//;
chomp $cpu;

my $report = sprintf <<'EOF',
# Gateway benchmark

%s, %s, nginx 1 worker proxying to an upstream of the same nginx
(`return 200`), wrk 1 thread %d connections, %d s each, median of 3
interleaved rounds.  `perl bench/gateway.pl` (in `make bench`).

| case | requests/s | p50 ms | p99 ms | refused | vs. limit_req |
|---|---:|---:|---:|---:|---:|
EOF
    strftime('%Y-%m-%d %H:%M UTC', gmtime), $cpu, $conns, $seconds;

my %name = (
    lr => '(1) proxy_pass behind limit_req',
    dr => '(2) proxy_pass behind dr_auth + dr_limit (key, tier, policy)',
    lr_refuse => '(3) refused by limit_req',
    dr_refuse => '(4) refused by dr_limit (a drained key)',
    dr_keys => '(5) made-up keys, refused by dr_auth',
    lr_keys => '(6) made-up keys, limit_req by header',
);
my %vs = (lr => 'lr', dr => 'lr', lr_refuse => 'lr_refuse',
          dr_refuse => 'lr_refuse', dr_keys => 'lr_keys',
          lr_keys => 'lr_keys');
for my $k (qw(lr dr lr_refuse dr_refuse dr_keys lr_keys)) {
    my $x = $r{$k};
    $report .= sprintf "| %s | %.0f | %.3f | %.3f | %d | %.2f |\n",
        $name{$k}, $x->{rps}, $x->{p50}, $x->{p99}, $x->{refused},
        $x->{rps} / $r{$vs{$k}}{rps};
}

$report .= sprintf <<'EOF',

Admitted: a request proxied through dr_auth and dr_limit (the key checked
from the cache, its tier bucket and a policy taken under one lock) runs
at %.0f%% of the same proxy_pass behind nginx limit_req (target at least
90%%).

Refused: a flood refused by dr_limit (a drained key, 429 in JSON with the
rate-limit headers) runs at %.0f%% of limit_req refusing the same flood
(target at least 95%%).  A flood of made-up keys is refused at %.0f%% of
limit_req's rate: each costs an HMAC and a look-up of the key cache, and
once the client's key_lookup bucket is empty, no query
(`t/46-auth-flood.t` shows the bound on queries).

Absolute figures drift on a shared machine; the ratios, measured in the
same run, are what to compare between builds.
EOF
    100 * $r{dr}{rps} / $r{lr}{rps},
    100 * $r{dr_refuse}{rps} / $r{lr_refuse}{rps},
    100 * $r{dr_keys}{rps} / $r{lr_keys}{rps};

open my $out, '>', "$FindBin::Bin/gateway.md" or die;
print $out $report;
close $out;
print $report;
