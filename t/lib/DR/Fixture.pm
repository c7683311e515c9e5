package DR::Fixture;

# The API's test data: five domains, two runs, scores whose figures the
# tests compute by hand.  Latest scores: beta 100.0, alpha 60.0 (declined
# from 80, critical), gamma 59.0 (3 days old); delta has no scores and
# retired is inactive.

use strict;
use warnings;

sub load {
    my ($dbh) = @_;

    $dbh->do(<<'SQL');
INSERT INTO domains (id, domain, category, cohort, active) VALUES
    (1, 'alpha.example', 'Technology', 'payments', true),
    (2, 'beta.example', 'Technology', 'search', true),
    (3, 'gamma.example', 'Finance', 'banks', true),
    (4, 'delta.example', 'Finance', 'banks', true),
    (5, 'retired.example', 'Media', 'news', false);
SELECT setval('domains_id_seq', 5);
INSERT INTO runs (id, kind, status) VALUES (1, 'scheduled', 'done'),
                                           (2, 'scheduled', 'done');
SELECT setval('runs_id_seq', 2);
SQL

    my $score = $dbh->prepare(<<'SQL');
INSERT INTO domain_scores (domain_id, run_id, memory_score, ai_consensus,
    cohesion, drift_score, trend, volatility, score, models_positive,
    models_neutral, models_negative, models_tracking, response_count,
    reputation_risk, risk_level, alerts, details, computed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
        now() - ?::interval)
SQL

    my $m = sub {
        my (%rec) = @_;
        return '{"models": {'
            . join(', ', map {
                  sprintf '"%s": {"recognized": %s, "agreement": %s}',
                      $_, $rec{$_}[0] ? 'true' : 'false', $rec{$_}[1]
              } sort keys %rec)
            . '}';
    };

    my ($o, $a, $g) = ('openai/gpt-4o-mini',
        'anthropic/claude-3-5-haiku-20241022', 'google/gemini-1.5-flash');

    # alpha, run 1: 0.7 x 80 + 0.3 x 100 x (1 - 0) = 86
    $score->execute(1, 1, 80, 60, 70, 0, 0, 0, 86, 2, 1, 0, 3, 9, 0, 'low',
        '{}', $m->($o => [1, 65], $a => [1, 60], $g => [1, 55]) . '}',
        '8 days');
    # alpha, run 2: 0.7 x 60 + 0.3 x 100 x (1 - 0.4) = 60; volatility of
    # 80, 60 = 10; risk 40 + 35 + 25 = 100
    $score->execute(1, 2, 60, 35, 66.66667, 0.4, -20, 10, 60, 1, 1, 1, 3, 9,
        100, 'critical', '{low_consensus,declining_memory,low_recognition}',
        $m->($o => [1, 50], $a => [0, 30], $g => [0, 10])
            . ', "key_themes": ["payments", "developers", "api"]}',
        '1 hour');
    # beta, run 2 only: 0.7 x 100 + 0.3 x 100 = 100
    $score->execute(2, 2, 100, 80, 100, 0, 0, 0, 100, 3, 0, 0, 3, 9, 0,
        'low', '{}', $m->($o => [1, 80], $a => [1, 80], $g => [1, 80]) . '}',
        '1 hour');
    # gamma, run 1: 0.7 x 45 + 0.3 x 100 = 61.5
    $score->execute(3, 1, 45, 40, 66.66667, 0, 0, 0, 61.5, 1, 2, 0, 3, 8, 0,
        'low', '{}', '{}', '9 days');
    # gamma, run 2, three days old: 0.7 x 50 + 0.3 x 100 x (1 - 0.2) = 59
    $score->execute(3, 2, 50, 45, 66.66667, 0.2, 5, 2.5, 59, 1, 2, 0, 3, 8, 0,
        'low', '{}', '{}', '3 days');
    # retired: inactive, never shown
    $score->execute(5, 2, 10, 10, 10, 0.9, -30, 5, 7, 0, 0, 3, 3, 9, 100,
        'critical', '{low_recognition}', '{}', '1 hour');

    # answers: openai 3 within a day (latency 100, 200, 300: p50 200),
    # anthropic 1 (500), google 1 two days ago
    my $resp = $dbh->prepare(<<'SQL');
INSERT INTO responses (run_id, domain_id, model_id, prompt_id, prompt_text,
                       answer, http_status, latency_ms, simulated,
                       captured_at)
VALUES (2, ?, (SELECT id FROM models WHERE provider = ?), ?, 'p', 'a', 200,
        ?, true, now() - ?::interval)
SQL
    $resp->execute(1, 'openai', 1, 100, '1 hour');
    $resp->execute(1, 'openai', 2, 200, '1 hour');
    $resp->execute(2, 'openai', 1, 300, '1 hour');
    $resp->execute(1, 'anthropic', 1, 500, '1 hour');
    $resp->execute(3, 'google', 1, 700, '2 days');

    # failed attempts: openai took 3 attempts for one job (2 failed),
    # anthropic gave up after 2
    my $job = $dbh->prepare(<<'SQL');
INSERT INTO jobs (run_id, domain_id, model_id, prompt_id, status, attempts)
VALUES (2, ?, (SELECT id FROM models WHERE provider = ?), 3, ?, ?)
SQL
    $job->execute(1, 'openai', 'done', 3);
    $job->execute(1, 'anthropic', 'dead', 2);
}

1;
