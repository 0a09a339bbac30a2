-- +goose Up
-- HL7 feed statistics (store.HL7Stats): the ACK code each message was sent
-- ('' before this migration: AA, or AE when refused), when it was converted
-- ('' = not, or before this migration), and indexes for a feed's hourly
-- counts and its refused or unconverted messages.
ALTER TABLE hl7_messages ADD COLUMN ack TEXT NOT NULL DEFAULT '';
ALTER TABLE hl7_messages ADD COLUMN processed_at TEXT NOT NULL DEFAULT '';
CREATE INDEX hl7_messages_received ON hl7_messages (connection, received_at);
CREATE INDEX hl7_messages_problems ON hl7_messages (connection, seq) WHERE error <> '';

-- +goose Down
DROP INDEX hl7_messages_problems;
DROP INDEX hl7_messages_received;
ALTER TABLE hl7_messages DROP COLUMN processed_at;
ALTER TABLE hl7_messages DROP COLUMN ack;
