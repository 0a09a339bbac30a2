package store

import (
	"context"
	"time"
)

// StoredEvent is one event of the durable event log: an event's JSON (made
// by package events; the store treats it as opaque) and its place.
type StoredEvent struct {
	// Seq is the event's position in the log: 1, 2, 3, ... in the order
	// the appends committed.
	Seq      int64
	Recorded time.Time
	Body     []byte
}

// EventLog is the durable log of the events ehrgate announces to apps
// (admissions, results): written before an event is announced, read by
// every consumer from its own position, so a slow or absent consumer costs
// disk, never an event.
//
// Contract: AppendEvents assigns each body the next sequence number under
// the log's lock, in one transaction, so that positions are handed out in
// commit order across processes: a reader that has seen seq N never later
// finds a new event below N. EventsSince returns the events with Seq >
// after, oldest first, at most limit (<= 0: 1000). TrimEvents removes the
// events recorded before the instant and reports how many; OldestEvent
// returns the smallest Seq kept and NewestEvent the largest (0 when the
// log is empty), so that a reader can tell it missed trimmed events and a
// new reader can start at the end.
type EventLog interface {
	AppendEvents(ctx context.Context, recorded time.Time, bodies ...[]byte) ([]int64, error)
	EventsSince(ctx context.Context, after int64, limit int) ([]StoredEvent, error)
	TrimEvents(ctx context.Context, before time.Time) (int, error)
	OldestEvent(ctx context.Context) (int64, error)
	NewestEvent(ctx context.Context) (int64, error)
}
