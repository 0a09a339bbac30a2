-- +goose Up
-- The durable log of inbound HL7 v2 messages (store-and-forward behind the
-- MLLP listener). A message is acknowledged only after its row committed.
-- Identity for duplicate detection: sending application, facility and
-- MSH-10 control ID.
CREATE TABLE hl7_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection       TEXT NOT NULL,
    sending_app      TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    control_id       TEXT NOT NULL,
    message_type     TEXT NOT NULL DEFAULT '',
    raw              BLOB NOT NULL,
    received_at      TEXT NOT NULL,
    processed        INTEGER NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT '',
    UNIQUE (sending_app, sending_facility, control_id)
);
CREATE INDEX hl7_messages_pending ON hl7_messages (processed, seq) WHERE processed = 0;

-- +goose Down
DROP TABLE hl7_messages;
