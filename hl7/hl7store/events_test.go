package hl7store

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"ehrgate/events"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

// failingEventLog makes every write to the store's event log fail (a
// trigger, from a second connection to the same database) until the
// returned function is called.
func failingEventLog(t *testing.T, dir string) (repair func()) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TRIGGER events_down BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'event log down'); END`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := db.Exec(`DROP TRIGGER events_down`); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEventWrittenWithMessage: with a durable bus, a converted message and
// its event are stored in one transaction. While the event log cannot be
// written, no message is acknowledged or completed and no event is
// announced (before, the message was completed and its event announced in
// this process only, with ID 0, never reaching webhooks or other
// replicas); once it can, the message is completed and its event is in
// the log under the ID subscribers were given.
func TestEventWrittenWithMessage(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		name := map[bool]string{false: "inline", true: "deferred"}[deferred]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := sqlite.OpenDir(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			var mu sync.Mutex
			var got []events.Event
			bus := events.NewBus(events.BusOptions{Log: s})
			bus.Subscribe(events.SubscriberFunc(func(e events.Event) { mu.Lock(); got = append(got, e); mu.Unlock() }))
			h := New(s, Options{Clock: clock, Bus: bus, Deferred: deferred})

			repair := failingEventLog(t, dir)
			m := msg(t, "adt-a01")
			err = h.HandleMessage(ctx, m)
			if deferred {
				if err != nil {
					t.Fatalf("HandleMessage (deferred: logs only) = %v", err)
				}
				if n, err := h.ProcessPending(ctx); err == nil || n != 0 {
					t.Fatalf("ProcessPending with the event log down = %d, %v; want an error and nothing completed", n, err)
				}
			} else if err == nil {
				t.Fatal("HandleMessage with the event log down = nil (the sender would get AA for a message whose event is lost)")
			}
			if c := counts(t, s); c.Processed != 0 {
				t.Fatalf("HL7Counts with the event log down = %+v, want nothing processed", c)
			}
			if len(got) != 0 {
				t.Fatalf("announced with the event log down: %+v", got)
			}

			repair()
			if deferred {
				if n, err := h.ProcessPending(ctx); err != nil || n != 1 {
					t.Fatalf("ProcessPending after repair = %d, %v; want 1", n, err)
				}
			} else if err := h.HandleMessage(ctx, m); err != nil {
				t.Fatalf("resend after repair = %v", err)
			}
			if c := counts(t, s); c.Processed != 1 {
				t.Fatalf("HL7Counts = %+v, want 1 processed", c)
			}
			logged, err := s.EventsSince(ctx, 0, 10)
			if err != nil || len(logged) != 1 {
				t.Fatalf("event log = %d events, %v; want 1", len(logged), err)
			}
			if len(got) != 1 || got[0].ID != uint64(logged[0].Seq) || got[0].Kind != events.Admitted {
				t.Fatalf("announced %+v, want one admission with ID %d (its place in the log)", got, logged[0].Seq)
			}
			if bus.LastID() != uint64(logged[0].Seq) {
				t.Errorf("bus LastID = %d, want %d", bus.LastID(), logged[0].Seq)
			}
		})
	}
}

func counts(t *testing.T, s store.HL7Log) store.HL7Counts {
	t.Helper()
	c, err := s.HL7Counts(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
