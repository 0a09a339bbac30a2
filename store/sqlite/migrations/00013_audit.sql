-- +goose Up
-- The audit trail (store.AuditLog): one row per access to patient data, a
-- FHIR AuditEvent (event) chained to the row before by SHA-256 (hash over
-- prev_hash and the row's canonical bytes, store.AuditHash). recorded is
-- Unix nanoseconds (at microsecond precision). Rows are never changed or
-- removed: the triggers refuse it, and the chain shows it when someone
-- drops them.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    recorded   INTEGER NOT NULL,
    type       TEXT NOT NULL,
    subtype    TEXT NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    agent      TEXT NOT NULL,
    connection TEXT NOT NULL,
    patient    TEXT NOT NULL,
    event      BLOB NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient, seq);
CREATE INDEX audit_events_agent ON audit_events (agent, seq);
CREATE INDEX audit_events_recorded ON audit_events (recorded);

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_events;
