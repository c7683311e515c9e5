-- The audit trail of the admin API: every action that changes something
-- (keys, domains, runs, ...), written by the same statement as the
-- action itself, with the acting key, its client's address, when, and
-- what changed.  Never a secret: a key appears by its id, prefix and
-- name only.

CREATE TABLE admin_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    key_id      bigint,
    address     text,
    action      text NOT NULL,
    target      text,
    detail      jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX admin_audit_at ON admin_audit (at);
CREATE INDEX admin_audit_key ON admin_audit (key_id, at);
