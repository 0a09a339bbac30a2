-- +goose Up
-- The audit trail (store.AuditLog): one row per access to patient data, a
-- FHIR AuditEvent (event) chained to the row before by SHA-256 (hash over
-- prev_hash and the row's canonical bytes, store.AuditHash). Appends take
-- the advisory lock 'audit_events' so every process extends one chain.
-- Rows are never changed or removed: the triggers refuse it, and the chain
-- shows it when someone drops them.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    recorded   TIMESTAMPTZ NOT NULL,
    type       TEXT NOT NULL,
    subtype    TEXT NOT NULL,
    action     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    agent      TEXT NOT NULL,
    connection TEXT NOT NULL,
    patient    TEXT NOT NULL,
    event      BYTEA NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient, seq);
CREATE INDEX audit_events_agent ON audit_events (agent, seq);
CREATE INDEX audit_events_recorded ON audit_events (recorded);

-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
