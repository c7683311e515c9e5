-- Events and jolts, tiered crawls and imported SEO figures.
--
-- Events are what an operator records of a domain's real life (a rebrand,
-- a crisis, a launch, an acquisition, news).  One of severity at or above
-- the node's threshold (dr_jolt_severity) makes the domain "jolt": a run
-- of the jolt prompts is made at once and again 1, 7 and 30 days after
-- the event was recorded, so that what the models remember can be
-- compared before and after it (GET /api/jolt-benchmark/{domain}).


-- Standard prompts are asked in every run; jolt prompts only in the runs
-- an event makes.  "{event}" in a template becomes the event's kind and
-- title, so that the models are asked about it.

ALTER TABLE prompts ADD COLUMN kind text NOT NULL DEFAULT 'standard'
    CHECK (kind IN ('standard', 'jolt'));

INSERT INTO prompts (name, template, kind) VALUES
    ('brand_memory_analysis',
     'What do you remember about {domain}? Recent event, {event}. '
     'Under which name do you know the brand, what does it offer, and '
     'what is it known for now?', 'jolt'),
    ('market_intelligence',
     'Where does {domain} stand in its market? Recent event, {event}. '
     'Name its competitors and say how customers and investors see the '
     'brand today.', 'jolt')
ON CONFLICT (name) DO NOTHING;

ALTER TABLE runs DROP CONSTRAINT runs_kind_check;
ALTER TABLE runs ADD CONSTRAINT runs_kind_check
    CHECK (kind IN ('scheduled', 'on_demand', 'probe', 'jolt'));


CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    domain_id   bigint NOT NULL REFERENCES domains,
    occurred_at timestamptz NOT NULL,
    kind        text NOT NULL
                CHECK (kind IN ('rebrand', 'crisis', 'launch',
                                'acquisition', 'news')),
    severity    text NOT NULL
                CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    url         text CHECK (url ~ '^https?://'),
    jolt        boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_domain ON events (domain_id, occurred_at);

-- The jolt runs of an event: made when due (at once, then by the first
-- worker of any node that crawls), once in the cluster.
CREATE TABLE jolt_runs (
    event_id    bigint NOT NULL REFERENCES events ON DELETE CASCADE,
    after_days  integer NOT NULL,
    due_at      timestamptz NOT NULL,
    made_at     timestamptz,
    run_id      bigint REFERENCES runs ON DELETE SET NULL,
    PRIMARY KEY (event_id, after_days)
);

CREATE INDEX jolt_runs_due ON jolt_runs (due_at) WHERE made_at IS NULL;

CREATE TRIGGER events_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION dr_notify_scores();

