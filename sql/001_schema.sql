-- The data model of Domain Runner: tracked domains, the prompts and models
-- of the crawl, the durable job queue, every answer stored once, the
-- scores derived from them, API keys and their daily usage.

CREATE TABLE domains (
    id          bigserial PRIMARY KEY,
    domain      text NOT NULL UNIQUE
                CHECK (domain = lower(domain) AND length(domain) <= 253),
    category    text,
    cohort      text,
    priority    integer NOT NULL DEFAULT 0,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX domains_category ON domains (category) WHERE active;
CREATE INDEX domains_cohort ON domains (cohort) WHERE active;

CREATE TABLE prompts (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    template    text NOT NULL CHECK (position('{domain}' IN template) > 0),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- prices in US dollars per million tokens
CREATE TABLE models (
    id                  serial PRIMARY KEY,
    provider            text NOT NULL,
    model               text NOT NULL,
    active              boolean NOT NULL DEFAULT true,
    input_price_mtok    numeric(12, 4) NOT NULL DEFAULT 0
                        CHECK (input_price_mtok >= 0),
    output_price_mtok   numeric(12, 4) NOT NULL DEFAULT 0
                        CHECK (output_price_mtok >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, model)
);

CREATE TABLE runs (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL DEFAULT 'on_demand'
                    CHECK (kind IN ('scheduled', 'on_demand', 'probe')),
    scope           jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done',
                                      'failed', 'cancelled')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    total_jobs      integer NOT NULL DEFAULT 0,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    cost            numeric(14, 6) NOT NULL DEFAULT 0
);

-- The durable queue: one row per (run, domain, model, prompt).  Workers
-- claim rows with FOR UPDATE SKIP LOCKED and hold them under a lease; a
-- lease that expires returns the job to the queue.
CREATE TABLE jobs (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    domain_id       bigint NOT NULL REFERENCES domains,
    model_id        integer NOT NULL REFERENCES models,
    prompt_id       integer NOT NULL REFERENCES prompts,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'leased', 'done',
                                      'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 3,
    not_before      timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_expires   timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, domain_id, model_id, prompt_id)
);

CREATE INDEX jobs_claimable ON jobs (not_before)
    WHERE status IN ('queued', 'failed');
CREATE INDEX jobs_leased ON jobs (lease_expires) WHERE status = 'leased';

-- Every answer, stored exactly once: the unique key makes a retried or
-- duplicated job unable to store twice.
CREATE TABLE responses (
    id              bigserial PRIMARY KEY,
    job_id          bigint REFERENCES jobs ON DELETE SET NULL,
    run_id          bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
    domain_id       bigint NOT NULL REFERENCES domains,
    model_id        integer NOT NULL REFERENCES models,
    prompt_id       integer NOT NULL REFERENCES prompts,
    prompt_text     text NOT NULL,
    answer          text NOT NULL,
    finish_reason   text,
    http_status     integer NOT NULL,
    input_tokens    integer,
    output_tokens   integer,
    cost            numeric(14, 8) NOT NULL DEFAULT 0,
    latency_ms      integer NOT NULL,
    simulated       boolean NOT NULL,
    captured_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, domain_id, model_id, prompt_id)
);

CREATE INDEX responses_domain_captured ON responses (domain_id, captured_at);
CREATE INDEX responses_captured ON responses (captured_at);

-- The scores of one domain for one run (SPEC section 8); "alerts" names the
-- risk conditions that fired, "details" keeps drift per model and prompt.
CREATE TABLE domain_scores (
    domain_id           bigint NOT NULL REFERENCES domains,
    run_id              bigint NOT NULL REFERENCES runs ON DELETE CASCADE,
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
    risk_level          text NOT NULL
                        CHECK (risk_level IN ('low', 'medium', 'high',
                                              'critical')),
    alerts              text[] NOT NULL DEFAULT '{}',
    details             jsonb NOT NULL DEFAULT '{}',
    computed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, run_id)
);

CREATE INDEX domain_scores_recent ON domain_scores (domain_id, computed_at);

CREATE VIEW latest_domain_scores AS
    SELECT DISTINCT ON (s.domain_id) s.*
      FROM domain_scores s
      JOIN domains d ON d.id = s.domain_id AND d.active
     ORDER BY s.domain_id, s.computed_at DESC, s.run_id DESC;

-- API keys: "dr_<prefix>_<secret>"; only the prefix and an HMAC-SHA256 of
-- the secret under the server's key secret are stored.
CREATE TABLE api_keys (
    id              bigserial PRIMARY KEY,
    prefix          text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{6,16}$'),
    secret_hash     bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    tier            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz
);

-- Flushed in batches from shared memory, never one write per request.
CREATE TABLE usage_daily (
    key_id          bigint NOT NULL REFERENCES api_keys ON DELETE CASCADE,
    day             date NOT NULL,
    requests        bigint NOT NULL DEFAULT 0,
    rejected        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day)
);
