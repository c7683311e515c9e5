# The probe: POST /admin/probe {domain} asks every active model of the
# eight providers every prompt at once, through libcurl in the nginx event
# loop, against the bundled provider simulator (real HTTP, the providers'
# wire formats), and answers with the answers and their scores.  Calls
# wait for their provider key's bucket, so the simulator counts no call
# over its limit; 429s and 5xx are retried; a forgotten brand scores low.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use Test::More;
use Time::HiRes qw(time);

# every model knows every domain but the forgotten one
my $sim = DR::Sim->start(latency_ms => 30, seed => 7, know_all => 1,
                         forget => 'forgotten.example');

my $providers = $sim->providers_conf(rpm => 600);

my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
$providers
    log_format trace escape=json '{"request_id":"\$request_id",'
        '"uri":"\$uri","status":\$status}';

    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/trace.log trace;
        location /admin/ { dr_auth required; dr_admin; }
        location = /metrics { dr_metrics; }
        location = /readyz { dr_api; }
    }
EOF
$t->dbh->do(q{INSERT INTO domains (domain, category)
              VALUES ('stripe.com', 'Finance'),
                     ('forgotten.example', 'Retail')});
$t->start;

my ($rc, $conf) = (0, `/usr/sbin/nginx -T -p @{[$t->dir]} -c @{[$t->dir]}/nginx.conf 2>&1`);
unlike($conf, qr/sim-test-key/, 'nginx -T shows no provider key');

