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

// cursorState is a consumer's position in the log.
type cursorState struct {
	Last int64 `json:"last"`
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
	d, err := docs.GetDocument(ctx, docCursor, name)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var c cursorState
	if err := json.Unmarshal(d.Body, &c); err != nil {
		return 0, false, fmt.Errorf("reading the position of %s: %w", name, err)
	}
	return c.Last, true, nil
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

// redact names a hook for logs and errors without its query string.
func (w *Webhooks) redact(u string) string {
	for i := 0; i < len(u); i++ {
		if u[i] == '?' {
			return u[:i]
		}
	}
	return u
}
