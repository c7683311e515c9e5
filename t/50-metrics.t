# Metrics: after known traffic, /metrics holds the exact counts (requests
# by group and status class, key checks, limit decisions, cache hits),
# parses as valid Prometheus exposition, sums both workers, and goes on
# counting across a reload.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use JSON::PP;
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=60s;
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier five rate=1/m burst=5 daily=0;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth required; dr_api; }
        location = /metrics { dr_metrics; }
    }
EOF
$t->start;
ok($t->wait_log(qr/listening for notifications/), 'the node listens');

sub scrape {
    my $r = $t->get('/metrics');
    is($r->{status}, 200, 'a scrape answers 200');
    like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
        'in the text exposition format');

    open my $fh, '|-', "$DR::Test::TOP/tools/metrics-parse > "
        . $t->dir . '/values.json' or die;
    print $fh $r->{content};
    close $fh;
    is($?, 0, 'the exposition parses and passes the checks')
        or diag($r->{content});

    my %v = %{decode_json(do {
        local (@ARGV, $/) = ($t->dir . '/values.json'); <> // '{}' })};
    return \%v;
}

my $key = $t->create_key(tier => 'five');

# what came before the test's traffic (under valgrind, the harness's own
# probes of the port) is the baseline
my $base = scrape();

# 7 requests with the key (5 pass, 2 refused), 3 without
my @codes = map { $t->get('/api/stats', headers => { 'X-API-Key' => $key })
    ->{status} } 1 .. 7;
is_deeply(\@codes, [(200) x 5, 429, 429], '5 answered, 2 refused');
@codes = map { $t->get('/api/ticker')->{status} } 1 .. 3;
is_deeply(\@codes, [401, 401, 401], '3 without a key');

# a worker counts a request when it is done, just after the answer left,
# and its key check before: wait until every counter named has its count
sub settled {
    my %want = @_;
    my $m;
    DR::Test::wait_for(sub {
        $m = scrape();
        !grep { ($m->{$_} // 0) - ($base->{$_} // 0) != $want{$_} }
            keys %want;
    }, 30);
    my %d = map { $_ => $m->{$_} - ($base->{$_} // 0) } keys %$m;
    return \%d;
}

my $m = settled('dr_auth_total{outcome=missing,tier=none}' => 3,
                'dr_http_requests_total{class=2xx,group=stats}' => 5,
                'dr_http_requests_total{class=4xx,group=stats}' => 2,
                'dr_http_requests_total{class=4xx,group=ticker}' => 3);
is($m->{'dr_http_requests_total{class=2xx,group=stats}'}, 5,
    'requests: 5 stats answered 2xx');
is($m->{'dr_http_requests_total{class=4xx,group=stats}'}, 2,
    'requests: 2 stats answered 4xx');
is($m->{'dr_http_requests_total{class=4xx,group=ticker}'}, 3,
    'requests: 3 ticker answered 4xx');
is($m->{'dr_http_request_duration_seconds_count{group=stats}'}, 7,
    'the latency histogram of stats counts 7');
is($m->{'dr_auth_total{outcome=ok,tier=five}'}, 7, 'key checks: 7 ok');
is($m->{'dr_auth_total{outcome=missing,tier=none}'}, 3,
    'key checks: 3 missing');
is($m->{'dr_limit_decisions_total{decision=passed,tier=five}'}, 5,
    'limits: 5 passed');
is($m->{'dr_limit_decisions_total{decision=rejected,tier=five}'}, 2,
    'limits: 2 rejected');
is($m->{'dr_cache_misses_total{}'}, 1, 'cache: 1 miss');
is($m->{'dr_cache_hits_total{}'}, 4, 'cache: 4 hits');
is($m->{'dr_cache_entries{}'}, 1, 'cache: 1 entry');
ok($m->{'dr_pg_queries_total{outcome=ok}'} >= 2,
    'queries: the key look-up and the stats query at least');
ok(defined $m->{'dr_pg_connections{state=open}'}, 'pool connections');

# a reload: the counters go on
$t->reload;
my $after = settled('dr_http_requests_total{class=2xx,group=stats}', 5);
is($after->{'dr_http_requests_total{class=2xx,group=stats}'}, 5,
    'after a reload the counts are kept');
$t->get('/api/ticker', headers => { 'X-API-Key' => 'dr_nonsense' });
$after = settled('dr_http_requests_total{class=4xx,group=ticker}', 4);
is($after->{'dr_http_requests_total{class=4xx,group=ticker}'}, 4,
    'and go on');
is($after->{'dr_auth_total{outcome=invalid,tier=none}'}, 1,
    'a malformed key counts as invalid');

# the checker is no rubber stamp
for my $bad ("x 1",
             "# TYPE x counter\nx{a=\"1\" 1\n",
             "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
             "# TYPE h histogram\nh_bucket{le=\"1\"} 3\n"
             . "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n") {
    open my $fh, '|-', "$DR::Test::TOP/tools/metrics-parse >/dev/null 2>&1"
        or die;
    print $fh $bad;
    close $fh;
    isnt($?, 0, 'a broken exposition is refused: ' . ($bad =~ s/\n/ /gr));
}

$t->stop;

done_testing;
