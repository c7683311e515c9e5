-- Jolt runs out of the regular series, and replacements that do not mix.
--
-- A jolt run asks only the jolt prompts: its scores are compared with the
-- runs around its event (GET /api/jolt-benchmark/{domain}), and are no
-- point of the domain's regular series: the latest scores the public
-- reads, the time series, the trends and the tribes read the runs of the
-- standard prompts only.
--
-- An event older than its last jolt run would be (30 days) plans none.
--
-- POST /admin/facts and POST /admin/tiers replace a set of rows.  As one
-- statement, two of them at once each deleted what the other had not yet
-- written and both inserted: the domain kept a mix.  Each is now a
-- function that first locks the row it replaces the set of (the domain,
-- the tier): its statements after the lock see what the one before it
-- wrote, so the last to come wins whole.

CREATE VIEW regular_domain_scores AS
    SELECT s.*
      FROM domain_scores s
     WHERE NOT EXISTS (SELECT 1 FROM runs r
                        WHERE r.id = s.run_id AND r.kind = 'jolt');

CREATE OR REPLACE VIEW tribe_scores AS
    SELECT s.domain_id, s.run_id, s.computed_at, mo.tribe,
           count(*) AS models,
           100.0 * count(*) FILTER (WHERE (e.v->>'recognized')::boolean)
                 / count(*) AS memory,
           avg((e.v->>'sentiment')::float8)
               FILTER (WHERE (e.v->>'valid')::int > 0) AS sentiment
      FROM regular_domain_scores s
     CROSS JOIN LATERAL jsonb_each(s.details->'models') AS e(k, v)
      JOIN models mo ON mo.provider || '/' || mo.model = e.k
     GROUP BY s.domain_id, s.run_id, s.computed_at, mo.tribe;

-- the latest scores: of the regular runs only
CREATE OR REPLACE FUNCTION dr_latest_scores_reload(p_domain bigint) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM latest_scores WHERE domain_id = p_domain;
    INSERT INTO latest_scores (domain_id, domain, category, active, run_id,
        memory_score, ai_consensus, cohesion, drift_score, trend,
        volatility, score, models_positive, models_neutral,
        models_negative, models_tracking, response_count, reputation_risk,
        risk_level, alerts, details, computed_at)
    SELECT s.domain_id, d.domain, d.category, d.active, s.run_id,
        s.memory_score, s.ai_consensus, s.cohesion, s.drift_score, s.trend,
        s.volatility, s.score, s.models_positive, s.models_neutral,
        s.models_negative, s.models_tracking, s.response_count,
        s.reputation_risk, s.risk_level, s.alerts, s.details, s.computed_at
      FROM regular_domain_scores s JOIN domains d ON d.id = s.domain_id
     WHERE s.domain_id = p_domain
     ORDER BY s.computed_at DESC, s.run_id DESC LIMIT 1;
$$;

CREATE OR REPLACE FUNCTION dr_latest_scores_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cur latest_scores%ROWTYPE;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        SELECT * INTO cur FROM latest_scores
         WHERE domain_id = OLD.domain_id;

        IF FOUND AND cur.run_id = OLD.run_id
           AND (TG_OP = 'DELETE' OR NEW.domain_id <> OLD.domain_id
                OR NEW.run_id <> OLD.run_id
                OR NEW.computed_at < OLD.computed_at)
        THEN
            PERFORM dr_latest_scores_reload(OLD.domain_id);
        END IF;

        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
    END IF;

    -- a jolt run's scores are not the domain's latest
    IF EXISTS (SELECT 1 FROM runs WHERE id = NEW.run_id AND kind = 'jolt')
    THEN
        RETURN NULL;
    END IF;

    INSERT INTO latest_scores AS l (domain_id, domain, category, active,
        run_id, memory_score, ai_consensus, cohesion, drift_score, trend,
        volatility, score, models_positive, models_neutral,
        models_negative, models_tracking, response_count, reputation_risk,
        risk_level, alerts, details, computed_at)
    SELECT NEW.domain_id, d.domain, d.category, d.active, NEW.run_id,
        NEW.memory_score, NEW.ai_consensus, NEW.cohesion, NEW.drift_score,
        NEW.trend, NEW.volatility, NEW.score, NEW.models_positive,
        NEW.models_neutral, NEW.models_negative, NEW.models_tracking,
        NEW.response_count, NEW.reputation_risk, NEW.risk_level,
        NEW.alerts, NEW.details, NEW.computed_at
      FROM domains d WHERE d.id = NEW.domain_id
    ON CONFLICT (domain_id) DO UPDATE SET
        run_id = EXCLUDED.run_id, memory_score = EXCLUDED.memory_score,
        ai_consensus = EXCLUDED.ai_consensus, cohesion = EXCLUDED.cohesion,
        drift_score = EXCLUDED.drift_score, trend = EXCLUDED.trend,
        volatility = EXCLUDED.volatility, score = EXCLUDED.score,
        models_positive = EXCLUDED.models_positive,
        models_neutral = EXCLUDED.models_neutral,
        models_negative = EXCLUDED.models_negative,
        models_tracking = EXCLUDED.models_tracking,
        response_count = EXCLUDED.response_count,
        reputation_risk = EXCLUDED.reputation_risk,
        risk_level = EXCLUDED.risk_level, alerts = EXCLUDED.alerts,
        details = EXCLUDED.details, computed_at = EXCLUDED.computed_at
     WHERE l.run_id = EXCLUDED.run_id
        OR (l.computed_at, l.run_id)
           <= (EXCLUDED.computed_at, EXCLUDED.run_id);

    RETURN NULL;
