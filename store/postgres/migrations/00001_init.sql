-- +goose Up
CREATE TABLE resource_versions (
    connection   TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    patient_id   TEXT NOT NULL DEFAULT '',
    hash         BYTEA NOT NULL,
    raw          BYTEA NOT NULL,
    normalized   BYTEA,
    last_updated TIMESTAMPTZ,
    fetched_at   TIMESTAMPTZ NOT NULL,
    source       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id, version_id)
);

CREATE TABLE resources (
    connection TEXT NOT NULL,
    type       TEXT NOT NULL,
    id         TEXT NOT NULL,
    version_id TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    patient_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, type, id)
);
CREATE INDEX resources_by_patient ON resources (connection, patient_id, type);

CREATE TABLE patients (
    connection TEXT NOT NULL,
    id         TEXT NOT NULL,
    search     TEXT NOT NULL,
    birth_date TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, id)
);
CREATE INDEX patients_by_birth_date ON patients (birth_date);

CREATE TABLE quarantine (
    seq         BIGSERIAL PRIMARY KEY,
    connection  TEXT NOT NULL,
    type        TEXT NOT NULL DEFAULT '',
    resource_id TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL,
    raw         BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE fetch_state (
    connection   TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    type         TEXT NOT NULL,
    availability TEXT NOT NULL,
    count        INTEGER NOT NULL,
    fetched_at   TIMESTAMPTZ NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (connection, patient_id, type)
);

-- +goose Down
DROP TABLE fetch_state;
DROP TABLE quarantine;
DROP TABLE patients;
DROP TABLE resources;
DROP TABLE resource_versions;
