# Token buckets: with 64 concurrent connections over 2 workers, a bucket
# admits what a bucket of the same rate and burst fed the same requests
# at the same times admits (within 1 at 600 a minute, within 0.1% at
# 6,000 a second), and never more than burst + rate x elapsed, however
# fast or unevenly this machine delivers the requests; nginx's limit_req
# is measured beside it for comparison.  Rejections are 429s
# with Retry-After; dry run only logs; a reload keeps drained buckets
# drained; a daily quota and a rate of 1 a day are exact.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use POSIX qw(floor);
use Test::More;

plan skip_all => 'rates measured under valgrind mean nothing'
    if $ENV{DR_VALGRIND};
use Time::HiRes qw(sleep time);
use List::Util qw(max);

sub ngx_max { max(@_) }

my $seconds = $ENV{DR_LIMIT_SECONDS} // 10;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:4m;
    dr_tier steady rate=600/m burst=20 daily=0;
    dr_tier fast rate=6000/s burst=20 daily=0;
    dr_tier daily3 rate=100/s burst=100 daily=3;
    dr_tier slow rate=1/d burst=2 daily=0;
    dr_tier dry rate=1/m burst=1 daily=0;

    limit_req_zone $http_x_api_key zone=lr:1m rate=6000r/s;

    log_format limits '$msec $status $dr_tier $dr_limit_status';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/limits.log limits;

        location = /ping {
            dr_auth required;
            empty_gif;
        }
        location / {
            dr_auth required;
            dr_api;
        }
        location = /dry {
            dr_auth required;
            dr_limit_dry_run on;
            dr_limit_status 503;
            default_type text/plain;
            alias %%DIR%%/ok.txt;
        }
        location = /lr {
            limit_req zone=lr burst=20 nodelay;
            limit_req_status 429;
            default_type text/plain;
            alias %%DIR%%/ok.txt;
        }
    }
EOF
open my $ok, '>', $t->dir . '/ok.txt' or die;
print $ok "ok\n";
close $ok;
$t->start;

