-- Keys notify the nodes only when what decides about them changes (not
-- when the usage flush marks them used), and when one is made, so that a
-- node that cached its prefix as unknown forgets that at once.

DROP TRIGGER api_keys_notify ON api_keys;

CREATE TRIGGER api_keys_notify
    AFTER INSERT OR DELETE
       OR UPDATE OF prefix, secret_hash, tier, expires_at, revoked_at
    ON api_keys
    FOR EACH ROW EXECUTE FUNCTION dr_notify_keys();

-- the pull of the cluster sync looks buckets up by name
CREATE INDEX limit_consumption_bucket ON limit_consumption (bucket);
