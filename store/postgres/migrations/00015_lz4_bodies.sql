-- +goose Up
-- Resource bodies are compressed with LZ4 where the server supports it
-- (PostgreSQL built with lz4, as Debian's and the official images are):
-- several times cheaper in CPU than the default pglz, which made TOAST
-- compression most of a bulk ingest's cost. Existing values keep their
-- compression until rewritten. Without lz4 nothing changes.
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE resource_versions ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE resource_versions ALTER COLUMN normalized SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression is not available: keeping pglz';
END
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE resource_versions ALTER COLUMN raw SET COMPRESSION pglz;
ALTER TABLE resource_versions ALTER COLUMN normalized SET COMPRESSION pglz;
