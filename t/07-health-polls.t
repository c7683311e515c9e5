# Health is about serving this node's traffic: with every provider failing
# and every breaker open, /readyz still answers 200 (the providers are in
# its body), and a load balancer polling /readyz and /healthz from one
# address is never rate limited nor asked for a key, however small the
# anonymous tier.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Sim;
use DR::Test;
use Test::More;

my $sim = DR::Sim->start(latency_ms => 5, seed => 3);
my $providers = $sim->providers_conf(rpm => 6000);

my $t = DR::Test->new(db => 1, no_start => 1, http => <<"EOF");
    dr_pg "%%PG%%";
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier anonymous rate=1/m burst=1 daily=0;
$providers
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_auth optional; dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
$t->dbh->do(q{INSERT INTO domains (domain) VALUES ('stripe.com')});
$t->start;
my $admin = $t->create_key(tier => 'admin');

# every provider fails: one probe opens every breaker
$sim->configure(faults => join ',', map { "$_:500=1" } sort keys %DR::Sim::MODELS);
my $r = $t->http('POST', '/admin/probe', headers => { 'X-API-Key' => $admin },
    body => '{"domain":"stripe.com"}', timeout => 60);
is($r->{status}, 200, 'the probe answers');
ok(!grep({ $_->{status} ne 'failed' } @{$r->{json}{answers} // []}),
    'every call failed');

$r = $t->get('/readyz');
is($r->{status}, 200, 'with every breaker open the node is still ready');
is($r->{json}{database}, 'ok', 'its database answers');
is_deeply($r->{json}{providers}{open_breakers}, [sort keys %DR::Sim::MODELS],
    'the open breakers are reported');
is($r->{json}{providers}{usable}, 0, 'no provider usable');

# the anonymous tier admits 1 a minute; health is not charged
my @codes = map {
    ($t->get('/readyz')->{status}, $t->get('/healthz')->{status})
} 1 .. 30;
is(scalar(grep { $_ == 200 } @codes), 60,
    '30 polls of /readyz and /healthz from one address: all 200');
ok(!defined $t->get('/healthz')->{headers}{ratelimit},
    'health answers carry no rate-limit state');
is($t->get('/health')->{status}, 200, '/health too');

my @api = map { $t->get('/api/stats')->{status} } 1 .. 3;
is_deeply(\@api, [200, 429, 429],
    'meanwhile the API itself is still limited (1 a minute)');

$sim->configure(faults => '');

$t->stop;
$t->check_log;
done_testing();
