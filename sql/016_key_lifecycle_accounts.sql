-- Keys that rotate and belong to someone, and the accounts of the
-- original public API.
--
-- A key gets an owner (an e-mail address) and a note.  A rotation gives
-- the key a new secret and keeps the hash of the old one, accepted until
-- previous_until: the key keeps its id, tier and usage.
--
-- An account signs in with an e-mail address and a password (scrypt,
-- "scrypt$<log2 N>$<r>$<p>$<salt>$<hash>", both base64url); its access
-- tokens name its generation, which a password change bumps, so that the
-- tokens issued before are refused.  A key made at registration belongs
-- to its account; the account's tokens act with that key's tier.

CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    email           text NOT NULL UNIQUE
                    CHECK (email = lower(email) AND length(email) <= 254),
    full_name       text NOT NULL DEFAULT ''
                    CHECK (length(full_name) <= 200),
    password_hash   text NOT NULL,
    generation      integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE api_keys
    ADD COLUMN owner text CHECK (length(owner) <= 254),
    ADD COLUMN note text CHECK (length(note) <= 1000),
    ADD COLUMN previous_hash bytea CHECK (octet_length(previous_hash) = 32),
    ADD COLUMN previous_until timestamptz,
    ADD COLUMN rotated_at timestamptz,
    ADD COLUMN account_id bigint REFERENCES accounts ON DELETE SET NULL;

CREATE INDEX api_keys_account ON api_keys (account_id)
    WHERE account_id IS NOT NULL;

-- what decides about a key now includes its previous secret and account
DROP TRIGGER api_keys_notify ON api_keys;

CREATE TRIGGER api_keys_notify
    AFTER INSERT OR DELETE
       OR UPDATE OF prefix, secret_hash, tier, expires_at, revoked_at,
                    previous_hash, previous_until, account_id
    ON api_keys
    FOR EACH ROW EXECUTE FUNCTION dr_notify_keys();

-- a password change ends the account's tokens on every node: the nodes
-- forget its keys, whose cached entries carry the generation
CREATE FUNCTION dr_notify_account_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dr_keys', k.prefix)
       FROM api_keys k WHERE k.account_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER accounts_notify
    AFTER UPDATE OF generation ON accounts
    FOR EACH ROW EXECUTE FUNCTION dr_notify_account_keys();

-- failed sign-ins per e-mail address and client network, in a window of
-- 15 minutes: too many from one network are refused for that network
-- only, so that a guesser elsewhere does not lock the owner out; a
-- success from a network clears its count.  They are kept by address,
-- known or not, so that an unknown address meets the same refusal and
-- the same statements as a known one: neither the answer nor its time
-- tells whether an account exists.  Rows an hour old are pruned by the
-- next failure.
CREATE TABLE login_failures (
    email           text NOT NULL,
    address         text NOT NULL,
    failures        integer NOT NULL,
    first_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email, address)
);

CREATE INDEX login_failures_first_at ON login_failures (first_at);
