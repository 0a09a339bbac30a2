-- +goose Up
-- Pending SMART App Launch authorizations (store.PendingLaunches), shared by
-- every gateway process using this database, so a launch started by one can
-- be completed by another. launch_key is a hash of the OAuth state, never the
-- state itself. The PKCE verifier, nonce, browser binding, scopes and launch
-- id are envelope-encrypted by the caller (package secrets): kek_id names the
-- key-encryption key, wrapped_key is the record's data key under it,
-- ciphertext the record. Times are Unix nanoseconds, so they compare as
-- numbers.
CREATE TABLE pending_launches (
    launch_key  TEXT NOT NULL PRIMARY KEY,
    connection  TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    kek_id      TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_ns  INTEGER NOT NULL,
    expires_ns  INTEGER NOT NULL
) WITHOUT ROWID;

-- The per-address bound counts one address's live launches; the total bound
-- and the purge walk launches by expiry.
CREATE INDEX pending_launches_by_addr ON pending_launches (client_addr, expires_ns);
CREATE INDEX pending_launches_by_expiry ON pending_launches (expires_ns);

-- +goose Down
DROP TABLE pending_launches;
