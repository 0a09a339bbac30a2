-- +goose Up
-- How far a bulk ingest got in each file of a job; written in the same
-- transaction as the batch it covers.
CREATE TABLE bulk_checkpoints (
    connection TEXT NOT NULL,
    job        TEXT NOT NULL,
    file       TEXT NOT NULL,
    offset     INTEGER NOT NULL,
    line       INTEGER NOT NULL,
    done       INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (connection, job, file)
) WITHOUT ROWID;

-- transactionTime of the last complete export per connection and scope.
CREATE TABLE bulk_exports (
    connection       TEXT NOT NULL,
    scope            TEXT NOT NULL,
    transaction_time TEXT NOT NULL,
    PRIMARY KEY (connection, scope)
) WITHOUT ROWID;

-- Resources deleted at their source. The row in resources is removed (so the
-- resource is no longer current nor counted); every version stays in
-- resource_versions. A tombstone is in force only while no row for the
-- resource is in resources.
CREATE TABLE tombstones (
    connection TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    version_id TEXT NOT NULL DEFAULT '',
    deleted_at TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE tombstones;
DROP TABLE bulk_exports;
DROP TABLE bulk_checkpoints;
