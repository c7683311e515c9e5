# The OpenAPI document of the public API, ngx_dr_module/openapi.json: valid
# OpenAPI 3.1 for a real validator (which must also reject broken copies),
# every endpoint with the exact fields of its answers, strict schemas, the
# DR::OpenAPI helper that endpoint tests use, and the generated C file
# that serves it kept up to date.  Needs no nginx and no database.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;

use DR::OpenAPI;

my $TOP = abs_path("$FindBin::Bin/..");
my $DOC = "$TOP/ngx_dr_module/openapi.json";
my $GEN = "$TOP/ngx_dr_module/ngx_dr_openapi.c";
my $VALIDATE = "$TOP/tools/openapi/validate.js";
my $TMP = tempdir('dr-openapi-XXXXXX', TMPDIR => 1, CLEANUP => 1);

my $json = JSON::PP->new->utf8->canonical->pretty;

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "$file: $!";
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $data) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print {$fh} $data;
    close $fh or die "$file: $!";
}

my $doc = eval { decode_json(slurp($DOC)) };
ok($doc, 'openapi.json is JSON') or BAIL_OUT("openapi.json: $@");


# ---------------------------------------------------------------------------
# the document's frame

is($doc->{openapi}, '3.1.0', 'OpenAPI 3.1.0');
is($doc->{info}{title}, 'Domain Runner API', 'title');
is_deeply($doc->{servers}, [{ url => '/' }], 'servers');
is_deeply($doc->{security},
    [{}, { ApiKeyHeader => [] }, { BearerAuth => [] }],
    'security: anonymous, API key header or bearer');
is_deeply($doc->{components}{securitySchemes}{ApiKeyHeader},
    { type => 'apiKey', in => 'header', name => 'X-API-Key',
      description => $doc->{components}{securitySchemes}{ApiKeyHeader}
                     {description} },
    'X-API-Key scheme');
is($doc->{components}{securitySchemes}{BearerAuth}{type}, 'http',
    'bearer scheme is http');
is($doc->{components}{securitySchemes}{BearerAuth}{scheme}, 'bearer',
    'bearer scheme');

my $h = slurp("$TOP/ngx_dr_module/ngx_dr_module.h");
my ($version) = $h =~ /#define\s+NGX_DR_VERSION\s+"([^"]+)"/;
is($doc->{info}{version}, $version,
    'info.version is the module version (NGX_DR_VERSION)');


# ---------------------------------------------------------------------------
# a real OpenAPI 3.1 validator: the document passes, broken copies do not

my $node_ok = 1;
my $node = `command -v node 2>/dev/null`;
chomp $node;

if (!$node) {
    fail('node is installed');
    diag('node is missing: run "make deps"');
    $node_ok = 0;
} elsif (!-d "$TOP/tools/openapi/node_modules/\@seriousme/"
                 . 'openapi-schema-validator'
         || !-d "$TOP/tools/openapi/node_modules/ajv")
{
    fail('the validator is installed in tools/openapi/node_modules');
    diag('tools/openapi/node_modules is missing or incomplete: run '
         . '"make deps" (cd tools/openapi && npm ci --no-audit --no-fund)');
    $node_ok = 0;
}

sub validate {
    my ($file) = @_;
    my $out = `node '$VALIDATE' '$file' 2>&1`;
    return ($? >> 8, $out);
}

