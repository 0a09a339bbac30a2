-- +goose Up
-- Duplicate detection by identity AND content: the same (sending app,
-- facility, control id) with other content is a new message (a control-id
-- reuse), stored and processed. SQLite cannot change a table constraint in
-- place, so the log is rebuilt. Rows from before have an empty content
-- hash, which matches any content of their identity (their old meaning).
CREATE TABLE hl7_messages_v2 (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection       TEXT NOT NULL,
    sending_app      TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    control_id       TEXT NOT NULL,
    content_hash     BLOB NOT NULL DEFAULT x'',
    reused           INTEGER NOT NULL DEFAULT 0,
    message_type     TEXT NOT NULL DEFAULT '',
    raw              BLOB NOT NULL,
    received_at      TEXT NOT NULL,
    processed        INTEGER NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT '',
    UNIQUE (sending_app, sending_facility, control_id, content_hash)
);
INSERT INTO hl7_messages_v2 (seq, connection, sending_app, sending_facility, control_id, message_type, raw, received_at, processed, error)
    SELECT seq, connection, sending_app, sending_facility, control_id, message_type, raw, received_at, processed, error FROM hl7_messages;
DROP TABLE hl7_messages;
ALTER TABLE hl7_messages_v2 RENAME TO hl7_messages;
CREATE INDEX hl7_messages_pending ON hl7_messages (processed, seq) WHERE processed = 0;

-- +goose Down
CREATE TABLE hl7_messages_v1 (
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
INSERT OR IGNORE INTO hl7_messages_v1 (seq, connection, sending_app, sending_facility, control_id, message_type, raw, received_at, processed, error)
    SELECT seq, connection, sending_app, sending_facility, control_id, message_type, raw, received_at, processed, error FROM hl7_messages ORDER BY seq;
DROP TABLE hl7_messages;
ALTER TABLE hl7_messages_v1 RENAME TO hl7_messages;
CREATE INDEX hl7_messages_pending ON hl7_messages (processed, seq) WHERE processed = 0;
