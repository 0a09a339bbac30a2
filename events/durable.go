package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// Durable events. With BusOptions.Log, an event is written to the store's
// event log before it is announced; its ID is its position in the log, the
// same in every process on the store. Consumers read the log from their
// own position: the event stream (SSEHandler) resumes a client from
// Last-Event-ID out of the log, and webhooks are delivered from the log
// (DeliverFromLog) with a position per hook kept in the store, so a slow
// or absent consumer costs disk (bounded by the log's retention), never an
// event. Delivery is at least once, in log order (so in order per
// patient), with the event's ID stable across retries.

// Log is the durable event log the bus writes to and consumers read from
// (store.EventLog).
type Log interface {
	AppendEvents(ctx context.Context, recorded time.Time, bodies ...[]byte) ([]int64, error)
	EventsSince(ctx context.Context, after int64, limit int) ([]store.StoredEvent, error)
	OldestEvent(ctx context.Context) (int64, error)
	NewestEvent(ctx context.Context) (int64, error)
}

// appendTimeout bounds one durable publish.
const appendTimeout = 10 * time.Second

// decodeStored turns a logged event back into an Event.
func decodeStored(se store.StoredEvent) (Event, error) {
	var e Event
	if err := json.Unmarshal(se.Body, &e); err != nil {
		return Event{}, fmt.Errorf("event %d: %w", se.Seq, err)
	}
	e.ID = uint64(se.Seq)
	return e, nil
}