if ($node_ok) {
    my ($rc, $out) = validate($DOC);
    is($rc, 0, 'openapi.json is a valid OpenAPI 3.1 document')
        or diag($out);
    like($out, qr/valid OpenAPI 3\.1\.0 \(30 paths, 30 operations, \d+ schemas/,
        'the validator saw every path and schema') or diag($out);

    # each breakage, made on a copy, must be rejected with its location
    my @broken = (
        [ 'a response field of type "intger"', sub {
              $_[0]{components}{schemas}{RankedDomain}{properties}
                  {modelsPositive}{type} = 'intger';
          }, qr{RankedDomain.*type} ],
        [ 'an inline response schema of type "intger"', sub {
              $_[0]{paths}{'/healthz'}{get}{responses}{200}{content}
                  {'application/json'}{schema} = { type => 'intger' };
          }, qr{healthz.*type} ],
        [ 'a misspelt keyword (additonalProperties)', sub {
              my $s = $_[0]{components}{schemas}{Error};
              $s->{additonalProperties} = delete $s->{additionalProperties};
          }, qr{Error.*additonalProperties} ],
        [ 'required naming a field that is not defined', sub {
              push @{$_[0]{components}{schemas}{Drift}{required}},
                  'drift_scroe';
          }, qr{drift_scroe} ],
        [ 'an unknown format', sub {
              $_[0]{components}{schemas}{DriftPoint}{properties}{date}
                  {format} = 'datetime';
          }, qr{datetime} ],
        [ 'a $ref to a schema that does not exist', sub {
              $_[0]{components}{schemas}{RankedDomain}{properties}{trend}
                  = { '$ref' => '#/components/schemas/Trnd' };
          }, qr{Trnd} ],
        [ 'a parameter "in": "body" (OpenAPI 2, not 3)', sub {
              $_[0]{components}{parameters}{Page}{in} = 'body';
          }, qr{#/components/parameters/Page} ],
        [ 'a path that does not start with "/"', sub {
              $_[0]{paths}{'api/stats'} = delete $_[0]{paths}{'/api/stats'};
          }, qr{api/stats|#/paths} ],
        [ 'a path parameter that is not declared', sub {
              $_[0]{paths}{'/api/drift/{domain}'}{get}{parameters} = [];
          }, qr{\{domain\} is not defined} ],
        [ 'a duplicate operationId', sub {
              $_[0]{paths}{'/api/ticker'}{get}{operationId} = 'getStats';
          }, qr{operationId getStats} ],
        [ 'a default outside its bounds', sub {
              $_[0]{components}{parameters}{Limit}{schema}{default} = 101;
          }, qr{Limit/schema/default} ],
        [ 'a missing info.title', sub {
              delete $_[0]{info}{title};
          }, qr{title} ],
    );

    for my $b (@broken) {
        my ($name, $break, $where) = @$b;
        my $copy = decode_json(slurp($DOC));
        $break->($copy);
        spew("$TMP/broken.json", $json->encode($copy));

        my ($rc, $out) = validate("$TMP/broken.json");
        isnt($rc, 0, "the validator rejects $name") or diag($out);
        like($out, $where, "... and says where") or diag($out);
    }
}


# ---------------------------------------------------------------------------
# every endpoint, GET only but the accounts' three POSTs, and nothing else

my %expected = map { ($_ => 1) } qw(
    /health /healthz /readyz /api/stats /api/rankings
    /api/domains/{domain}/public /api/ticker /api/categories /api/shadows
    /api/fire-alarm-dashboard /api/drift/{domain} /api/consensus/{domain}
    /api/volatility/{domain} /api/time-series/{domain}
    /api/domains/{domain}/competitive /api/providers/health
    /api/openapi.json /api/usage /api/auth/me /api/jolt-benchmark/{domain}
    /api/domains/{domain}/seo
    /api/tensors/{domain}
    /api/trends/degradation /api/trends/improvement /api/stats/rich
    /api/rankings/rich /api/domains/{domain}/rich
);
my %posts = map { ($_ => 1) } qw(
    /api/auth/register /api/auth/login /api/auth/password
);

my %op_ids;
is_deeply([sort keys %{$doc->{paths}}], [sort keys %expected, keys %posts],
    'the paths are exactly those of the public API');
is_deeply([map { "@$_" } DR::OpenAPI::operations()],
    [map { ($posts{$_} ? 'POST' : 'GET') . " $_" }
         sort keys %expected, keys %posts],
    'each path has exactly one operation, GET (POST for the accounts)');

for my $path (sort keys %posts) {
    my $op = $doc->{paths}{$path}{post};
    ok($op->{operationId} && !$op_ids{$op->{operationId}}++,
        "$path: a unique operationId");
    ok($op->{requestBody}{required}, "$path: a JSON body");
    ok($op->{responses}{$_}, "$path: $_ documented")
        for 400, 405, 429, 500, 503;
}

for my $path (sort keys %{$doc->{paths}}) {
    my $op = $doc->{paths}{$path}{get} or next;
    my $r = $op->{responses};

    ok($op->{operationId} && !$op_ids{$op->{operationId}}++,
        "$path: a unique operationId");
    ok($op->{summary}, "$path: a summary");

    ok($r->{200}, "$path: 200 documented");
    for my $status (405, 429, 500) {
        ok($r->{$status}, "$path: $status documented");
    }

    # a key's own usage is never cached: no ETag, but a key is needed
    my $own = $path eq '/api/usage' || $path eq '/api/auth/me';

    if ($path =~ m{^/api/}) {
        ok($r->{400}, "$path: 400 documented");
        ok($own || $r->{304}, "$path: 304 documented (If-None-Match)");
        my ($ok) = DR::OpenAPI::response('GET', $path, 200);
        my %h = map { ($_ => 1) } keys %{$ok->{headers} // {}};
        ok($h{$_}, "$path 200: header $_") for qw(Cache-Control
            RateLimit RateLimit-Policy X-RateLimit-Limit
            X-RateLimit-Remaining X-RateLimit-Reset);
        ok($own ? !$h{ETag} : $h{ETag}, "$path 200: "
            . ($own ? 'no ETag' : 'header ETag'));
    }
    if ($own) {
        ok($r->{401}, "$path: 401 documented");
        is_deeply($op->{security}, [{ ApiKeyHeader => [] },
            { BearerAuth => [] }], "$path: a key is needed");
    }
    if ($path =~ m{^/api/} && $path ne '/api/openapi.json') {
        ok($r->{503}, "$path: 503 documented");
    }
    if ($path =~ /\{domain\}/) {
        ok($r->{404}, "$path: 404 documented");
    }

    # the parameters' types and bounds
    for my $p (@{$op->{parameters} // []}) {
        $p = DR::OpenAPI::deref($p);
        ok($p->{schema}{type}, "$path: parameter $p->{name} has a type");
        if ($p->{schema}{type} eq 'integer') {
            ok(defined $p->{schema}{minimum}
               && defined $p->{schema}{maximum},
               "$path: parameter $p->{name} has bounds");
        } elsif ($p->{schema}{type} eq 'string' && !$p->{schema}{enum}) {
            ok($p->{schema}{maxLength},
               "$path: parameter $p->{name} has a maximum length");
        }
    }
}

my %params = map {
    my $p = DR::OpenAPI::deref($_);
    $p->{in} eq 'query' ? ("$p->{in}:$p->{name}" => $p->{schema}) : ()
} @{$doc->{paths}{'/api/rankings'}{get}{parameters}};

is_deeply(\%params, {
    'query:page' => { type => 'integer', minimum => 1, maximum => 100000,
                      default => 1 },
    'query:limit' => { type => 'integer', minimum => 1, maximum => 100,
                       default => 20 },
    'query:sort' => { type => 'string', default => 'score',
                      enum => [qw(score consensus trend domain)] },
    'query:search' => { type => 'string', minLength => 1,
                        maxLength => 100 },
}, '/api/rankings parameters');

sub param_schema {
    my ($path, $name) = @_;
    for (@{$doc->{paths}{$path}{get}{parameters}}) {
        my $p = DR::OpenAPI::deref($_);
        return $p->{schema} if $p->{name} eq $name;
    }
    return undef;
}

is_deeply([@{param_schema('/api/ticker', 'limit')}{qw(minimum maximum
    default)}], [1, 20, 5], '/api/ticker limit 1..20, default 5');
is_deeply([@{param_schema('/api/time-series/{domain}', 'days')}{qw(minimum
    maximum default)}], [1, 365, 30], '/api/time-series days 1..365, '
    . 'default 30');
is_deeply([@{param_schema('/api/usage', 'days')}{qw(minimum maximum
    default)}], [1, 90, 30], '/api/usage days 1..90, default 30');
is(param_schema('/api/domains/{domain}/public', 'include_alerts')->{type},
    'boolean', 'include_alerts is a boolean');
is(param_schema('/api/drift/{domain}', 'domain')->{maxLength}, 253,
    'domain: at most 253 characters');

is_deeply([DR::OpenAPI::required_headers('GET', '/api/ticker', 429)],
    [qw(RateLimit RateLimit-Policy Retry-After X-RateLimit-Limit
        X-RateLimit-Remaining X-RateLimit-Reset)],
    '429 has Retry-After and the rate-limit headers');
is_deeply([DR::OpenAPI::required_headers('GET', '/api/ticker', 405)],
    ['Allow'], '405 has Allow');


# ---------------------------------------------------------------------------
# the exact fields of every answer (the contract the C code follows):
# a name is a scalar field, name => {...} an object, name => [{...}] an
# array of objects; '?' marks the one field that is not required

# the parts of readiness, present when configured (or known)
my %readiness_parts = (
    'replicas?' => [{ name => 1, status => 1 }],
    'providers?' => { configured => 1, usable => 1, open_breakers => 1 },
    'queue?' => { queued => 1, leased => 1, failed => 1, dead => 1 },
);

my %shapes = (
    'GET /health 200' => { status => 1, database => 1, timestamp => 1,
        monitoring_stats => { domains_monitored => 1, fresh_24h => 1,
                              high_risk => 1, active_alerts => 1 } },
    'GET /health 503' => { status => 1, database => 1, timestamp => 1,
                           monitoring_stats => 1 },
    'GET /healthz 200' => { status => 1, version => 1 },
    'GET /readyz 200' => { status => 1, database => 1, %readiness_parts },
    'GET /readyz 503' => { status => 1, database => 1, error => 1,
                           message => 1, detail => 1, %readiness_parts },
    'GET /api/stats 200' => { platform_stats => { total_domains => 1,
        average_memory_score => 1, total_ai_responses => 1,
        critical_risk_domains => 1, last_updated => 1 } },
    'GET /api/rankings 200' => {
        domains => [{ domain => 1, score => 1, trend => 1,
                      modelsPositive => 1, modelsNeutral => 1,
                      modelsNegative => 1, dataFreshness => 1,
                      lastUpdated => 1 }],
        totalDomains => 1, totalPages => 1, currentPage => 1 },
    'GET /api/domains/{domain}/public 200' => {
        domain => 1,
        ai_intelligence => { memory_score => 1, ai_consensus => 1,
            cohesion => 1, models_tracking => 1, response_count => 1,
            trend => 1, trend_direction => 1 },
        business_profile => { category => 1, market_position => 1,
            key_themes => 1, reputation => 1 },
        data_freshness => { last_updated => 1, status => 1 },
        'alerts?' => [{ type => 1, severity => 1, message => 1 }],
        updated_at => 1 },
    'GET /api/ticker 200' => {
        topDomains => [{ domain => 1, score => 1, trend => 1, change => 1,
                         modelsPositive => 1, modelsNeutral => 1,
                         modelsNegative => 1 }],
        totalDomains => 1 },
    'GET /api/categories 200' => {
        categories => [{ name => 1, domainCount => 1, averageScore => 1,
                         topDomains => 1 }] },
    'GET /api/shadows 200' => {
        declining => [{ domain => 1, currentScore => 1, previousScore => 1,
                        declineRate => 1, decliningWeeks => 1,
                        modelsForgetting => 1 }] },
    'GET /api/fire-alarm-dashboard 200' => {
        high_risk_domains => [{ domain => 1, reputation_risk => 1,
            ai_visibility => 1, brand_clarity => 1,
            monitoring_coverage => 1, active_alert_types => 1 }],
        total_alerts => 1 },
    'GET /api/drift/{domain} 200' => {
        domain => 1,
        drift => { drift_score => 1, drift_direction => 1, severity => 1,
                   periods => 1 },
        historical_trend => [{ date => 1, memory_score => 1,
                               drift_score => 1 }] },
    'GET /api/consensus/{domain} 200' => {
        domain => 1,
        consensus => { consensus_score => 1, agreement_level => 1,
                       model_agreement => 1, divergent_models => 1,
                       total_models => 1 } },
    'GET /api/volatility/{domain} 200' => {
        domain => 1,
        volatility => { volatility_score => 1, volatility_level => 1,
                        trend => 1, risk_level => 1 } },
    'GET /api/time-series/{domain} 200' => {
        domain => 1,
        points => [{ date => 1, memory_score => 1, ai_consensus => 1,
                     response_count => 1 }],
        events => [{ id => 1, date => 1, kind => 1, severity => 1,
                     title => 1, url => 1, jolt => 1 }] },
    'GET /api/jolt-benchmark/{domain} 200' => {
        domain => 1, jolt => 1,
        windows => { before_days => 1, after_days => 1 },
        events => [{ id => 1, kind => 1, severity => 1, title => 1,
            jolt => 1, occurred_at => 1,
            before => { runs => 1, memory_score => 1, sentiment => 1,
                        drift => 1 },
            after => { runs => 1, memory_score => 1, sentiment => 1,
                       drift => 1 },
            change => { memory_score => 1, sentiment => 1, drift => 1 },
            runs_after => [{ run_id => 1, jolt_run => 1, captured_at => 1,
                days_after => 1, memory_score => 1, sentiment => 1,
                drift => 1 }] }] },
    'GET /api/domains/{domain}/seo 200' => {
        domain => 1, days => 1, source => 1, correlation => 1,
        series => [{ date => 1, memory_score => 1, metrics => 1 }] },
    'GET /api/domains/{domain}/competitive 200' => {
        domain => 1, category => 1, score => 1, rank => 1, total => 1,
        percentile => 1, grade => 1,
        peers => [{ domain => 1, score => 1, rank => 1 }] },
    'GET /api/providers/health 200' => {
        providers => [{ provider => 1, models => 1, active => 1, calls => 1,
                        errors => 1, error_rate => 1, breaker_state => 1,
                        p50_latency_ms => 1 }] },
    'GET /api/usage 200' => {
        key => { id => 1, prefix => 1, name => 1, tier => 1 },
        days => 1,
        usage => [{ date => 1, requests => 1, refused => 1, errors => 1 }],
        today => { date => 1, requests => 1, refused => 1, errors => 1 },
        limits => { tier => 1, rate => 1, period_seconds => 1, burst => 1,
                    daily => 1 },
        remaining => { burst => 1, daily => 1, daily_reset_seconds => 1 } },
    'GET /api/tensors/{domain} 200' => {
        brand => 1, domain => 1, run_id => 1, computed_at => 1,
        memory => { score => 1, retention_strength => 1,
                    access_frequency => 1 },
        sentiment => { score => 1, market_sentiment => 1, confidence => 1 },
        grounding => { score => 1, strength => 1, facts => 1,
            supported => 1, contradicted => 1, unmentioned => 1,
            verified_facts => [{ key => 1, value => 1, supported => 1,
                contradicted => 1, unmentioned => 1, status => 1 }] },
        composite => 1,
        insights => [{ code => 1, text => 1 }],
        recommendations => [{ code => 1, text => 1, because => 1 }] },
    'GET /api/trends/degradation 200' => {
        direction => 1, runs => 1,
        domains => [{ domain => 1, current_score => 1, start_score => 1,
                      change => 1, runs => 1 }] },
    'GET /api/stats/rich 200' => {
        platform_stats => { total_domains => 1, average_memory_score => 1,
            total_ai_responses => 1, critical_risk_domains => 1,
            last_updated => 1 },
        tribes => [{ tribe => 1, models => 1, domains => 1,
                     average_memory => 1, average_sentiment => 1 }],
        domains_compared => 1, information_asymmetry => 1,
        tribal_divergence => 1, memory_lag => 1 },
    'GET /api/rankings/rich 200' => {
        domains => [{ domain => 1, score => 1, memory_score => 1,
            tribes => { search => { models => 1, memory => 1,
                                    sentiment => 1 },
                        base => { models => 1, memory => 1,
                                  sentiment => 1 } },
            information_asymmetry => 1, tribal_divergence => 1,
            memory_lag => 1 }],
        totalDomains => 1, totalPages => 1, currentPage => 1 },
    'GET /api/usage 401' => { error => 1, message => 1, detail => 1 },
    'GET /api/rankings 400' => { error => 1, message => 1, detail => 1 },
    'GET /api/drift/{domain} 404' => { error => 1, message => 1,
                                       detail => 1 },
    'GET /api/stats 405' => { error => 1, message => 1, detail => 1 },
    'GET /api/stats 429' => { error => 1, message => 1, detail => 1,
                              retry_after => 1 },
    'GET /api/stats 503' => { error => 1, message => 1, detail => 1 },
);

# the shape a schema describes, in the notation above
sub shape {
    my ($s) = @_;
    $s = DR::OpenAPI::deref($s);

    if (($s->{type} // '') eq 'array' && ref $s->{items} eq 'HASH') {
        my $i = DR::OpenAPI::deref($s->{items});
        return ($i->{type} // '') eq 'object' && $i->{properties}
             ? [shape($i)] : 1;
    }
    # an object, or an object or null
    my @t = ref $s->{type} ? @{$s->{type}} : ($s->{type} // ());
    return 1 unless (grep { $_ eq 'object' } @t) && $s->{properties};

    my %req = map { ($_ => 1) } @{$s->{required} // []};
    return { map {
        (($req{$_} ? $_ : "$_?") => shape($s->{properties}{$_}))
    } keys %{$s->{properties}} };
}

for my $k (sort keys %shapes) {
    my ($m, $path, $status) = split / /, $k;
    my ($schema, $err) = DR::OpenAPI::body_schema($m, $path, $status);
    ok(!$err, "$k: a JSON body") or diag($err);
    is_deeply(shape($schema), $shapes{$k}, "$k: the fields") if $schema;
}


# ---------------------------------------------------------------------------
# strict schemas: every object forbids unknown fields and requires every
# field it lists (DomainPublicResponse.alerts aside); numbers and counts
# typed as numbers and integers

my $strict_errors = 0;

sub walk_schema {
    my ($s, $where) = @_;
    return unless ref $s eq 'HASH';
    return if defined $s->{'$ref'};

    my @t = ref $s->{type} ? @{$s->{type}} : ($s->{type} // ());

    if (grep { $_ eq 'object' } @t) {
        if ($s->{properties}) {
            my $ap = $s->{additionalProperties};
            unless (JSON::PP::is_bool($ap) && !$ap) {
                $strict_errors++;
                diag("$where: additionalProperties is not false");
            }
            my %req = map { ($_ => 1) } @{$s->{required} // []};
            for my $p (sort keys %{$s->{properties}}) {
                next if $req{$p}
                        || "$where.$p" eq 'DomainPublicResponse.alerts'
                        || "$where.$p" eq 'RegisterRequest.full_name'
                        || "$where.$p" =~ /^(?:Not)?Ready\.(?:replicas|providers|queue)$/;
                $strict_errors++;
                diag("$where: $p is not required");
            }
            walk_schema($s->{properties}{$_}, "$where.$_")
                for sort keys %{$s->{properties}};
        } elsif (!(ref $s->{additionalProperties} eq 'HASH')
                 && $where !~ /OpenAPIDocument/)
        {
            $strict_errors++;
            diag("$where: an object with neither properties nor a "
                 . 'schema for its values');
        } else {
            walk_schema($s->{additionalProperties}, "$where.*");
        }
    }
    if (grep { $_ eq 'array' } @t) {
        walk_schema($s->{items}, "$where\[]");
    }
    if (!@t && !defined $s->{'$ref'}) {
        $strict_errors++;
        diag("$where: no type");
    }
}

for my $name (sort keys %{$doc->{components}{schemas}}) {
    next if $name eq 'OpenAPIDocument';
    walk_schema($doc->{components}{schemas}{$name}, $name);
}
is($strict_errors, 0, 'every object schema is strict and typed');

my $schemas = $doc->{components}{schemas};
is_deeply($schemas->{Error}{required}, [qw(error message detail)],
    'Error');
is_deeply([sort @{$schemas->{RateLimited}{required}}],
    [qw(detail error message retry_after)], 'RateLimited');
is($schemas->{RateLimited}{properties}{retry_after}{type}, 'integer',
    'retry_after is an integer');
is_deeply($schemas->{PlatformStats}{properties}{last_updated}{type},
    [qw(string null)], 'a nullable timestamp is ["string", "null"]');
is($schemas->{PlatformStats}{properties}{last_updated}{format}, 'date-time',
    '... in date-time format');
is($schemas->{RankedDomain}{properties}{score}{type}, 'number',
    'a score is a number');
is($schemas->{RankedDomain}{properties}{modelsPositive}{type}, 'integer',
    'a count is an integer');
is($schemas->{TickerDomain}{properties}{trend}{maxItems}, 4,
    'ticker trend: at most 4 scores');
is($schemas->{Category}{properties}{topDomains}{maxItems}, 3,
    'category topDomains: at most 3');


# ---------------------------------------------------------------------------
# DR::OpenAPI: correct answers pass, wrong ones fail with the reason

my %good = (
    health => {
        status => 'healthy', database => 'connected',
        timestamp => '2026-11-29T12:00:00Z',
        monitoring_stats => { domains_monitored => 347, fresh_24h => 120,
                              high_risk => 4, active_alerts => 9 } },
    rankings => {
        domains => [
            { domain => 'alpha.example', score => 72.45, trend => '+2.5%',
              modelsPositive => 3, modelsNeutral => 1, modelsNegative => 0,
              dataFreshness => 'fresh',
              lastUpdated => '2026-11-29T12:00:00Z' },
            { domain => 'beta.example', score => 30, trend => "\x{b1}0.0%",
              modelsPositive => 0, modelsNeutral => 0, modelsNegative => 2,
              dataFreshness => 'stale',
              lastUpdated => '2026-11-01T12:00:00Z' } ],
        totalDomains => 2, totalPages => 1, currentPage => 1 },
    public => {
        domain => 'alpha.example',
        ai_intelligence => { memory_score => 66.7, ai_consensus => 41.2,
            cohesion => 100, models_tracking => 3, response_count => 9,
            trend => '-1.0%', trend_direction => 'stable' },
        business_profile => { category => undef,
            market_position => 'emerging', key_themes => [qw(payments api)],
            reputation => 'mixed' },
        data_freshness => { last_updated => '2026-11-29T12:00:00Z',
                            status => 'fresh' },
        updated_at => '2026-11-29T12:00:00Z' },
    providers => {
        providers => [
            { provider => 'openai', models => ['gpt-4o-mini'],
              active => JSON::PP::true, calls => 10, errors => 1,
              error_rate => 0.1, breaker_state => 'closed',
              p50_latency_ms => 812.5 },
            { provider => 'anthropic', models => [],
              active => JSON::PP::false, calls => 0, errors => 0,
              error_rate => 0, breaker_state => undef,
              p50_latency_ms => undef } ] },
);

my $enc = JSON::PP->new->utf8->canonical;

sub body { $enc->encode($_[0]) }

sub clone { decode_json(body($_[0])) }

DR::OpenAPI::response_ok('GET', '/health', 200, body($good{health}),
    'helper: a correct /health answer passes');
DR::OpenAPI::response_ok('GET', '/health', 503,
    body({ status => 'degraded', database => 'unavailable',
           timestamp => '2026-11-29T12:00:00Z', monitoring_stats => undef }),
    'helper: a correct degraded /health answer passes');
DR::OpenAPI::response_ok('GET', '/api/rankings', 200, body($good{rankings}),
    'helper: a correct /api/rankings answer passes (raw JSON)');
DR::OpenAPI::response_ok('GET', '/api/rankings', 200, clone($good{rankings}),
    'helper: ... and decoded');
DR::OpenAPI::response_ok('GET', '/api/domains/{domain}/public', 200,
    body($good{public}), 'helper: a public profile without alerts passes');
{
    my $p = clone($good{public});
    $p->{alerts} = [{ type => 'low_consensus', severity => 'high',
                      message => 'the models disagree' }];
    DR::OpenAPI::response_ok('GET', '/api/domains/{domain}/public', 200,
        body($p), 'helper: ... and with alerts');
}
DR::OpenAPI::response_ok('GET', '/api/providers/health', 200,
    body($good{providers}), 'helper: a correct providers answer passes');
DR::OpenAPI::response_ok('GET', '/api/ticker', 429,
    body({ error => 'rate_limited', message => 'over 10/min',
           detail => 'over 10/min', retry_after => 6 }),
    'helper: a correct 429 passes');
DR::OpenAPI::response_ok('GET', '/readyz', 503,
    body({ status => 'not_ready', database => 'unavailable',
           error => 'database_unavailable', message => 'timed out',
           detail => 'timed out' }),
    'helper: a correct not-ready answer passes');

# each: [operation, status, base body, how to break it, expected error]
my @bad = (
    [ '/health', 200, 'health', 'an extra field',
      sub { $_[0]{uptime} = 5 }, qr{Properties not allowed: uptime} ],
    [ '/health', 200, 'health', 'a count as a string',
      sub { $_[0]{monitoring_stats}{fresh_24h} = '120' },
      qr{/monitoring_stats/fresh_24h: Expected integer - got string} ],
    [ '/health', 200, 'health', 'a count with a fraction',
      sub { $_[0]{monitoring_stats}{high_risk} = 4.5 },
      qr{/monitoring_stats/high_risk: Expected integer - got number} ],
    [ '/health', 200, 'health', 'a timestamp that is not one',
      sub { $_[0]{timestamp} = 'now' }, qr{/timestamp: .*date-time} ],
    [ '/health', 200, 'health', 'null stats on a 200',
      sub { $_[0]{monitoring_stats} = undef },
      qr{/monitoring_stats: Expected object - got null} ],
    [ '/api/rankings', 200, 'rankings', 'a renamed field',
      sub { $_[0]{domains}[0]{models_positive}
                = delete $_[0]{domains}[0]{modelsPositive} },
      qr{/domains/0.*(modelsPositive|models_positive)} ],
    [ '/api/rankings', 200, 'rankings', 'a missing field',
      sub { delete $_[0]{totalPages} }, qr{/totalPages: Missing property} ],
    [ '/api/rankings', 200, 'rankings', 'a score as a string',
      sub { $_[0]{domains}[0]{score} = '72.45' },
      qr{/domains/0/score: Expected number - got string} ],
    [ '/api/rankings', 200, 'rankings', 'a trend as a number',
      sub { $_[0]{domains}[0]{trend} = 2.5 }, qr{/domains/0/trend} ],
    [ '/api/rankings', 200, 'rankings', 'a trend of "-0.0%"',
      sub { $_[0]{domains}[0]{trend} = '-0.0%' }, qr{/domains/0/trend} ],
    [ '/api/rankings', 200, 'rankings', 'an unknown freshness',
      sub { $_[0]{domains}[1]{dataFreshness} = 'old' },
      qr{/domains/1/dataFreshness: Not in enum list} ],
    [ '/api/rankings', 200, 'rankings', 'an upper-case domain',
      sub { $_[0]{domains}[0]{domain} = 'Alpha.example' },
      qr{/domains/0/domain} ],
    [ '/api/rankings', 200, 'rankings', 'a score above 100',
      sub { $_[0]{domains}[0]{score} = 100.5 },
      qr{/domains/0/score: .*maximum} ],
    [ '/api/domains/{domain}/public', 200, 'public', 'an unknown alert',
      sub { $_[0]{alerts} = [{ type => 'on_fire', severity => 'high',
                               message => 'x' }] },
      qr{/alerts/0/type: Not in enum list} ],
    [ '/api/domains/{domain}/public', 200, 'public', 'a market position',
      sub { $_[0]{business_profile}{market_position} = 'challenger' },
      qr{/business_profile/market_position: Not in enum list} ],
    [ '/api/providers/health', 200, 'providers', 'a boolean as 1',
      sub { $_[0]{providers}[0]{active} = 1 },
      qr{/providers/0/active: Expected boolean - got number} ],
    [ '/api/providers/health', 200, 'providers', 'an unknown breaker state',
      sub { $_[0]{providers}[0]{breaker_state} = 'tripped' },
      qr{/providers/0/breaker_state: Not in enum list} ],
);

for my $b (@bad) {
    my ($path, $status, $base, $name, $break, $re) = @$b;
    my $body = clone($good{$base});
    $break->($body);
    my @e = DR::OpenAPI::check('GET', $path, $status, body($body));
    ok(scalar @e, "helper: $path with $name fails");
    like("@e", $re, "... saying why") or diag(explain(\@e));
}

my @e = DR::OpenAPI::check('GET', '/api/drift/{domain}', 404,
    body({ error => 'not_found', message => 'unknown domain', code => 3 }));
like("@e", qr{Properties not allowed: code}, 'helper: an extra field in an '
    . 'error fails');
@e = DR::OpenAPI::check('GET', '/api/drift/{domain}', 404,
    body({ error => 'Not Found', message => 'x' }));
like("@e", qr{/error: String does not match}, 'helper: an error code must be '
    . 'a stable word');
@e = DR::OpenAPI::check('GET', '/api/ticker', 429,
    body({ error => 'rate_limited', message => 'x' }));
like("@e", qr{/retry_after: Missing property}, 'helper: 429 needs retry_after');
@e = DR::OpenAPI::check('GET', '/api/stats', 418, '{}');
like("@e", qr{does not document status 418}, 'helper: an undocumented status '
    . 'fails');
@e = DR::OpenAPI::check('GET', '/api/nothing', 200, '{}');
like("@e", qr{not a path}, 'helper: an unknown path fails');
@e = DR::OpenAPI::check('POST', '/api/stats', 200, '{}');
like("@e", qr{not an operation}, 'helper: an unknown method fails');
@e = DR::OpenAPI::check('GET', '/api/stats', 200, 'not JSON');
like("@e", qr{not JSON}, 'helper: a body that is not JSON fails');


# ---------------------------------------------------------------------------
# ngx_dr_openapi.c is what tools/openapi2c.pl makes of openapi.json

my $out = `perl '$TOP/tools/openapi2c.pl' '$DOC' '$TMP/openapi.c' 2>&1`;
is($?, 0, 'tools/openapi2c.pl runs') or diag($out);
ok(slurp("$TMP/openapi.c") eq slurp($GEN),
    'ngx_dr_module/ngx_dr_openapi.c is up to date with openapi.json')
    or diag('run: perl tools/openapi2c.pl');

my $gen = slurp($GEN);
like($gen, qr/GENERATED by tools\/openapi2c\.pl from .*openapi\.json/s,
    'the C file says it is generated');
my @long = grep { length > 79 } split /\n/, $gen;
is(scalar @long, 0, 'the C file has no line of 80 columns or more');

# compiled, the string is the document, minified
my $cc = `command -v cc 2>/dev/null`;
chomp $cc;
ok($cc, 'a C compiler is installed (make deps)');
if ($cc) {
    spew("$TMP/main.c", <<'EOF');
#include <stdio.h>
#include <stddef.h>
extern const char ngx_dr_openapi_json[];
extern const size_t ngx_dr_openapi_json_len;
int main(void)
{
    return fwrite(ngx_dr_openapi_json, 1, ngx_dr_openapi_json_len, stdout)
           != ngx_dr_openapi_json_len;
}
EOF
    $out = `cc -std=c99 -Wall -Wextra -Werror -o '$TMP/main' '$TMP/main.c' '$GEN' 2>&1`;
    is($?, 0, 'the C file compiles with -std=c99 -Wall -Wextra -Werror')
        or diag($out);
    my $printed = `'$TMP/main'`;
    # a fresh copy: the tests above have used $doc's numbers as strings
    my $want = JSON::PP->new->canonical->ascii
                   ->encode(decode_json(slurp($DOC)));
    my $at = 0;
    $at++ while $at < length $want && substr($printed, $at, 1) eq
                                      substr($want, $at, 1);
    ok($printed eq $want, 'the C string is the minified document')
        or diag("they differ at byte $at: "
                . substr($printed, $at < 40 ? 0 : $at - 40, 80) . "\n vs "
                . substr($want, $at < 40 ? 0 : $at - 40, 80));
    is(length($printed), length($printed =~ s/[^\x20-\x7e]//gr),
        '... in printable ASCII');
}

done_testing;
