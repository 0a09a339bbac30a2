-- +goose Up
-- The durable log of inbound HL7 v2 messages (store-and-forward behind the
-- MLLP listener). A message is acknowledged only after its row committed.
-- A duplicate is the same identity (sending application, facility, MSH-10
-- control ID) AND the same content (content_hash; empty: logged without
-- one, matches any content of its identity); the same identity with other
-- content is a new message, flagged reused.
CREATE TABLE hl7_messages (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection       TEXT NOT NULL,
    sending_app      TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    control_id       TEXT NOT NULL,
    content_hash     BYTEA NOT NULL DEFAULT '',
    reused           BOOLEAN NOT NULL DEFAULT FALSE,
    message_type     TEXT NOT NULL DEFAULT '',
    raw              BYTEA NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL,
    processed        BOOLEAN NOT NULL DEFAULT FALSE,
    error            TEXT NOT NULL DEFAULT '',
    UNIQUE (sending_app, sending_facility, control_id, content_hash)
);
CREATE INDEX hl7_messages_pending ON hl7_messages (seq) WHERE NOT processed AND error = '';

-- +goose Down
DROP TABLE hl7_messages;
