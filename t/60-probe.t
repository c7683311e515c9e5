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

my $sim = DR::Sim->start(latency_ms => 30, seed => 7, forget => 'forgotten.example');

my %models = (
    openai => 'gpt-4o-mini', anthropic => 'claude-3-5-haiku-20241022',
    google => 'gemini-1.5-flash', mistral => 'mistral-small-latest',
    deepseek => 'deepseek-chat',
    together => 'meta-llama/Llama-3.3-70B-Instruct-Turbo',
    xai => 'grok-3-mini', perplexity => 'sonar',
);

# obviously fake keys, from the environment, as an operator's would be
my $providers = '';
for my $p (sort keys %models) {
    my $env = 'DR_TEST_KEY_' . uc $p;
    $ENV{$env} = "sim-test-key-$p-0001";
    $providers .= sprintf "    dr_provider name=%s base=%s model=%s "
        . "key_env=%s rpm=600;\n", $p, $sim->base_url($p), $models{$p},
        $env;
}

my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
$providers
    server {
        listen 127.0.0.1:%%PORT%%;
        location /admin/ { dr_auth required; dr_admin; }
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

my $t0 = time;
my $r = probe('{"domain":"stripe.com"}');
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
    @{$j->{answers}} }}], [sort keys %models], 'from all eight providers');
ok($took < 5, 'all at once: 24 calls of ~30 ms took well under 5 s')
    and diag(sprintf 'probe took %.2f s', $took);
is($j->{scores}{memory_score}, 100, 'every answer recognized the brand');
ok(defined $j->{scores}{ai_consensus}, 'with consensus and the rest');
unlike($r->{content}, qr/sim-test-key/, 'no key in the answer');

my $stats = $sim->stats(recent => 1);
is($stats->{totals}{over_limit}, 0, 'no call over the providers\' limits');
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
