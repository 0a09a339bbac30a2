-- +goose Up
-- Pending launches' columns take the names the shared store code uses
-- (store/internal/sqlstore, as on PostgreSQL); the values stay Unix
-- nanoseconds, which compare in time order. Indexes follow the rename.
ALTER TABLE pending_launches RENAME COLUMN created_ns TO created_at;
ALTER TABLE pending_launches RENAME COLUMN expires_ns TO expires_at;

-- +goose Down
ALTER TABLE pending_launches RENAME COLUMN created_at TO created_ns;
ALTER TABLE pending_launches RENAME COLUMN expires_at TO expires_ns;
