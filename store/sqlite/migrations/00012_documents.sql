-- +goose Up
-- Small documents the gateway keeps between runs (connection state, probe
-- reports), in the store so that every process on it sees them. No
-- secrets, no patient data. updated_at is Unix nanoseconds.
CREATE TABLE documents (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE documents;
