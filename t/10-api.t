# The public API over a fixture whose figures are computed by hand in
# t/lib/DR/Fixture.pm: every endpoint's status, headers, exact keys and
# types, and numbers.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Fixture;
use DR::Test;
use JSON::PP;
use Test::More;

binmode Test::More->builder->$_, ':encoding(UTF-8)'
    for qw(output failure_output todo_output);

my $t = DR::Test->new(db => 1, no_start => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_cache zone=api:1m ttl=60s;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF
DR::Fixture::load($t->dbh);
$t->start;

my $have_openapi = eval { require DR::OpenAPI; 1 };

# a 200 JSON answer of the API; the body checked against the OpenAPI
# document's schema of the operation
sub api {
    my ($path, $template, $status) = @_;
    $status //= 200;
    my $r = $t->get($path);
    is($r->{status}, $status, "$path: status $status")
        or diag($r->{content});
    is($r->{headers}{'content-type'}, 'application/json; charset=utf-8',
        "$path: JSON");
    if ($status == 200) {
        like($r->{headers}{etag} // '', qr/^"[0-9a-f]{16}"$/,
            "$path: a strong ETag");
        # a cached answer's freshness is what is left of the 60 s
        my $age = $r->{headers}{age} // 0;
        is($r->{headers}{'cache-control'}, 'public, max-age=' . (60 - $age),
            "$path: Cache-Control (Age $age)");
    }
    if ($have_openapi && $template) {
        DR::OpenAPI::response_ok('GET', $template, $status, $r->{json},
            "$path: matches the OpenAPI schema");
    }
    return $r->{json} // {};
}

sub keys_are {
    my ($obj, $keys, $name) = @_;
    is_deeply([sort keys %$obj], [sort @$keys], "$name: exactly its keys");
}

sub is_int { ok(defined $_[0] && $_[0] =~ /^-?\d+$/, $_[1]) }

# stats
my $j = api('/api/stats', '/api/stats');
keys_are($j, ['platform_stats'], 'stats');
my $ps = $j->{platform_stats};
keys_are($ps, [qw(total_domains average_memory_score total_ai_responses
                  critical_risk_domains last_updated)], 'platform_stats');
is($ps->{total_domains}, 4, 'stats: 4 active domains');
is($ps->{average_memory_score}, 70, 'stats: mean memory (60+100+50)/3');
is($ps->{total_ai_responses}, 5, 'stats: 5 answers stored');
is($ps->{critical_risk_domains}, 1, 'stats: alpha is critical');
like($ps->{last_updated}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    'stats: last_updated in ISO 8601');

# rankings
$j = api('/api/rankings', '/api/rankings');
keys_are($j, [qw(domains totalDomains totalPages currentPage)], 'rankings');
is_deeply([map { $_->{domain} } @{$j->{domains}}],
    [qw(beta.example alpha.example gamma.example)], 'rankings by score');
is_deeply([map { $_->{score} } @{$j->{domains}}], [100, 60, 59],
    'ranking scores 0.7 x memory + 0.3 x 100 x (1 - drift)');
keys_are($j->{domains}[0], [qw(domain score trend modelsPositive
    modelsNeutral modelsNegative dataFreshness lastUpdated)],
    'a ranked domain');
is_deeply([map { $_->{trend} } @{$j->{domains}}],
    ['±0.0%', '-20.0%', '+5.0%'], 'trends as signed strings');
is_deeply([map { $_->{dataFreshness} } @{$j->{domains}}],
    [qw(fresh fresh recent)], 'freshness: 1 hour, 1 hour, 3 days');
is_deeply([@{$j->{domains}[1]}{qw(modelsPositive modelsNeutral
    modelsNegative)}], [1, 1, 1], 'sentiment counts of alpha');
is_deeply([@$j{qw(totalDomains totalPages currentPage)}], [3, 1, 1],
    'rankings: totals');

my %order = (
    domain    => [qw(alpha.example beta.example gamma.example)],
    consensus => [qw(beta.example gamma.example alpha.example)],
    trend     => [qw(gamma.example beta.example alpha.example)],
    score     => [qw(beta.example alpha.example gamma.example)],
);
for my $sort (sort keys %order) {
    $j = api("/api/rankings?sort=$sort", '/api/rankings');
    is_deeply([map { $_->{domain} } @{$j->{domains}}], $order{$sort},
        "rankings sorted by $sort");
}

$j = api('/api/rankings?limit=2', '/api/rankings');
is(scalar @{$j->{domains}}, 2, 'limit=2: two domains');
is_deeply([@$j{qw(totalDomains totalPages currentPage)}], [3, 2, 1],
    'limit=2: two pages');
$j = api('/api/rankings?limit=2&page=2', '/api/rankings');
is_deeply([map { $_->{domain} } @{$j->{domains}}], ['gamma.example'],
    'page 2 holds the third');
$j = api('/api/rankings?limit=2&page=9', '/api/rankings');
is_deeply($j->{domains}, [], 'a page past the end is empty');
is($j->{totalDomains}, 3, 'and still counts every domain');

$j = api('/api/rankings?search=PH', '/api/rankings');
is_deeply([map { $_->{domain} } @{$j->{domains}}], ['alpha.example'],
    'search is a case-insensitive substring');
$j = api('/api/rankings?search=ta', '/api/rankings');
is_deeply([map { $_->{domain} } @{$j->{domains}}], ['beta.example'],
    'search finds scored domains only (delta has no scores)');
$j = api('/api/rankings?search=%25', '/api/rankings');
is_deeply($j->{domains}, [], 'a % in search is a character, not a pattern');
$j = api("/api/rankings?search=%27%20OR%201%3D1--", '/api/rankings');
is_deeply($j->{domains}, [], 'SQL in search is just text');

# public profile
$j = api('/api/domains/alpha.example/public',
    '/api/domains/{domain}/public');
keys_are($j, [qw(domain ai_intelligence business_profile data_freshness
    updated_at)], 'public');
is_deeply($j->{ai_intelligence}, {
    memory_score => 60, ai_consensus => 35, cohesion => 66.7,
    models_tracking => 3, response_count => 9, trend => '-20.0%',
    trend_direction => 'declining',
}, 'public: ai_intelligence of alpha');
is_deeply($j->{business_profile}, {
    category => 'Technology',
    market_position => 'established',   # 1 of 2 peers at or below: 50%
    key_themes => [qw(payments developers api)],
    reputation => 'mixed',               # 1 positive, 1 neutral, 1 negative
}, 'public: business_profile of alpha');
$j = api('/api/domains/ALPHA.example./public?include_alerts=true',
    '/api/domains/{domain}/public');
is($j->{domain}, 'alpha.example', 'domains are normalized');
is_deeply([map { $_->{type} } @{$j->{alerts}}],
    [qw(low_consensus declining_memory low_recognition)],
    'include_alerts lists the alerts');
is_deeply([map { $_->{severity} } @{$j->{alerts}}], [('critical') x 3],
    'alerts carry the risk level');
$j = api('/api/domains/beta.example/public', '/api/domains/{domain}/public');
is($j->{business_profile}{market_position}, 'leader', 'beta leads');
is($j->{business_profile}{reputation}, 'positive', 'beta is positive');
is_deeply($j->{business_profile}{key_themes}, [], 'no themes stored');

$j = api('/api/domains/delta.example/public',
    '/api/domains/{domain}/public', 404);
is($j->{error}, 'not_found', 'a domain without scores: 404');
like($j->{message}, qr/no scores yet for delta\.example/, 'and says so');
$j = api('/api/domains/unknown.example/public',
    '/api/domains/{domain}/public', 404);
like($j->{message}, qr/unknown domain unknown\.example/, 'unknown: 404');
$j = api('/api/domains/retired.example/public',
    '/api/domains/{domain}/public', 404);
like($j->{message}, qr/unknown domain/, 'an inactive domain is unknown');

# ticker
$j = api('/api/ticker?limit=2', '/api/ticker');
keys_are($j, [qw(topDomains totalDomains)], 'ticker');
is($j->{totalDomains}, 3, 'ticker: 3 scored domains');
is_deeply($j->{topDomains}[0], { domain => 'beta.example', score => 100,
    trend => [100], change => 0, modelsPositive => 3, modelsNeutral => 0,
    modelsNegative => 0 }, 'ticker: beta, one run');
is_deeply($j->{topDomains}[1]{trend}, [86, 60], 'ticker: alpha 86 then 60');
is($j->{topDomains}[1]{change}, -26, 'ticker: change 60 - 86');
$j = api('/api/ticker', '/api/ticker');
is(scalar @{$j->{topDomains}}, 3, 'ticker: default limit 5 holds all 3');

# categories
$j = api('/api/categories', '/api/categories');
is_deeply($j, { categories => [
    { name => 'Finance', domainCount => 2, averageScore => 59,
      topDomains => ['gamma.example'] },
    { name => 'Technology', domainCount => 2, averageScore => 80,
      topDomains => ['beta.example', 'alpha.example'] },
] }, 'categories: counts, mean scores (60+100)/2, top domains');

# shadows
$j = api('/api/shadows', '/api/shadows');
is_deeply($j, { declining => [ {
    domain => 'alpha.example', currentScore => 60, previousScore => 80,
    declineRate => 25, decliningWeeks => 1,
    modelsForgetting => ['anthropic/claude-3-5-haiku-20241022',
                         'google/gemini-1.5-flash'],
} ] }, 'shadows: alpha fell from 80 to 60 (25%), two models forgot it');

# fire alarm
$j = api('/api/fire-alarm-dashboard', '/api/fire-alarm-dashboard');
is_deeply($j, { high_risk_domains => [ {
    domain => 'alpha.example', reputation_risk => 100, ai_visibility => 60,
    brand_clarity => 35, monitoring_coverage => 37.5,
    active_alert_types => [qw(low_consensus declining_memory
                              low_recognition)],
} ], total_alerts => 3 },
    'fire alarm: alpha, 3 of 8 models tracking it (37.5%)');

# drift
$j = api('/api/drift/alpha.example', '/api/drift/{domain}');
keys_are($j, [qw(domain drift historical_trend)], 'drift');
is_deeply($j->{drift}, { drift_score => 0.4, drift_direction => 'declining',
    severity => 'drifting', periods => 1 }, 'drift of alpha');
is_deeply([map { [$_->{memory_score}, $_->{drift_score}] }
    @{$j->{historical_trend}}], [[80, 0], [60, 0.4]],
    'drift history oldest first');
api('/api/drift/delta.example', '/api/drift/{domain}', 404);

# consensus
$j = api('/api/consensus/alpha.example', '/api/consensus/{domain}');
is_deeply($j, { domain => 'alpha.example', consensus => {
    consensus_score => 35, agreement_level => 'low',
    model_agreement => { 'openai/gpt-4o-mini' => 50,
                         'anthropic/claude-3-5-haiku-20241022' => 30,
                         'google/gemini-1.5-flash' => 10 },
    divergent_models => ['google/gemini-1.5-flash'],   # below 35 - 20
    total_models => 3 } }, 'consensus of alpha');

# volatility
$j = api('/api/volatility/alpha.example', '/api/volatility/{domain}');
is_deeply($j, { domain => 'alpha.example', volatility => {
    volatility_score => 10, volatility_level => 'moderate',
    trend => '-20.0%', risk_level => 'critical' } }, 'volatility of alpha');

# time series
$j = api('/api/time-series/alpha.example', '/api/time-series/{domain}');
is_deeply([map { [$_->{memory_score}, $_->{ai_consensus},
    $_->{response_count}] } @{$j->{points}}], [[80, 60, 9], [60, 35, 9]],
    'time series of 30 days: both runs');
$j = api('/api/time-series/alpha.example?days=7',
    '/api/time-series/{domain}');
is(scalar @{$j->{points}}, 1, 'time series of 7 days: the last run only');
$j = api('/api/time-series/delta.example', '/api/time-series/{domain}');
is_deeply($j->{points}, [], 'no scores: no points');

# competitive
$j = api('/api/domains/alpha.example/competitive',
    '/api/domains/{domain}/competitive');
is_deeply($j, { domain => 'alpha.example', category => 'Technology',
    score => 60, rank => 2, total => 2,
    percentile => 25,              # (0 below + 0.5 x 1 equal) / 2
    grade => 'C',
    peers => [ { domain => 'beta.example', score => 100, rank => 1 },
               { domain => 'alpha.example', score => 60, rank => 2 } ] },
    'competitive position of alpha');
$j = api('/api/domains/beta.example/competitive',
    '/api/domains/{domain}/competitive');
is_deeply([@$j{qw(rank percentile grade)}], [1, 75, 'A'],
    'beta: (1 + 0.5) / 2 = 75%');

# providers
$j = api('/api/providers/health', '/api/providers/health');
my %p = map { $_->{provider} => $_ } @{$j->{providers}};
is(scalar keys %p, 8, 'eight providers');
is_deeply($p{openai}, { provider => 'openai', models => ['gpt-4o-mini'],
    active => JSON::PP::true, calls => 5, errors => 2, error_rate => 0.4,
    breaker_state => undef, p50_latency_ms => 200 },
    'openai: 3 answers + 2 failed attempts, median 200 ms');
is($p{anthropic}{error_rate}, 0.6667, 'anthropic: 2 of 3 failed');
ok(!$p{google}{active}, 'google answered nothing in 24 hours');
is($p{google}{p50_latency_ms}, undef, 'so it has no latency');

# the document
my $r = $t->get('/api/openapi.json');
is($r->{status}, 200, 'the OpenAPI document');
is($r->{json}{openapi}, '3.1.0', 'OpenAPI 3.1');

$t->stop;

done_testing;
