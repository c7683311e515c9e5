# The admin API for domains and runs: domains are added in bulk with the
# invalid ones said, retired, and a run creates one job per active domain,
# model and prompt of its scope, whose progress can be read.

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

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
        location /admin/ { dr_auth required; dr_admin; }
    }
EOF
$t->dbh->do(q{INSERT INTO domains (domain, category, cohort)
              VALUES ('stripe.com', 'Finance', 'payments')});
$t->start;
ok($t->wait_log(qr/listening for notifications/), 'the node listens');

my $admin = $t->create_key(tier => 'admin');

sub admin { $t->keyed($admin, @_) }

is($t->get('/api/stats')->{json}{platform_stats}{total_domains}, 1,
    'one domain to start with (and the answer is cached)');

my $r = admin('POST', '/admin/domains', encode_json({
    domains => ['Adyen.com', 'wise.com', 'wise.com', 'stripe.com',
                'bad_domain', 42, 'localhost'],
    category => 'Finance', cohort => 'payments', priority => 7 }));
is($r->{status}, 200, 'domains added in bulk');
is($r->{json}{added}, 2, 'two new (adyen.com, wise.com once)');
is($r->{json}{skipped}, 1, 'one there already (stripe.com)');
is_deeply([map { $_->{domain} } @{$r->{json}{invalid}}],
    ['bad_domain', undef, 'localhost'], 'three invalid, each said');
ok(!grep({ !$_->{reason} } @{$r->{json}{invalid}}), 'each with a reason');

my ($n) = $t->dbh->selectrow_array(q{SELECT count(*) FROM domains
    WHERE domain IN ('adyen.com', 'wise.com') AND priority = 7
      AND cohort = 'payments'});
is($n, 2, 'stored lower-cased with their category, cohort and priority');
is($t->get('/api/stats')->{json}{platform_stats}{total_domains}, 3,
    'the cached count was dropped: 3 domains');

for my $bad (['{}', 'domains'], ['{"domains":[]}', 'domains'],
             ['{"domains":["a.com"],"colour":1}', 'unknown field'],
             ['{"domains":["a.com"],"priority":11}', 'priority'],
             ['{"domains":["a.com"],"category":"a\nb"}', 'category'],
             ['[1]', 'object'], ['{"domains":', 'JSON']) {
    $r = admin('POST', '/admin/domains', $bad->[0]);
    is($r->{status}, 400, "bad domains request $bad->[0]: 400");
    like($r->{json} && $r->{json}{message}, qr/\Q$bad->[1]\E/,
        "and says $bad->[1]");
}
$r = admin('POST', '/admin/domains',
    encode_json({ domains => [map { "d$_.example" } 1 .. 1001] }));
is($r->{status}, 400, '1001 domains: 400');

$r = admin('DELETE', '/admin/domains/wise.com');
is($r->{status}, 200, 'a domain retired');
is_deeply($r->{json}, { domain => 'wise.com', active => JSON::PP::false },
    'and says so');
is(admin('DELETE', '/admin/domains/wise.com')->{status}, 404,
    'retiring it again: 404');
is(admin('DELETE', '/admin/domains/bad_domain')->{status}, 400,
    'a malformed domain: 400');

# runs: 2 active domains x 8 models x 3 prompts
$r = admin('POST', '/admin/runs', '{}');
is($r->{status}, 202, 'a run of everything: 202');
is($r->{json}{jobs}, 2 * 8 * 3, '48 jobs');
my $run = $r->{json}{run_id};

$r = admin('POST', '/admin/runs', encode_json({ domains => ['STRIPE.com'],
    models => ['openai/gpt-4o-mini', 'sonar'],
    prompts => ['business_analysis'] }));
is($r->{status}, 202, 'a run of a scope');
is($r->{json}{jobs}, 2, '1 domain x 2 models x 1 prompt');

$r = admin('POST', '/admin/runs', encode_json({ cohort => 'payments' }));
is($r->{json}{jobs}, 48, 'a run of a cohort');

($n) = $t->dbh->selectrow_array(
    'SELECT count(*) FROM jobs WHERE run_id = ? AND status = ?', undef,
    $run, 'queued');
is($n, 48, 'the jobs are queued in the database');

$r = admin('GET', "/admin/runs/$run");
is($r->{status}, 200, 'a run\'s progress');
is_deeply([@{$r->{json}}{qw(run_id status total done failed dead in_flight
    queued)}], [$run, 'queued', 48, 0, 0, 0, 0, 48], 'all 48 queued');
is($r->{json}{eta_seconds}, undef, 'no ETA before any job is done');

for my $bad (['{"domains":["bad_domain"]}', 'domains'],
             ['{"models":[]}', 'models'], ['{"when":"now"}', 'unknown'],
             ['{"domains":["nobody.example"]}', 'no active domain']) {
    $r = admin('POST', '/admin/runs', $bad->[0]);
    is($r->{status}, 400, "bad run $bad->[0]: 400");
    like($r->{json} && $r->{json}{message}, qr/\Q$bad->[1]\E/,
        "and says $bad->[1]");
}
is(admin('GET', '/admin/runs/99999')->{status}, 404, 'an unknown run: 404');
is(admin('GET', '/admin/runs/abc')->{status}, 400, 'a run id no number: 400');
is(admin('GET', '/admin/domains')->{status}, 405, 'GET /admin/domains: 405');

$t->stop;

done_testing;
