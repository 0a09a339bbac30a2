-- +goose Up
-- How far a bulk ingest got in each file of a job; written in the same
-- transaction as the batch it covers.
CREATE TABLE bulk_checkpoints (
    connection TEXT NOT NULL,
    job        TEXT NOT NULL,
    file       TEXT NOT NULL,
    "offset"   BIGINT NOT NULL,
    line       BIGINT NOT NULL,
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection, job, file)
);

-- Resources deleted at their source. The row in resources is removed (so the
-- resource is no longer current nor counted); every version stays in
-- resource_versions. A tombstone is in force only while no row for the
-- resource is in resources.
CREATE TABLE tombstones (
    connection TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    version_id TEXT NOT NULL DEFAULT '',
    deleted_at TIMESTAMPTZ NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id)
);

-- +goose Down
DROP TABLE tombstones;
DROP TABLE bulk_checkpoints;
