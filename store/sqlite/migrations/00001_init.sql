-- +goose Up
CREATE TABLE resource_versions (
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

-- The current version of each resource.
CREATE TABLE resources (
    connection TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    version_id TEXT NOT NULL,
    hash       BLOB NOT NULL,
    patient_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id)
) WITHOUT ROWID;
CREATE INDEX resources_by_patient ON resources (connection, patient_id, type);

-- Demographic search keys for Patient resources.
CREATE TABLE patients (
    connection TEXT NOT NULL,
    id         TEXT NOT NULL,
    search     TEXT NOT NULL,
    birth_date TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, id)
) WITHOUT ROWID;
CREATE INDEX patients_by_birth_date ON patients (birth_date);

CREATE TABLE quarantine (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    connection  TEXT NOT NULL,
    type        TEXT NOT NULL DEFAULT '',
    resource_id TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL,
    raw         BLOB NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE fetch_state (
    connection   TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    type         TEXT NOT NULL,
    availability TEXT NOT NULL,
    count        INTEGER NOT NULL,
    fetched_at   TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, patient_id, type)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE fetch_state;
DROP TABLE quarantine;
DROP TABLE patients;
DROP TABLE resources;
DROP TABLE resource_versions;
