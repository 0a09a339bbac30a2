-- +goose Up
-- The durable event log (store.EventLog): events are written here before
-- they are announced, and every consumer (webhooks, the event stream)
-- reads them from its own position. Appends take the advisory lock
-- 'events', so positions are handed out in commit order.
CREATE TABLE events (
    seq      BIGINT PRIMARY KEY,
    recorded TIMESTAMPTZ NOT NULL,
    body     BYTEA NOT NULL
);
CREATE INDEX events_recorded ON events (recorded);

-- +goose Down
DROP TABLE events;
