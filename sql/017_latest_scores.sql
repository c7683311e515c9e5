-- The latest scores of each domain, kept as a table written in the same
-- transaction as the domain_scores row, so that every public read is an
-- index look-up instead of a DISTINCT ON over every score ever written.
--
-- What is stored, and what is not: the latest row of each domain with
-- its name, category and activity copied from domains.  A rank or a
-- percentile is not stored: one new score would move the rank of every
-- domain below it, rewriting a whole category per write.  They are
-- counted at read time from the btree on (peer, score) of the category,
-- an index-only count of the rows above or below the domain's score.
--
-- Counts that the API shows (active domains, scored domains, stored
-- answers) are kept in row_counts by statement triggers, spread over
-- slots so that concurrent writers do not wait on one row, and read as
-- the sum of a few rows.

-- substring search of domains from an index (trusted extension: the
-- owner of the database may create it)
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- the group of a category's peers: a category, or none (NULL), as one
-- non-null key an index can match with "="
CREATE FUNCTION dr_peer(category text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce('c' || category, '')
$$;

CREATE TABLE latest_scores (
    domain_id           bigint PRIMARY KEY
                        REFERENCES domains ON DELETE CASCADE,
    domain              text NOT NULL,
    category            text,
    peer                text NOT NULL
                        GENERATED ALWAYS AS (dr_peer(category)) STORED,
    active              boolean NOT NULL,
    run_id              bigint NOT NULL,
    memory_score        double precision NOT NULL,
    ai_consensus        double precision NOT NULL,
    cohesion            double precision NOT NULL,
    drift_score         double precision NOT NULL,
    trend               double precision NOT NULL,
    volatility          double precision NOT NULL,
    score               double precision NOT NULL,
    models_positive     integer NOT NULL,
    models_neutral      integer NOT NULL,
    models_negative     integer NOT NULL,
    models_tracking     integer NOT NULL,
    response_count      integer NOT NULL,
    reputation_risk     integer NOT NULL,
    risk_level          text NOT NULL,
    alerts              text[] NOT NULL,
    details             jsonb NOT NULL,
    computed_at         timestamptz NOT NULL
);

-- the rankings' four orders, covering what a page shows, so that a page
-- is an index-only scan; a category's peers; search; the risks
CREATE INDEX latest_scores_score ON latest_scores (score DESC, domain)
    INCLUDE (ai_consensus, trend, models_positive, models_neutral,
             models_negative, computed_at) WHERE active;
CREATE INDEX latest_scores_consensus
    ON latest_scores (ai_consensus DESC, domain)
    INCLUDE (score, trend, models_positive, models_neutral,
             models_negative, computed_at) WHERE active;
CREATE INDEX latest_scores_trend ON latest_scores (trend DESC, domain)
    INCLUDE (score, ai_consensus, models_positive, models_neutral,
             models_negative, computed_at) WHERE active;
CREATE INDEX latest_scores_domain ON latest_scores (domain)
    INCLUDE (score, ai_consensus, trend, models_positive, models_neutral,
             models_negative, computed_at) WHERE active;
CREATE INDEX latest_scores_peer ON latest_scores (peer, score DESC, domain)
    WHERE active;
CREATE INDEX latest_scores_search ON latest_scores
    USING gin (domain gin_trgm_ops) WHERE active;
CREATE INDEX latest_scores_computed ON latest_scores (computed_at)
    WHERE active;
CREATE INDEX latest_scores_risk ON latest_scores (reputation_risk DESC, domain)
    WHERE active AND (risk_level IN ('high', 'critical')
                      OR cardinality(alerts) > 0);

-- the category's domains, for /api/categories
CREATE INDEX domains_category_domain ON domains (category, domain)
    WHERE active AND category IS NOT NULL;


-- the latest row of one domain, read again from domain_scores (after a
-- delete, or an update of the row that was the latest)
CREATE FUNCTION dr_latest_scores_reload(p_domain bigint) RETURNS void
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
      FROM domain_scores s JOIN domains d ON d.id = s.domain_id
     WHERE s.domain_id = p_domain
       AND NOT EXISTS (SELECT 1 FROM runs r
                        WHERE r.id = s.run_id AND r.kind = 'jolt')
     ORDER BY s.computed_at DESC, s.run_id DESC LIMIT 1;
$$;

-- A new or changed row becomes the latest when it is at least as recent
-- as the stored one, or is the stored one.  The condition is checked
-- again on the locked row, so two writers of one domain keep the more
-- recent row whichever commits first.
CREATE FUNCTION dr_latest_scores_write() RETURNS trigger
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

    -- a jolt run's scores (sql/019) are not the domain's latest
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

CREATE TRIGGER domain_scores_latest
    AFTER INSERT OR UPDATE OR DELETE ON domain_scores
    FOR EACH ROW EXECUTE FUNCTION dr_latest_scores_write();

-- a renamed, moved or retired domain: its latest row follows
CREATE FUNCTION dr_latest_scores_domain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE latest_scores
       SET domain = NEW.domain, category = NEW.category, active = NEW.active
     WHERE domain_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER domains_latest
    AFTER UPDATE OF domain, category, active ON domains
    FOR EACH ROW
    WHEN (OLD.domain IS DISTINCT FROM NEW.domain
          OR OLD.category IS DISTINCT FROM NEW.category
          OR OLD.active IS DISTINCT FROM NEW.active)
    EXECUTE FUNCTION dr_latest_scores_domain();

-- the view keeps its columns, now read from the table
CREATE OR REPLACE VIEW latest_domain_scores AS
    SELECT domain_id, run_id, memory_score, ai_consensus, cohesion,
           drift_score, trend, volatility, score, models_positive,
           models_neutral, models_negative, models_tracking, response_count,
           reputation_risk, risk_level, alerts, details, computed_at
      FROM latest_scores
     WHERE active;


-- counts kept up to date: 'responses' (stored answers), 'domains' (active
-- domains), 'scored' (active domains with scores); a writer adds to one
-- of 64 rows taken at random, so that writers committing at the same
-- time seldom wait for each other's row
CREATE TABLE row_counts (
    name    text NOT NULL,
    slot    integer NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (name, slot)
);

CREATE FUNCTION dr_count_add(p_name text, p_delta bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO row_counts (name, slot, n)
    SELECT p_name, floor(random() * 64)::int, p_delta WHERE p_delta <> 0
    ON CONFLICT (name, slot) DO UPDATE SET n = row_counts.n + EXCLUDED.n;
$$;

CREATE FUNCTION dr_count(p_name text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(n), 0)::bigint FROM row_counts WHERE name = p_name;
$$;

CREATE FUNCTION dr_count_responses() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM dr_count_add('responses', (SELECT count(*) FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM dr_count_add('responses', -(SELECT count(*) FROM old_rows));
    ELSE
        DELETE FROM row_counts WHERE name = 'responses';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER responses_count_insert AFTER INSERT ON responses
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_responses();
CREATE TRIGGER responses_count_delete AFTER DELETE ON responses
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_responses();
CREATE TRIGGER responses_count_truncate AFTER TRUNCATE ON responses
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_responses();

-- active rows of domains or of latest_scores: what a statement added less
-- what it took away
CREATE FUNCTION dr_count_active() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta bigint := 0;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM row_counts WHERE name = TG_ARGV[0];
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        delta := delta + (SELECT count(*) FROM new_rows WHERE active);
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        delta := delta - (SELECT count(*) FROM old_rows WHERE active);
    END IF;
    PERFORM dr_count_add(TG_ARGV[0], delta);
    RETURN NULL;
END
$$;

CREATE TRIGGER domains_count_insert AFTER INSERT ON domains
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('domains');
CREATE TRIGGER domains_count_update AFTER UPDATE ON domains
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('domains');
CREATE TRIGGER domains_count_delete AFTER DELETE ON domains
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('domains');
CREATE TRIGGER domains_count_truncate AFTER TRUNCATE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('domains');

CREATE TRIGGER latest_scores_count_insert AFTER INSERT ON latest_scores
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('scored');
CREATE TRIGGER latest_scores_count_update AFTER UPDATE ON latest_scores
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('scored');
CREATE TRIGGER latest_scores_count_delete AFTER DELETE ON latest_scores
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('scored');
CREATE TRIGGER latest_scores_count_truncate AFTER TRUNCATE ON latest_scores
    FOR EACH STATEMENT EXECUTE FUNCTION dr_count_active('scored');

-- what is there already (the triggers count the latest rows as they are
-- written)
INSERT INTO row_counts (name, slot, n)
SELECT 'responses', 0, count(*) FROM responses
UNION ALL SELECT 'domains', 0, count(*) FROM domains WHERE active;

SELECT dr_latest_scores_reload(id) FROM domains
 WHERE EXISTS (SELECT 1 FROM domain_scores s WHERE s.domain_id = domains.id);

-- the LIKE pattern of a substring search, with LIKE's own characters
-- escaped, so that the trigram index can answer it
CREATE FUNCTION dr_contains(search text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '%' || replace(replace(replace(search, '\', '\\'), '%', '\%'),
                          '_', '\_') || '%'
$$;

