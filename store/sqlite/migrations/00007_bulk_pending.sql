-- +goose Up
-- Bulk Data export jobs kicked off and not finished, one per connection and
-- scope: a killed export polls this job again instead of starting a new one
-- on the server. fingerprint identifies the request's parameters (a
-- different request abandons the job); status_url is the kick-off's
-- Content-Location.
CREATE TABLE bulk_pending (
    connection  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_url  TEXT NOT NULL,
    kicked_off  TEXT NOT NULL,
    PRIMARY KEY (connection, scope)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE bulk_pending;
