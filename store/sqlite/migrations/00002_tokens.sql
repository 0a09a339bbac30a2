-- +goose Up
-- OAuth token sets per connection. The secret parts are envelope-encrypted
-- by the caller (package secrets): kek_id names the key-encryption key,
-- wrapped_key is the record's data key under it, ciphertext the tokens.
CREATE TABLE oauth_tokens (
    connection    TEXT NOT NULL PRIMARY KEY,
    kek_id        TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'ok',
    status_reason TEXT NOT NULL DEFAULT '',
    expires_at    TEXT NOT NULL DEFAULT '',
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

-- ehrgate's signing keys for JWT client assertions (private half encrypted).
CREATE TABLE signing_keys (
    kid         TEXT NOT NULL PRIMARY KEY,
    alg         TEXT NOT NULL,
    public_jwk  BLOB NOT NULL,
    kek_id      TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    active_at   TEXT NOT NULL,
    retired_at  TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE oauth_tokens;
