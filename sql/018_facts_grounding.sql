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
