-- +goose Up
-- The _since of the next Bulk Data export, per connection, scope and
-- resource type: the transactionTime of the last export that brought that
-- type completely (type '' is an export without _type).
CREATE TABLE bulk_since (
    connection       TEXT NOT NULL,
    scope            TEXT NOT NULL,
    type             TEXT NOT NULL,
    transaction_time TIMESTAMPTZ,
    PRIMARY KEY (connection, scope, type)
);

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
    kicked_off  TIMESTAMPTZ,
    PRIMARY KEY (connection, scope)
);

-- +goose Down
DROP TABLE bulk_pending;
DROP TABLE bulk_since;
