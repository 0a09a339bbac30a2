-- resource_versions becomes an ordinary rowid table with the same primary
-- key. As a WITHOUT ROWID table its ~2 KB rows (raw + normalized JSON)
-- spilled onto overflow pages: measured on a 200-patient store, 17,299 of
-- 19,737 pages were overflow pages, and bulk ingest was ~30% slower.
-- +goose Up
CREATE TABLE resource_versions_rowid (
    connection   TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    patient_id   TEXT NOT NULL DEFAULT '',
    hash         BLOB NOT NULL,
    raw          BLOB NOT NULL,
    normalized   BLOB,
    last_updated TEXT NOT NULL DEFAULT '',
    fetched_at   TEXT NOT NULL,
    source       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id, version_id)
);
INSERT INTO resource_versions_rowid SELECT connection, type, id, version_id, patient_id, hash, raw, normalized,
    last_updated, fetched_at, source FROM resource_versions;
DROP TABLE resource_versions;
ALTER TABLE resource_versions_rowid RENAME TO resource_versions;

-- +goose Down
CREATE TABLE resource_versions_wr (
    connection   TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    patient_id   TEXT NOT NULL DEFAULT '',
    hash         BLOB NOT NULL,
    raw          BLOB NOT NULL,
    normalized   BLOB,
    last_updated TEXT NOT NULL DEFAULT '',
    fetched_at   TEXT NOT NULL,
    source       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id, version_id)
) WITHOUT ROWID;
INSERT INTO resource_versions_wr SELECT connection, type, id, version_id, patient_id, hash, raw, normalized,
    last_updated, fetched_at, source FROM resource_versions;
DROP TABLE resource_versions;
ALTER TABLE resource_versions_wr RENAME TO resource_versions;
