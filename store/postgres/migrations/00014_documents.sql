-- +goose Up
-- Small documents the gateway keeps between runs (connection state, probe
-- reports), shared by every process on the database. No secrets, no
-- patient data.
CREATE TABLE documents (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       BYTEA NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, name)
);

-- +goose Down
DROP TABLE documents;
