-- A changed key (revoked, expired, moved to another tier) tells the nginx
-- nodes, which drop it from their caches: a revoked key is refused
-- everywhere within moments, not when a cache entry times out.

CREATE FUNCTION dr_notify_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dr_keys', coalesce(NEW.prefix, OLD.prefix));
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_notify
    AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION dr_notify_keys();

-- Cluster rate limits: every node's count of tokens taken per bucket,
-- cumulative; each node subtracts what the others took.  Lost on a crash
-- of PostgreSQL without harm, so not logged.
CREATE UNLOGGED TABLE limit_consumption (
    node        text NOT NULL,
    bucket      text NOT NULL,
    consumed    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, bucket)
);

CREATE INDEX limit_consumption_recent ON limit_consumption (updated_at);
