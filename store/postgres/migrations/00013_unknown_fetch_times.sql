-- +goose Up
-- A record or fetch state may come without a fetch time (HL7 v2 messages
-- converted to resources have none): NULL says unknown, as an empty text
-- does in the SQLite store, rather than failing the write.
ALTER TABLE resource_versions ALTER COLUMN fetched_at DROP NOT NULL;
ALTER TABLE fetch_state ALTER COLUMN fetched_at DROP NOT NULL;

-- +goose Down
UPDATE resource_versions SET fetched_at = '0001-01-01 00:00:00+00' WHERE fetched_at IS NULL;
UPDATE fetch_state SET fetched_at = '0001-01-01 00:00:00+00' WHERE fetched_at IS NULL;
ALTER TABLE resource_versions ALTER COLUMN fetched_at SET NOT NULL;
ALTER TABLE fetch_state ALTER COLUMN fetched_at SET NOT NULL;