// cursorState is a consumer's position in the log, with its failures
// since its last delivery.
type cursorState struct {
	Last int64 `json:"last"`
	// Failures counts the delivery rounds in a row that failed (reset by
	// a delivery); LastError (user-safe: a status or "network error") and
	// FailedAt are the last one's.
	Failures  int       `json:"failures,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	FailedAt  time.Time `json:"failedAt,omitzero"`
}

// docCursor is the Documents kind of consumers' positions; docLease of
// the delivery lease.
const (
	docCursor = "event-cursor"
	docLease  = "event-lease"
)

// cursorName names a webhook's position by its URL (hashed: URLs may
// carry tokens).
func cursorName(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "webhook-" + hex.EncodeToString(sum[:12])
}

func loadCursor(ctx context.Context, docs store.Documents, name string) (int64, bool, error) {
	c, known, err := loadCursorState(ctx, docs, name)
	return c.Last, known, err
}

func loadCursorState(ctx context.Context, docs store.Documents, name string) (cursorState, bool, error) {
	var c cursorState
	d, err := docs.GetDocument(ctx, docCursor, name)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if err := json.Unmarshal(d.Body, &c); err != nil {
		return c, false, fmt.Errorf("reading the position of %s: %w", name, err)
	}
	return c, true, nil
}

// saveFailure records a failed delivery round of the consumer at last.
func saveFailure(ctx context.Context, docs store.Documents, name string, last int64, reason string, at time.Time) error {
	return docs.UpdateDocument(ctx, docCursor, name, func(old []byte) ([]byte, error) {
		var c cursorState
		if old != nil {
			if err := json.Unmarshal(old, &c); err != nil {
				return nil, err
			}
		}
		c.Last, c.LastError, c.FailedAt = last, reason, at
		c.Failures++
		return json.Marshal(c)
	})
}

func saveCursor(ctx context.Context, docs store.Documents, name string, last int64) error {
	body, _ := json.Marshal(cursorState{Last: last})
	return docs.UpdateDocument(ctx, docCursor, name, func([]byte) ([]byte, error) { return body, nil })
}

// lease is who delivers webhooks now.
type lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

var errLeaseHeld = errors.New("held by another process")

// AcquireLease takes or renews the named lease for owner until now+ttl;
// false when another owner holds it unexpired. Processes sharing a store
// use it so that one of them runs a task at a time.
func AcquireLease(ctx context.Context, docs store.Documents, name, owner string, ttl time.Duration, now time.Time) (bool, error) {
	err := docs.UpdateDocument(ctx, docLease, name, func(old []byte) ([]byte, error) {
		var l lease
		if old != nil {
			if err := json.Unmarshal(old, &l); err != nil {
				return nil, err
			}
			if l.Owner != owner && now.Before(l.Expires) {
				return nil, errLeaseHeld
			}
		}
		return json.Marshal(lease{Owner: owner, Expires: now.Add(ttl)})
	})
	if errors.Is(err, errLeaseHeld) {
		return false, nil
	}
	return err == nil, err
}

// ReleaseLease gives up the named lease when owner holds it (a process
// that stops), so that another may take it at once rather than after its
// ttl.
func ReleaseLease(ctx context.Context, docs store.Documents, name, owner string) error {
	err := docs.UpdateDocument(ctx, docLease, name, func(old []byte) ([]byte, error) {
		var l lease
		if old == nil {
			return nil, errLeaseHeld
		}
		if err := json.Unmarshal(old, &l); err != nil {
			return nil, err
		}
		if l.Owner != owner {
			return nil, errLeaseHeld
		}
		return json.Marshal(lease{Owner: owner})
	})
	if errors.Is(err, errLeaseHeld) {
		return nil
	}
	return err
}

// DeliverFromLog delivers, to each hook, the events of the log after the
// hook's saved position, in order, and saves the position after each
// delivery. A hook whose delivery fails for good (MaxAttempts) stops there
// until the next call: nothing after it is sent out of order and nothing
// is skipped. A hook seen for the first time starts at the log's end
// (events before it was configured are not sent). Events trimmed before a
// slow hook read them are reported in the error, and the hook goes on
// from the oldest kept. It returns how many deliveries succeeded. Only one
// process at a time should call it (AcquireLease).
func (w *Webhooks) DeliverFromLog(ctx context.Context, log Log, docs store.Documents) (int, error) {
	sent := 0
	var errs []error
	for _, h := range w.o.Hooks {
		name := cursorName(h.URL)
		last, known, err := loadCursor(ctx, docs, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !known {
			newest, err := log.NewestEvent(ctx)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := saveCursor(ctx, docs, name, newest); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if oldest, err := log.OldestEvent(ctx); err == nil && oldest > last+1 {
			errs = append(errs, fmt.Errorf("webhook %s: events %d to %d were trimmed before it took them", w.redact(h.URL), last+1, oldest-1))
			last = oldest - 1
		}
	hook:
		for {
			evs, err := log.EventsSince(ctx, last, 100)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if len(evs) == 0 {
				break
			}
			for _, se := range evs {
				e, err := decodeStored(se)
				if err != nil {
					errs = append(errs, err)
					break hook
				}
				if wants(h.Kinds, e.Kind) {
					body, _ := json.Marshal(e)
					if !w.deliver(ctx, job{h, e, body}) {
						if err := saveFailure(ctx, docs, name, last, w.lastFailure(h.URL), w.o.Clock()); err != nil {
							errs = append(errs, err)
						}
						break hook
					}
					sent++
				}
				last = se.Seq
				if err := saveCursor(ctx, docs, name, last); err != nil {
					errs = append(errs, err)
					break hook
				}
			}
		}
	}
	return sent, errors.Join(errs...)
}

// lastFailure is the user-safe reason of the hook's last failed attempt:
// its HTTP status or "network error" (error texts may hold the URL).
func (w *Webhooks) lastFailure(url string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.log) - 1; i >= 0; i-- {
		if d := w.log[i]; d.URL == url && d.Outcome == "failed" {
			if d.Status != 0 {
				return fmt.Sprintf("HTTP %d", d.Status)
			}
			return "network error"
		}
	}
	return "delivery failed"
}

// ConsumerHealth is an event consumer's position in the log and its
// failures, for the dashboard.
type ConsumerHealth struct {
	Name     string // a webhook's URL without its query
	Position int64  // the last event it took (or skipped: not its kind)
	Head     int64  // the log's newest event
	// OldestUndelivered is when the first event after Position was
	// recorded (zero: up to date).
	OldestUndelivered time.Time
	Failures          int // delivery rounds in a row that failed
	LastError         string
	FailedAt          time.Time
}

// Behind is how many events of the log the consumer has not taken yet.
func (c ConsumerHealth) Behind() int64 { return max(c.Head-c.Position, 0) }

// Health reports each hook's position in the log and failures, from the
// store (so any process on it sees the deliverer's).
func (w *Webhooks) Health(ctx context.Context, log Log, docs store.Documents) ([]ConsumerHealth, error) {
	head, err := log.NewestEvent(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the event log's head: %w", err)
	}
	out := make([]ConsumerHealth, 0, len(w.o.Hooks))
	for _, h := range w.o.Hooks {
		c, known, err := loadCursorState(ctx, docs, cursorName(h.URL))
		if err != nil {
			return nil, err
		}
		if !known {
			c.Last = head // placed at the log's end at its first round
		}
		ch := ConsumerHealth{Name: w.redact(h.URL), Position: c.Last, Head: head, Failures: c.Failures,
			LastError: c.LastError, FailedAt: c.FailedAt}
		if ch.OldestUndelivered, err = OldestAfter(ctx, log, c.Last); err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, nil
}

// OldestAfter is when the first event after position was recorded (zero
// when there is none).
func OldestAfter(ctx context.Context, log interface {
	EventsSince(ctx context.Context, after int64, limit int) ([]store.StoredEvent, error)
}, position int64) (time.Time, error) {
	evs, err := log.EventsSince(ctx, position, 1)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the event log: %w", err)
	}
	if len(evs) == 0 {
		return time.Time{}, nil
	}
	return evs[0].Recorded, nil
}

// redact names a hook for logs and errors without its query string.
func (w *Webhooks) redact(u string) string {
	for i := 0; i < len(u); i++ {
		if u[i] == '?' {
			return u[:i]
		}
	}
	return u
}
