-- Jolt runs out of the regular series, and replacements that do not mix.
--
-- A jolt run asks only the jolt prompts: its scores are compared with the
-- runs around its event (GET /api/jolt-benchmark/{domain}), and are no
-- point of the domain's regular series: the latest scores the public
-- reads (sql/017's functions), the time series, the trends and the
-- tribes read the runs of the standard prompts only.
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
