-- +goose Up
-- The durable event log (store.EventLog): events are written here before
-- they are announced, and every consumer (webhooks, the event stream)
-- reads them from its own position. recorded is Unix nanoseconds.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY,
    recorded INTEGER NOT NULL,
    body     BLOB NOT NULL
);
CREATE INDEX events_recorded ON events (recorded);

-- +goose Down
DROP TABLE events;