CREATE FUNCTION dr_severity_rank(text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_position(ARRAY['low', 'medium', 'high', 'critical'], $1)
$$;


-- The jolt run of an event's step, if it is due and not made yet: every
-- active model asks every active jolt prompt.  The row's lock makes one
-- run whichever node asks.  NULL when there was nothing to make.
CREATE FUNCTION dr_jolt_run(p_event bigint, p_days integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_run   bigint;
    v_jobs  integer;
BEGIN
    PERFORM 1 FROM jolt_runs
     WHERE event_id = p_event AND after_days = p_days AND made_at IS NULL
       AND due_at <= now()
       FOR UPDATE SKIP LOCKED;

    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    INSERT INTO runs (kind, scope, status, total_jobs)
    SELECT 'jolt', jsonb_build_object('event_id', e.id,
               'domain', d.domain, 'after_days', p_days,
               'event', e.kind || ': ' || e.title),
           'queued', 0
      FROM events e JOIN domains d ON d.id = e.domain_id AND d.active
     WHERE e.id = p_event
    RETURNING id INTO v_run;

    IF v_run IS NOT NULL THEN
        INSERT INTO jobs (run_id, domain_id, model_id, prompt_id)
        SELECT v_run, e.domain_id, m.id, p.id
          FROM events e, models m, prompts p
         WHERE e.id = p_event AND m.active AND p.active AND p.kind = 'jolt';

        GET DIAGNOSTICS v_jobs = ROW_COUNT;

        IF v_jobs = 0 THEN
            DELETE FROM runs WHERE id = v_run;
            v_run := NULL;
        ELSE
            UPDATE runs SET total_jobs = v_jobs WHERE id = v_run;
        END IF;
    END IF;

    UPDATE jolt_runs SET made_at = now(), run_id = v_run
     WHERE event_id = p_event AND after_days = p_days;

    RETURN v_run;
END
$$;

-- The jolt runs now due, for the periodic job: how many were made.
CREATE FUNCTION dr_jolt_due() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    n       integer := 0;
BEGIN
    FOR r IN SELECT event_id, after_days FROM jolt_runs
              WHERE made_at IS NULL AND due_at <= now()
              ORDER BY due_at LIMIT 100
    LOOP
        IF dr_jolt_run(r.event_id, r.after_days) IS NOT NULL THEN
            n := n + 1;
        END IF;
    END LOOP;

    RETURN n;
END
$$;

-- An event recorded, with its audit row and, when it jolts, its jolt
-- runs planned and the first made: all or nothing.  An event older than
-- the last of its jolt runs (30 days) is history: recorded and compared
-- by the jolt benchmark, it plans no run, whatever its severity.  No row when the
-- domain is unknown or retired; a row without id when the event would
-- happen in the future.
CREATE FUNCTION dr_event_add(p_domain text, p_occurred timestamptz,
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


-- Tiered crawls.  A domain is in the core set (permanent benchmark
-- brands), the rotating set (for 30 days, then it falls back to regular)
-- or the regular tail; a domain in no tier is crawled in full, as before
-- tiers existed.  A tier asks its models and its prompts; a tier with no
-- rows of models (of prompts) asks every active model (standard prompt).

CREATE TABLE tiers (
    name        text PRIMARY KEY
                CHECK (name IN ('core', 'rotating', 'regular')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tiers (name) VALUES ('core'), ('rotating'), ('regular')
ON CONFLICT DO NOTHING;

CREATE TABLE tier_models (
    tier        text NOT NULL REFERENCES tiers,
    model_id    integer NOT NULL REFERENCES models ON DELETE CASCADE,
    PRIMARY KEY (tier, model_id)
);

CREATE TABLE tier_prompts (
    tier        text NOT NULL REFERENCES tiers,
    prompt_id   integer NOT NULL REFERENCES prompts ON DELETE CASCADE,
    PRIMARY KEY (tier, prompt_id)
);

-- the regular tail: the cheap models (at most a dollar a million input
-- and output tokens together) and one prompt
INSERT INTO tier_models (tier, model_id)
SELECT 'regular', id FROM models
 WHERE input_price_mtok + output_price_mtok <= 1
ON CONFLICT DO NOTHING;

INSERT INTO tier_prompts (tier, prompt_id)
SELECT 'regular', id FROM prompts WHERE name = 'business_analysis'
ON CONFLICT DO NOTHING;

CREATE TABLE domain_tiers (
    domain_id   bigint PRIMARY KEY REFERENCES domains,
    tier        text NOT NULL REFERENCES tiers,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);

-- the tier a domain is crawled in now: rotating ends after its 30 days
CREATE FUNCTION dr_domain_tier(p_domain bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t.tier = 'rotating' AND t.expires_at <= now()
                THEN 'regular' ELSE t.tier END
      FROM domain_tiers t WHERE t.domain_id = p_domain
$$;

CREATE FUNCTION dr_tier_model(p_tier text, p_model integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_tier IS NULL
        OR NOT EXISTS (SELECT 1 FROM tier_models WHERE tier = p_tier)
        OR EXISTS (SELECT 1 FROM tier_models
                    WHERE tier = p_tier AND model_id = p_model)
$$;

CREATE FUNCTION dr_tier_prompt(p_tier text, p_prompt integer)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_tier IS NULL
        OR NOT EXISTS (SELECT 1 FROM tier_prompts WHERE tier = p_tier)
        OR EXISTS (SELECT 1 FROM tier_prompts
                    WHERE tier = p_tier AND prompt_id = p_prompt)
$$;

-- what a scheduled run asks: each active domain, its tier's models and
-- standard prompts
CREATE VIEW tier_jobs AS
    SELECT d.id AS domain_id, m.id AS model_id, p.id AS prompt_id
      FROM domains d
      CROSS JOIN LATERAL (SELECT dr_domain_tier(d.id) AS tier) t
      JOIN models m ON m.active AND dr_tier_model(t.tier, m.id)
      JOIN prompts p ON p.active AND p.kind = 'standard'
                    AND dr_tier_prompt(t.tier, p.id)
     WHERE d.active;


-- SEO figures an operator imports (nothing is fetched): one number per
-- (domain, day, metric).
CREATE TABLE seo_metrics (
    domain_id   bigint NOT NULL REFERENCES domains,
    day         date NOT NULL,
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    value       double precision NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, name, day)
);

CREATE TRIGGER seo_metrics_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON seo_metrics
    FOR EACH STATEMENT EXECUTE FUNCTION dr_notify_scores();
