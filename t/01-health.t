# Liveness, readiness and the health summary, with their JSON shapes, and
# the answers to unknown paths and wrong methods.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use DR::Test;
use Test::More;

my $t = DR::Test->new(db => 1, http => <<'EOF');
    dr_pg "%%PG%%";
    dr_pg_pool_size 2;

    server {
        listen 127.0.0.1:%%PORT%%;
        location / { dr_api; }
    }
EOF

sub json_answer {
    my ($r, $status, $name) = @_;
    is($r->{status}, $status, "$name: status $status");
    is($r->{headers}{'content-type'}, 'application/json; charset=utf-8',
        "$name: JSON content type");
    is($r->{headers}{'x-content-type-options'}, 'nosniff',
        "$name: nosniff");
    is($r->{headers}{'x-frame-options'}, 'DENY', "$name: frame options");
    ok(ref $r->{json} eq 'HASH', "$name: the body is a JSON object")
        or diag($r->{content});
    return $r->{json} // {};
}

# liveness
my $j = json_answer($t->get('/healthz'), 200, '/healthz');
is($j->{status}, 'alive', '/healthz says alive');

# readiness
$j = json_answer($t->get('/readyz'), 200, '/readyz');
is_deeply($j, { status => 'ready', database => 'ok' }, '/readyz body');

# the health summary over a known fixture
my $dbh = $t->dbh;
$dbh->do(<<'SQL');
INSERT INTO domains (id, domain, category, active) VALUES
    (1, 'alpha.example', 'Technology', true),
    (2, 'beta.example', 'Finance', true),
    (3, 'gamma.example', 'Media', true),
    (4, 'retired.example', 'Media', false);
INSERT INTO runs (id, kind, status) VALUES (1, 'scheduled', 'done'),
                                           (2, 'scheduled', 'done');
SQL

# answers: alpha and beta within a day, gamma two days ago, and the
# retired domain within a day (it does not count: it is not monitored)
my $ins = $dbh->prepare(<<'SQL');
INSERT INTO responses (run_id, domain_id, model_id, prompt_id, prompt_text,
                       answer, http_status, latency_ms, simulated,
                       captured_at)
VALUES (?, ?, 1, 1, 'p', 'a', 200, 10, true, now() - ?::interval)
SQL
$ins->execute(2, 1, '1 hour');
$ins->execute(2, 2, '23 hours');
$ins->execute(1, 3, '2 days');
$ins->execute(2, 4, '1 hour');

# scores: alpha was low in run 1 and is high in run 2 (one alert), beta
# is critical (three alerts), gamma low, the retired domain critical
my $score = $dbh->prepare(<<'SQL');
INSERT INTO domain_scores (domain_id, run_id, memory_score, ai_consensus,
    cohesion, drift_score, trend, volatility, score, models_positive,
    models_neutral, models_negative, models_tracking, response_count,
    reputation_risk, risk_level, alerts, computed_at)
VALUES (?, ?, 50, 50, 50, 0, 0, 0, 50, 1, 1, 1, 3, 9, ?, ?, ?,
        now() - ?::interval)
SQL
$score->execute(1, 1, 0, 'low', '{}', '8 days');
$score->execute(1, 2, 40, 'high', '{low_consensus}', '1 hour');
$score->execute(2, 2, 100, 'critical',
    '{low_consensus,declining_memory,low_recognition}', '1 hour');
$score->execute(3, 2, 0, 'low', '{}', '1 hour');
$score->execute(4, 2, 100, 'critical', '{low_consensus,low_recognition}',
    '1 hour');

my $r = $t->get('/health');
$j = json_answer($r, 200, '/health');
is($j->{status}, 'healthy', '/health status');
is($j->{database}, 'connected', '/health database');
like($j->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
    '/health timestamp is ISO 8601 in UTC');
is_deeply($j->{monitoring_stats}, {
    domains_monitored => 3,     # alpha, beta, gamma
    fresh_24h         => 2,     # alpha, beta
    high_risk         => 2,     # alpha (high), beta (critical)
    active_alerts     => 4,     # 1 for alpha + 3 for beta
}, '/health counts what is stored') or diag($r->{content});

# HEAD: same headers, no body
$r = $t->http('HEAD', '/healthz');
is($r->{status}, 200, 'HEAD /healthz answers 200');
is(length($r->{content} // ''), 0, 'HEAD has no body');

# an unknown path
$j = json_answer($t->get('/no/such/thing'), 404, 'unknown path');
is($j->{error}, 'not_found', 'unknown path: error code');
ok(length $j->{message}, 'unknown path: a message');

# a wrong method, with a body that is discarded
$r = $t->http('POST', '/readyz', body => '{"x":1}');
$j = json_answer($r, 405, 'POST /readyz');
is($r->{headers}{allow}, 'GET, HEAD, OPTIONS', '405 says what is allowed');
is($j->{error}, 'method_not_allowed', '405: error code');

$t->stop;

done_testing;