END
$$;

SELECT dr_latest_scores_reload(l.domain_id)
  FROM latest_scores l JOIN runs r ON r.id = l.run_id
 WHERE r.kind = 'jolt';


-- POST /admin/facts: a domain's facts replaced by p_facts, with its audit
-- row; no row when the domain is not tracked
CREATE FUNCTION dr_facts_set(p_domain text, p_facts jsonb, p_key bigint,
    p_address text) RETURNS TABLE (domain text, removed bigint, facts json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM domains WHERE domains.domain = p_domain AND active
        FOR UPDATE;

    RETURN QUERY
    WITH d AS (SELECT id, domain FROM domains
                WHERE domain = p_domain AND active),
    x AS (SELECT f.key, f.value,
                 ARRAY(SELECT jsonb_array_elements_text(f.aliases))
                     AS aliases
            FROM jsonb_to_recordset(p_facts)
                 AS f(key text, value text, aliases jsonb)),
    del AS (DELETE FROM domain_facts f USING d
             WHERE f.domain_id = d.id
               AND (f.key, f.value) NOT IN (SELECT key, value FROM x)
            RETURNING 1),
    ins AS (INSERT INTO domain_facts (domain_id, key, value, aliases)
            SELECT d.id, x.key, x.value, x.aliases FROM d, x
            ON CONFLICT (domain_id, key, value) DO UPDATE
               SET aliases = EXCLUDED.aliases
            RETURNING key, value, aliases),
    a AS (INSERT INTO admin_audit (key_id, address, action, target, detail)
          SELECT p_key, p_address, 'facts.set', d.domain,
                 jsonb_build_object('facts', p_facts,
                     'removed', (SELECT count(*) FROM del))
            FROM d)
    SELECT d.domain, (SELECT count(*) FROM del),
           coalesce((SELECT json_agg(json_build_object('key', key,
                         'value', value, 'aliases', to_json(aliases))
                         ORDER BY key, value)
                       FROM ins), '[]')
      FROM d;
END
$$;

-- POST /admin/tiers: a tier's models and prompts replaced (each when its
-- p_set_ is true; a NULL list: every one), with its audit row; the first
-- unknown model or prompt, if any, and then nothing is changed
CREATE FUNCTION dr_tier_set(p_tier text, p_models jsonb, p_set_models bool,
    p_prompts jsonb, p_set_prompts bool, p_key bigint, p_address text)
    RETURNS TABLE (f text, n text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM tiers WHERE name = p_tier FOR UPDATE;

    RETURN QUERY
    WITH wm AS (SELECT x AS n FROM jsonb_array_elements_text(p_models) x),
    wp AS (SELECT x AS n FROM jsonb_array_elements_text(p_prompts) x),
    nm AS (SELECT m.id, wm.n FROM wm LEFT JOIN models m
             ON m.active AND (m.model = wm.n
                              OR m.provider || '/' || m.model = wm.n)),
    np AS (SELECT p.id, wp.n FROM wp LEFT JOIN prompts p
             ON p.active AND p.kind = 'standard' AND p.name = wp.n),
    bad AS (SELECT 'models' AS f, n FROM nm WHERE id IS NULL
            UNION ALL
            SELECT 'prompts', n FROM np WHERE id IS NULL),
    ok AS (SELECT NOT EXISTS (SELECT 1 FROM bad) AS ok),
    dm AS (DELETE FROM tier_models t USING ok
            WHERE ok.ok AND p_set_models AND t.tier = p_tier
              AND t.model_id NOT IN (SELECT id FROM nm)
           RETURNING 1),
    im AS (INSERT INTO tier_models (tier, model_id)
           SELECT p_tier, nm.id FROM nm, ok WHERE ok.ok AND p_set_models
           ON CONFLICT DO NOTHING RETURNING 1),
    dp AS (DELETE FROM tier_prompts t USING ok
            WHERE ok.ok AND p_set_prompts AND t.tier = p_tier
              AND t.prompt_id NOT IN (SELECT id FROM np)
           RETURNING 1),
    ip AS (INSERT INTO tier_prompts (tier, prompt_id)
           SELECT p_tier, np.id FROM np, ok WHERE ok.ok AND p_set_prompts
           ON CONFLICT DO NOTHING RETURNING 1),
    u AS (UPDATE tiers SET updated_at = now() FROM ok
           WHERE ok.ok AND name = p_tier RETURNING 1),
    a AS (INSERT INTO admin_audit (key_id, address, action, target, detail)
          SELECT p_key, p_address, 'tier.set', p_tier,
                 jsonb_strip_nulls(jsonb_build_object(
                     'models', CASE WHEN p_set_models
                                    THEN coalesce(p_models, '"all"') END,
                     'prompts', CASE WHEN p_set_prompts
                                     THEN coalesce(p_prompts, '"all"') END))
            FROM ok WHERE ok.ok)
    SELECT bad.f, bad.n FROM bad ORDER BY 1, 2 LIMIT 1;
END
$$;


-- An event recorded, with its audit row and, when it jolts, its jolt
-- runs planned and the first made: all or nothing.  An event older than
-- the last of its jolt runs (30 days) is history: recorded and compared
-- by the jolt benchmark, it plans no run, whatever its severity.  No row when the
-- domain is unknown or retired; a row without id when the event would
-- happen in the future.
CREATE OR REPLACE FUNCTION dr_event_add(p_domain text, p_occurred timestamptz,
    p_kind text, p_severity text, p_title text, p_url text,
    p_threshold text, p_key bigint, p_address text,
    OUT id bigint, OUT jolt boolean, OUT run_id bigint,
    OUT created_at timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql AS $$
DECLARE
    e  events;
BEGIN
    -- an event is something that happened: a clock a little ahead is
    -- forgiven, a date to come is answered with no id
    IF p_occurred > now() + interval '5 minutes' THEN
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO events (domain_id, occurred_at, kind, severity, title, url,
                        jolt)
    SELECT d.id, p_occurred, p_kind, p_severity, p_title, p_url,
           dr_severity_rank(p_severity) >= dr_severity_rank(p_threshold)
           AND p_occurred > now() - interval '30 days'
      FROM domains d
     WHERE d.domain = p_domain AND d.active
    RETURNING * INTO e;

    IF e.id IS NULL THEN
        RETURN;
    END IF;

    IF e.jolt THEN
        INSERT INTO jolt_runs (event_id, after_days, due_at)
        SELECT e.id, x, e.created_at + x * interval '1 day'
          FROM unnest(ARRAY[0, 1, 7, 30]) x;

        run_id := dr_jolt_run(e.id, 0);
    END IF;

    INSERT INTO admin_audit (key_id, address, action, target, detail)
    VALUES (p_key, p_address, 'event.create', p_domain,
            jsonb_build_object('event_id', e.id, 'kind', e.kind,
                'severity', e.severity, 'title', e.title,
                'occurred_at', e.occurred_at, 'jolt', e.jolt,
                'run_id', run_id));

    id := e.id;
    jolt := e.jolt;
    created_at := e.created_at;
    RETURN NEXT;
END
$$;
