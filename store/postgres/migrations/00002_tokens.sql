-- +goose Up
-- OAuth token sets per connection. The secret parts are envelope-encrypted
-- by the caller (package secrets): kek_id names the key-encryption key,
-- wrapped_key is the record's data key under it, ciphertext the tokens.
-- The store never sees a plaintext token.
CREATE TABLE oauth_tokens (
    connection    TEXT NOT NULL PRIMARY KEY,
    kek_id        TEXT NOT NULL,
    wrapped_key   BYTEA NOT NULL,
    ciphertext    BYTEA NOT NULL,
    status        TEXT NOT NULL DEFAULT 'ok',
    status_reason TEXT NOT NULL DEFAULT '',
    expires_at    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ
);

-- ehrgate's signing keys for JWT client assertions (private half encrypted).
CREATE TABLE signing_keys (
    kid         TEXT NOT NULL PRIMARY KEY,
    alg         TEXT NOT NULL,
    public_jwk  BYTEA NOT NULL,
    kek_id      TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ,
    active_at   TIMESTAMPTZ,
    retired_at  TIMESTAMPTZ
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE oauth_tokens;