sub wrk_run {
    my ($path, $key) = @_;
    my $out = `wrk -t 2 -c 64 -d ${seconds}s -H 'X-API-Key: $key' http://127.0.0.1:@{[$t->port]}$path 2>&1`;
    my ($n) = $out =~ /(\d+) requests in/;
    my ($bad) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    return ($n // 0, $bad // 0);
}

# A bucket of $per_second tokens a second and $burst fed the requests of
# the log, in its order, at their times (ms): how many it admits, and how
# often it filled up (tokens were lost while nobody asked).  It counts in
# thousandths of a token, a millisecond's refill being $per_second of
# them; a clock read late by one worker never takes it back in time.
sub replay {
    my ($events, $per_second, $burst) = @_;
    my $cap = 1000 * $burst;
    my ($units, $last, $admitted, $fills) = ($cap, undef, 0, 0);
    for my $ms (@$events) {
        $last //= $ms;
        if ($ms > $last) {
            $units += ($ms - $last) * $per_second;
            if ($units > $cap) {
                $units = $cap;
                $fills++;
            }
            $last = $ms;
        }
        if ($units >= 1000) {
            $units -= 1000;
            $admitted++;
        }
    }
    return ($admitted, $fills);
}

# the server's own view: the time of each request and its outcome
sub from_log {
    my ($tier) = @_;
    my ($first, $last, $passed, $rejected, $other) = (undef, undef, 0, 0, 0);
    my @events;
    open my $fh, '<', $t->dir . '/limits.log' or die;
    while (<$fh>) {
        my ($msec, $status, $tr, $limit) = split;
        next unless $tr eq $tier;
        my ($sec, $ms) = split /\./, $msec;
        push @events, $sec * 1000 + $ms;

        # the admitted requests' own times: the time from the bucket's
        # take to the log line is then the same at both ends
        if ($status == 200) {
            $first = $msec if !defined $first || $msec < $first;
            $last = $msec if !defined $last || $msec > $last;
        }

        $passed++ if $status == 200;
        $rejected++ if $status == 429;
        $other++ if $status != 200 && $status != 429;
    }
    return ($first, $last, $passed, $rejected, $other, \@events);
}

for my $case (['steady', 10, 1], ['fast', 6000, undef]) {
    my ($tier, $per_second, $tolerance) = @$case;
    my $key = $t->create_key(tier => $tier);
    my ($n, $bad) = wrk_run('/ping', $key);
    my ($first, $last, $passed, $rejected, $other, $ev) = from_log($tier);
    my $elapsed = $last - $first;
    my $most = 20 + floor($per_second * $elapsed);
    my ($replayed, $fills) = replay($ev, $per_second, 20);

    # How many a bucket admits depends on when the requests came: this
    # machine may deliver them unevenly, and while nobody asks a full
    # bucket loses what it would refill.  The replay of the log accounts
    # for that; and nothing, however the requests come, admits more than
    # burst + rate x elapsed.
    #
    # At 6,000 a second a millisecond is 6 tokens: the log's wall clock
    # and the bucket's monotonic clock are read at slightly different
    # moments, and on a busy virtual machine drift apart by up to about a
    # millisecond a second; so 0.1% here, where limit_req's error is
    # measured in percent.  Each time the bucket filled up, the moment it
    # did is known to the log's millisecond only, whose tokens it may or
    # may not have lost.
    $tolerance //= ngx_max(2 * $per_second / 1000 + 2, 0.001 * $most);
    my $under = $tolerance + $fills * $per_second / 1000;

    diag(sprintf '%s: %d requests in %.3f s, %d admitted, %d by a bucket '
        . 'fed the same requests (it filled up %d times), at most %d; '
        . '%d rejected', $tier, $n, $elapsed, $passed, $replayed, $fills,
        $most, $rejected);
    ok($passed <= $most + $tolerance,
        "$tier: never more than burst + rate x elapsed, "
        . "within $tolerance") or diag("admitted $passed, at most $most");
    ok($passed <= $replayed + $tolerance && $passed >= $replayed - $under,
        "$tier: what a bucket fed the same requests admits, at most "
        . "$tolerance over and $under under")
        or diag("admitted $passed, the replay $replayed");
    is($other, 0, "$tier: every other request was a 429");
    ok($rejected > 0, "$tier: the load drained the bucket");

    if ($tier eq 'steady') {
        my $r;
        for (1 .. 40) {
            $r = $t->get('/ping', headers => { 'X-API-Key' => $key });
            last if $r->{status} == 429;
        }
        is($r->{status}, 429, 'right after: 429');
        is($r->{json}{error}, 'rate_limited', 'in JSON');
        ok($r->{json}{retry_after} >= 1, 'with retry_after in the body');
        is($r->{headers}{'retry-after'}, $r->{json}{retry_after},
            'and Retry-After');
        is($r->{headers}{'x-ratelimit-remaining'}, 0, 'remaining 0');
        like($r->{headers}{ratelimit}, qr/^"steady";r=0;t=2$/,
            'RateLimit: empty, full again in 2 s (20 tokens at 10/s)');
    }

    if ($tier eq 'fast') {
        my ($ln, $lbad) = wrk_run('/lr', $key);
        my $lr_expected = 20 + floor(6000 * $seconds);
        diag(sprintf 'nginx limit_req at 6000r/s: %d requests, %d admitted '
            . '(%.1f%% of burst + rate x %d s)', $ln, $ln - $lbad,
            100 * ($ln - $lbad) / $lr_expected, $seconds);
    }
}

# 1 a day, burst 2: exact at the slow end too
my $slow = $t->create_key(tier => 'slow');
my @s = map { $t->get('/ping', headers => { 'X-API-Key' => $slow })
    ->{status} } 1 .. 3;
is_deeply(\@s, [200, 200, 429], '1 a day, burst 2: two pass, then 429');
my $r = $t->get('/ping', headers => { 'X-API-Key' => $slow });
ok($r->{headers}{'retry-after'} > 86400 - 60
   && $r->{headers}{'retry-after'} <= 86400,
   'Retry-After: the next token in a day') or diag($r->{headers}{'retry-after'});
ok($r->{headers}{'x-ratelimit-reset'} > 2 * 86400 - 60,
    'X-RateLimit-Reset: full again in two days');

# a reload keeps the bucket: still drained
$t->reload;
$r = $t->get('/ping', headers => { 'X-API-Key' => $slow });
is($r->{status}, 429, 'after nginx -s reload the drained key stays drained');

# daily quota
my $d3 = $t->create_key(tier => 'daily3');
@s = map { $t->get('/ping', headers => { 'X-API-Key' => $d3 })->{status} }
    1 .. 4;
is_deeply(\@s, [200, 200, 200, 429], 'daily=3: the fourth is refused');
$r = $t->get('/ping', headers => { 'X-API-Key' => $d3 });
like($r->{json}{message}, qr/daily quota/, 'and says it is the daily quota');
my $to_midnight = 86400 - time % 86400;
ok(abs($r->{headers}{'retry-after'} - $to_midnight) <= 2,
    'Retry-After: at the next UTC day');

# dry run: over the limit, logged, let through
my $dry = $t->create_key(tier => 'dry');
@s = map { $t->get('/dry', headers => { 'X-API-Key' => $dry })
    ->{status} } 1 .. 3;
is_deeply(\@s, [200, 200, 200], 'dry run: nothing is refused');
my @dry = grep { / dry dry_run$/ } do {
    open my $fh, '<', $t->dir . '/limits.log' or die; <$fh> };
is(scalar @dry, 2, '$dr_limit_status says dry_run for the two over');
like($t->error_log, qr/limiting requests, dry run, of key \d+/,
    'and the error log says so');

$t->stop;

done_testing;