my $admin = $t->create_key(tier => 'admin');
sub probe {
    my ($body, $key) = @_;
    return $t->http('POST', '/admin/probe',
        headers => { 'X-API-Key' => $key // $admin }, body => $body,
        timeout => 60);
}

# the calls are made at once: while the simulator holds each answer for
# two seconds, it has all 24 in flight together
$sim->configure(latency_ms => 2000);
$sim->reset;
my $t0 = time;
my $trace = '4bf92f3577b34da6a3ce929d0e0e4736';
my $r = $t->http('POST', '/admin/probe', headers => { 'X-API-Key' => $admin,
    traceparent => "00-$trace-00f067aa0ba902b7-01" },
    body => '{"domain":"stripe.com"}', timeout => 60);
my $took = time - $t0;
is($r->{status}, 200, 'a probe answers 200') or diag($r->{content});
my $j = $r->{json} // {};
is($j->{domain}, 'stripe.com', 'for the domain');
is(scalar @{$j->{answers} // []}, 24, '8 models x 3 prompts: 24 answers');
is(scalar(grep { $_->{status} eq 'ok' } @{$j->{answers}}), 24,
    'every one answered');
ok($j->{simulated}, 'marked as simulated (the simulator said so)');
is(scalar(grep { $_->{text} =~ /stripe/i } @{$j->{answers}}), 24,
    'every answer is about the brand');
is_deeply([sort { $a cmp $b } keys %{{ map { $_->{provider} => 1 }
    @{$j->{answers}} }}], [sort keys %DR::Sim::MODELS], 'from all eight providers');
is($j->{scores}{memory_score}, 100, 'every answer recognized the brand');
ok(defined $j->{scores}{ai_consensus}, 'with consensus and the rest');
unlike($r->{content}, qr/sim-test-key/, 'no key in the answer');

my $stats = $sim->stats(recent => 1);
is($stats->{totals}{max_in_flight}, 24,
    'all at once: the simulator held the 24 calls together');
diag(sprintf 'probe of 24 calls of ~2 s took %.2f s', $took);
$sim->configure(latency_ms => 30);
is($stats->{totals}{over_limit}, 0, 'no call over the providers\' limits');

# one API request followed through every call it made
my ($logged) = grep { m{"uri":"/admin/probe"} } do {
    open my $fh, '<', $t->dir . '/trace.log' or die; <$fh> };
my ($rid) = ($logged // '') =~ /"request_id":"([0-9a-f]{32})"/;
ok($rid, 'the probe has a request id in the JSON log');
my @calls = grep { ($_->{x_request_id} // '') eq ($rid // 'none') }
    @{$stats->{recent}};
is(scalar @calls, 24, 'the simulator saw all 24 calls with that request id');
is(scalar(grep { ($_->{traceparent} // '') =~ /^00-$trace-[0-9a-f]{16}-01$/ }
    @calls), 24, 'each with the client\'s trace id and a span of its own');
my %spans = map { (split /-/, $_->{traceparent})[2] => 1 } @calls;
is(scalar keys %spans, 24, '24 different spans');

# the metrics of the calls
my $metrics = $t->get('/metrics')->{content};
like($metrics, qr/^dr_provider_calls_total\{provider="openai",model="gpt-4o-mini",outcome="ok"\} 3$/m,
    'metrics: 3 calls to openai answered');
like($metrics, qr/^dr_provider_breaker\{provider="openai",state="closed"\} 1$/m,
    'metrics: its breaker is closed');
like($metrics, qr/^dr_provider_tokens_total\{provider="openai",direction="out"\} [1-9]\d*$/m,
    'metrics: tokens counted');
like($metrics, qr/^dr_provider_cost_dollars_total\{provider="openai"\} 0\.0\d*[1-9]\d*$/m,
    'metrics: cost counted');
like($metrics, qr/^dr_provider_bucket_tokens\{provider="openai",key="0"\} \d+$/m,
    'metrics: bucket tokens of the key');

my $ready = $t->get('/readyz');
is($ready->{status}, 200, 'ready');
is_deeply($ready->{json}{providers}, { configured => 8, usable => 8,
    open_breakers => [] }, 'readiness lists the providers, none broken');
ok(!grep({ ($_->{key_last4} // '') !~ /^(0001|\*+)$/ } @{$stats->{recent}}),
    'the simulator saw the configured keys');

# a forgotten brand
$r = probe('{"domain":"forgotten.example"}');
is($r->{status}, 200, 'a probe of a brand the models forget');
is($r->{json}{scores}{memory_score}, 0, 'scores memory 0');
ok($r->{json}{scores}{reputation_risk} >= 25, 'and is a reputation risk');

# retries: every provider answers 429 or 500 half the time
$sim->configure(faults => '429=0.25,500=0.25');
$r = probe('{"domain":"stripe.com"}');
is($r->{status}, 200, 'with faults: answered');
my @ans = @{$r->{json}{answers} // []};
ok(scalar(grep { $_->{attempts} > 1 } @ans) > 0, 'some calls were retried');
ok(!grep({ $_->{status} eq 'failed' && $_->{attempts} < 3 } @ans),
    'a call fails only after 3 attempts');
ok(!grep({ $_->{status} eq 'failed' && !$_->{error} } @ans),
    'a failed call says why');
like($t->error_log, qr/probe: \w+ .* attempt 1: .*request_id: "[0-9a-f]{32}"/,
    'the module\'s log lines carry the request id');
$sim->configure(faults => '');

# a provider that keeps failing opens its breaker
$sim->configure(faults => 'anthropic:500=1');
$r = probe('{"domain":"stripe.com"}');
my @an = grep { $_->{provider} eq 'anthropic' } @{$r->{json}{answers} // []};
is(scalar(grep { $_->{status} eq 'failed' } @an), 3,
    'anthropic failing: its 3 calls failed');
ok(scalar(grep { ($_->{error} // '') =~ /circuit breaker/ } @an),
    'after 5 failures in a row the breaker stopped the calls');
$ready = $t->get('/readyz');
is_deeply($ready->{json}{providers}, { configured => 8, usable => 7,
    open_breakers => ['anthropic'] }, 'readiness shows the open breaker');
$metrics = $t->get('/metrics')->{content};
like($metrics, qr/^dr_provider_breaker\{provider="anthropic",state="open"\} 1$/m,
    'and so do the metrics');
$sim->configure(faults => '');

# bad requests
$r = probe('{"domain":"nope.example"}');
is($r->{status}, 404, 'an unknown domain: 404');
$r = probe('{"domain":"bad_domain"}');
is($r->{status}, 400, 'a malformed domain: 400');
$r = probe('{"domain":"stripe.com","x":1}');
is($r->{status}, 400, 'an unknown field: 400');
$r = probe('not json');
is($r->{status}, 400, 'not JSON: 400');
my $free = $t->create_key(tier => 'free');
$r = probe('{"domain":"stripe.com"}', $free);
is($r->{status}, 403, 'a free key may not probe');
$r = $t->http('GET', '/admin/probe', headers => { 'X-API-Key' => $admin });
is($r->{status}, 405, 'GET /admin/probe: 405');

$t->stop;
$sim->stop;

done_testing;
