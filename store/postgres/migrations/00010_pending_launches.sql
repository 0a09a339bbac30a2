-- +goose Up
-- Pending SMART App Launch authorizations (store.PendingLaunches), shared by
-- every gateway process using this database, so a launch started by one can
-- be completed by another. launch_key is a hash of the OAuth state, never the
-- state itself. The PKCE verifier, nonce, browser binding, scopes and launch
-- id are envelope-encrypted by the caller (package secrets): kek_id names the
-- key-encryption key, wrapped_key is the record's data key under it,
-- ciphertext the record. Numbered 00010 like the same table in store/sqlite.
CREATE TABLE pending_launches (
    launch_key  TEXT NOT NULL PRIMARY KEY,
    connection  TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    kek_id      TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- The per-address bound counts one address's live launches; the purge walks
-- launches by expiry.
CREATE INDEX pending_launches_by_addr ON pending_launches (client_addr, expires_at);
CREATE INDEX pending_launches_by_expiry ON pending_launches (expires_at);

-- How many rows pending_launches holds (live or not yet purged), kept by
-- statement-level triggers (one counter update per statement, taken after
-- the statement's row locks, so a purge and a take cannot deadlock), so
-- the total bound is checked without counting the table.
CREATE TABLE pending_launch_count (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO pending_launch_count (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE FUNCTION pending_launches_counted_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pending_launch_count SET n = n + (SELECT count(*) FROM added) WHERE id = 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION pending_launches_counted_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pending_launch_count SET n = n - (SELECT count(*) FROM removed) WHERE id = 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER pending_launches_counted_in AFTER INSERT ON pending_launches
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION pending_launches_counted_in();
CREATE TRIGGER pending_launches_counted_out AFTER DELETE ON pending_launches
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION pending_launches_counted_out();

-- +goose Down
DROP TABLE pending_launches;
DROP FUNCTION pending_launches_counted_out();
DROP FUNCTION pending_launches_counted_in();
DROP TABLE pending_launch_count;
