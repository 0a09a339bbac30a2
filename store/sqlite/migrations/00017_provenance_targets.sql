-- +goose Up
-- Provenance by target (store.ProvenanceFinder: Bulk Data export's
-- includeAssociatedData): one row per reference in a current Provenance's
-- target, on the Provenance's connection, written with the Provenance and
-- removed when it is replaced or tombstoned. recorded is Provenance.recorded
-- in Unix nanoseconds (else the time ehrgate received it), to find each
-- resource's latest Provenance.
CREATE TABLE provenance_targets (
    connection    TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    provenance_id TEXT NOT NULL,
    recorded      INTEGER NOT NULL,
    PRIMARY KEY (connection, target_type, target_id, provenance_id)
) WITHOUT ROWID;
CREATE INDEX provenance_targets_by_provenance ON provenance_targets (connection, provenance_id);
-- The Provenance stored before this migration are indexed when the store
-- opens (sqlstore's backfill, in Go: bodies are compressed), which then
-- deletes this row.
CREATE TABLE provenance_targets_backfill (pending INTEGER NOT NULL);
INSERT INTO provenance_targets_backfill (pending) VALUES (1);

-- +goose Down
DROP TABLE provenance_targets_backfill;
DROP TABLE provenance_targets;
