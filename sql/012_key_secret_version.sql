-- Rotating the server secret of the API keys: each key records which
-- secret its hash was made under (a fingerprint of that secret, never
-- the secret), so that the keys still under the previous one can be
-- counted; a key used while nginx knows both is hashed again under the
-- current one.  Keys made before this migration have none.

ALTER TABLE api_keys ADD COLUMN secret_version text;
