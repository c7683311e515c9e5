-- Facts and grounding: what an operator knows to be true of a domain
-- (POST /admin/facts), and how far the answers of each scored run agree
-- with it.  docs/scoring.md gives the rules of the check.

-- A key may have several values (headquarters in San Francisco and
-- Dublin); each value may have aliases that state it as well.  Posting a
-- domain's facts replaces them all.
CREATE TABLE domain_facts (
    id          bigserial PRIMARY KEY,
    domain_id   bigint NOT NULL REFERENCES domains ON DELETE CASCADE,
    key         text NOT NULL
                CHECK (key IN ('founded', 'headquarters', 'category',
                               'founders', 'products', 'former_names')),
    value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 200),
    aliases     text[] NOT NULL DEFAULT '{}'
                CHECK (cardinality(aliases) <= 10),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, key, value)
);

-- The grounding of a (domain, run) as it was scored: totals, each model's
-- and each fact's counts; NULL when the domain had no facts then.
ALTER TABLE domain_scores ADD COLUMN grounding jsonb;

-- Provider tribes: search-enhanced models answer from the web of today,
-- base models from what they were trained on.  The tribe follows from
-- the model so that a model added later is in the right one.
ALTER TABLE models ADD COLUMN tribe text NOT NULL
    GENERATED ALWAYS AS (CASE WHEN provider = 'perplexity'
                               OR model LIKE '%search%'
                              THEN 'search' ELSE 'base' END) STORED;

-- Each tribe's figures in each scored run, from the verdicts per model
-- that the scorer keeps in domain_scores.details: the models that
-- answered, the share of them that recognized the brand (memory) and the
-- mean sentiment of those with a valid answer.
CREATE VIEW tribe_scores AS
    SELECT s.domain_id, s.run_id, s.computed_at, mo.tribe,
           count(*) AS models,
           100.0 * count(*) FILTER (WHERE (e.v->>'recognized')::boolean)
                 / count(*) AS memory,
           avg((e.v->>'sentiment')::float8)
               FILTER (WHERE (e.v->>'valid')::int > 0) AS sentiment
      FROM domain_scores s
     CROSS JOIN LATERAL jsonb_each(s.details->'models') AS e(k, v)
      JOIN models mo ON mo.provider || '/' || mo.model = e.k
     -- the regular runs only: a jolt run (sql/019) asks other prompts
     WHERE NOT EXISTS (SELECT 1 FROM runs r
                        WHERE r.id = s.run_id AND r.kind = 'jolt')
     GROUP BY s.domain_id, s.run_id, s.computed_at, mo.tribe;

-- A domain's tribes in its latest run, and how they differ
-- (docs/scoring.md): information asymmetry (search memory minus base
-- memory, points), tribal divergence (50 x the gap in mean sentiment,
-- 0..100) and memory lag (how many runs after the search tribe the base
-- tribe first recognized the brand, within the last 30 runs).
CREATE VIEW domain_tribal AS
    WITH r AS (
        SELECT t.*, dense_rank() OVER (PARTITION BY t.domain_id
                   ORDER BY t.computed_at DESC, t.run_id DESC) AS back
          FROM tribe_scores t),
    f AS (
        SELECT domain_id,
               sum(models) FILTER (WHERE back = 1 AND tribe = 'search')
                   AS search_models,
               sum(models) FILTER (WHERE back = 1 AND tribe = 'base')
                   AS base_models,
               max(memory) FILTER (WHERE back = 1 AND tribe = 'search')
                   AS search_memory,
               max(memory) FILTER (WHERE back = 1 AND tribe = 'base')
                   AS base_memory,
               max(sentiment) FILTER (WHERE back = 1 AND tribe = 'search')
                   AS search_sentiment,
               max(sentiment) FILTER (WHERE back = 1 AND tribe = 'base')
                   AS base_sentiment,
               max(back) FILTER (WHERE back <= 30 AND tribe = 'search'
                                 AND memory >= 50) AS search_first,
               max(back) FILTER (WHERE back <= 30 AND tribe = 'base'
                                 AND memory >= 50) AS base_first
          FROM r GROUP BY domain_id)
    SELECT domain_id, search_models, base_models, search_memory,
           base_memory, search_sentiment, base_sentiment,
           search_memory - base_memory AS information_asymmetry,
           50 * abs(search_sentiment - base_sentiment) AS tribal_divergence,
           search_first - base_first AS memory_lag
      FROM f;
