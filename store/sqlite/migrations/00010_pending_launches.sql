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

-- The per-address bound counts one address's live launches; the purge walks
-- launches by expiry.
CREATE INDEX pending_launches_by_addr ON pending_launches (client_addr, expires_ns);
CREATE INDEX pending_launches_by_expiry ON pending_launches (expires_ns);

-- How many rows pending_launches holds (live or not yet purged), kept by
-- triggers, so the total bound is checked without counting the table.
CREATE TABLE pending_launch_count (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO pending_launch_count (id, n) VALUES (1, 0);
-- +goose StatementBegin
CREATE TRIGGER pending_launches_counted_in AFTER INSERT ON pending_launches
BEGIN
    UPDATE pending_launch_count SET n = n + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER pending_launches_counted_out AFTER DELETE ON pending_launches
BEGIN
    UPDATE pending_launch_count SET n = n - 1 WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER pending_launches_counted_out;
DROP TRIGGER pending_launches_counted_in;
DROP TABLE pending_launch_count;
DROP TABLE pending_launches;
