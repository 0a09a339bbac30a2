-- +goose Up
-- The _since of the next Bulk Data export, per connection, scope and
-- resource type: the transactionTime of the last export that brought that
-- type completely. A partial export (a manifest error, a file that failed
-- for good, a requested type missing from the output) advances only the
-- types it did bring completely, so the next run asks for the others again
-- from where they were.
--
-- type '' is an export without _type (whatever the server exported). The
-- single per-scope time kept by earlier versions (bulk_exports) did not say
-- which types it covered, so it is kept under '' only: requests that name
-- their types start those types from the beginning once (the store keeps
-- only what changed), rather than trusting it for a type it never covered.
CREATE TABLE bulk_since (
    connection       TEXT NOT NULL,
    scope            TEXT NOT NULL,
    type             TEXT NOT NULL,
    transaction_time TEXT NOT NULL,
    PRIMARY KEY (connection, scope, type)
) WITHOUT ROWID;

INSERT INTO bulk_since (connection, scope, type, transaction_time)
    SELECT connection, scope, '', transaction_time FROM bulk_exports;

DROP TABLE bulk_exports;

-- +goose Down
CREATE TABLE bulk_exports (
    connection       TEXT NOT NULL,
    scope            TEXT NOT NULL,
    transaction_time TEXT NOT NULL,
    PRIMARY KEY (connection, scope)
) WITHOUT ROWID;

-- One time per scope: the oldest of its types, so that going back loses
-- nothing (an older _since only fetches more).
INSERT INTO bulk_exports (connection, scope, transaction_time)
    SELECT connection, scope, MIN(transaction_time) FROM bulk_since GROUP BY connection, scope;

DROP TABLE bulk_since;
