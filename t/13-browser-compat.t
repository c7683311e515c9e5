# What a browser client of the original API sends and reads: cache
# busters and other unknown query parameters are ignored (and kept out of
# the cache key), malformed or repeated known ones are still 400;
# preflights that ask for several headers are answered for allowed
# origins (403 for others), without a key (also where keys are
# required) and without taking a token; the fields the original's frontend reads are there
# (lastUpdated, trend_direction, data_freshness.last_updated, detail).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use Test::More;

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=30s;
    dr_key_secret_file %%SECRET%%;
    dr_auth_cache zone=keys:1m;
    dr_limit_zone zone=limits:1m;
    dr_tier anonymous rate=3/m burst=3 daily=0;

    server {
        listen 127.0.0.1:%%PORT%%;
        error_page 400 404 405 413 414 494 /_dr_error;

        location / {
            dr_api;
            dr_auth optional;
            dr_cors_origins https://app.example;
        }

        location /keyed/ {
            dr_auth required;
            dr_cors_origins https://app.example;
            empty_gif;
        }

        location = /_dr_error { internal; dr_api; }
    }
EOF
DR::Fixture::load($t->dbh);
$t->start;

my $origin = 'https://app.example';
my %preflight = (
    'Origin' => $origin,
    'Access-Control-Request-Method' => 'GET',
    'Access-Control-Request-Headers' => 'cache-control,pragma,x-api-key',
);

# six preflights: all answered, none takes a token of the anonymous tier
# (3 a minute: a charged preflight would leave too few for the GETs)
for my $i (1 .. 6) {
    my $r = $t->http('OPTIONS', '/api/rankings', headers => \%preflight);
    is($r->{status}, 204, "preflight $i: 204");
    if ($i == 1) {
        is($r->{headers}{'access-control-allow-origin'}, $origin,
            'the origin is allowed');
        like($r->{headers}{'access-control-allow-headers'} // '',
            qr/cache-control,pragma,x-api-key/i,
            'the headers the browser asked for are allowed');
        ok(!defined $r->{headers}{ratelimit},
            'a preflight carries no rate-limit state');
    }
}

my @ok = map { $t->get("/api/rankings?_t=17000000000$_",
    headers => { Origin => $origin })->{status} } 1 .. 3;
is_deeply(\@ok, [200, 200, 200],
    'after six preflights the anonymous client still has its 3 requests');
my $r = $t->get('/api/rankings?_t=1', headers => { Origin => $origin });
is($r->{status}, 429, 'the fourth GET meets the limit: preflights were free');
is($r->{json}{detail}, $r->{json}{message}, 'a 429 has detail');

# another origin, and a header list that is not a list of names
$r = $t->http('OPTIONS', '/api/rankings',
    headers => { %preflight, Origin => 'https://evil.example' });
is($r->{status}, 403, 'a preflight from another origin: 403');
is($r->{json}{error}, 'origin_not_allowed', 'saying why');
$r = $t->http('OPTIONS', '/api/rankings', headers => { %preflight,
    'Access-Control-Request-Headers' => "x-a\r\nx-b: 1" });
unlike($r->{headers}{'access-control-allow-headers'} // '', qr/x-b/,
    'a request-headers value with other characters is not echoed');

# a location that needs a key: the preflight needs none
$r = $t->http('OPTIONS', '/keyed/thing', headers => \%preflight);
is($r->{status}, 204, 'preflight where keys are required: 204 without one');
like($r->{headers}{'access-control-allow-methods'} // '', qr/\bGET\b/,
    'it allows the method');
$r = $t->get('/keyed/thing', headers => { Origin => $origin });
is($r->{status}, 401, 'the request itself still needs a key');
$r = $t->http('OPTIONS', '/keyed/thing',
    headers => { %preflight, Origin => 'https://evil.example' });
is($r->{status}, 403, 'a preflight from another origin: 403, no key asked');
$r = $t->http('OPTIONS', '/keyed/thing');
is($r->{status}, 401, 'a bare OPTIONS is no preflight: 401');

# cache busters and known parameters, with a key (the anonymous tier is
# spent by now)
my $key = $t->create_key(tier => 'admin', name => 'browser');
my %k = ('X-API-Key' => $key);
my $a = $t->get('/api/rankings?limit=2&_t=1700000000001', headers => \%k);
is($a->{status}, 200, 'an unknown parameter is ignored: 200');
my $b = $t->get('/api/rankings?limit=2&_t=1700000000002&utm_source=x',
    headers => \%k);
is($b->{status}, 200, 'several unknown parameters: 200');
ok(defined $b->{headers}{age},
    'a different cache buster is the same cached answer');
is($b->{content}, $a->{content}, 'with the same body');
is(scalar @{$a->{json}{domains}}, 2, 'the known parameter still applies');
ok($a->{json}{domains}[0]{lastUpdated}
    && $a->{json}{domains}[0]{lastUpdated} =~ /^\d{4}-\d\d-\d\dT/,
    'rankings items have lastUpdated');

for my $bad ('limit=0', 'limit=abc', 'limit=2&limit=3', 'sort=nope',
    'page=%zz')
{
    $r = $t->get("/api/rankings?$bad&_t=1", headers => \%k);
    is($r->{status}, 400, "$bad: 400");
    is($r->{json}{detail}, $r->{json}{message}, "$bad: detail");
}

# the profile's fields the original's clients read
$r = $t->get('/api/domains/alpha.example/public?_t=5', headers => \%k);
is($r->{status}, 200, 'profile with a cache buster: 200');
like($r->{json}{ai_intelligence}{trend_direction} // '',
    qr/^(improving|declining|stable)$/, 'trend_direction');
is($r->{json}{data_freshness}{last_updated}, $r->{json}{updated_at},
    'data_freshness.last_updated');
like($r->{json}{data_freshness}{status} // '', qr/^(fresh|recent|stale)$/,
    'data_freshness.status');

$r = $t->get('/api/domains/unknown.example/public', headers => \%k);
is($r->{status}, 404, 'an unknown domain: 404');
is($r->{json}{detail}, $r->{json}{message}, 'a 404 body has detail');
$r = $t->get('/api/nothing-here', headers => \%k);
is($r->{json}{detail}, $r->{json}{message}, 'so has an unknown path');

$t->stop;
$t->check_log;
done_testing();
