package events_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/events"
	"ehrgate/store/sqlite"
)

func openLog(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDurableBusNumbersEventsAcrossProcesses: two buses on one store (two
// replicas) number events by their place in the log.
func TestDurableBusNumbersEventsAcrossProcesses(t *testing.T) {
	st := openLog(t)
	a := events.NewBus(events.BusOptions{Log: st})
	b := events.NewBus(events.BusOptions{Log: st})
	var ids []uint64
	for i, bus := range []*events.Bus{a, b, a} {
		e := bus.Publish(events.Event{Kind: events.Admitted, Connection: "hl7", Source: string(rune('a' + i))})
		ids = append(ids, e.ID)
	}
	if ids[0] != 1 || ids[1] != 2 || ids[2] != 3 {
		t.Errorf("IDs = %v, want 1 2 3 across both buses", ids)
	}
}

// TestStreamResumesFromTheLog: a client of one replica's stream gets what
// another replica published, and after a disconnect resumes from
// Last-Event-ID with nothing lost.
func TestStreamResumesFromTheLog(t *testing.T) {
	st := openLog(t)
	a := events.NewBus(events.BusOptions{Log: st})
	b := events.NewBus(events.BusOptions{Log: st})
	a.Publish(events.Event{Kind: events.Registered, Connection: "hl7"}) // before the client: not sent
	srv := httptest.NewServer(events.SSEHandler(a, events.SSEOptions{Heartbeat: time.Hour}))
	defer srv.Close()
	read := func(lastID string, want int) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ids []string
		sc := bufio.NewScanner(resp.Body)
		for len(ids) < want && sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				ids = append(ids, id)
			}
		}
		return ids
	}
	done := make(chan []string)
	go func() { done <- read("", 2) }()
	time.Sleep(300 * time.Millisecond) // the client is connected
	b.Publish(events.Event{Kind: events.Admitted, Connection: "hl7"})
	b.Publish(events.Event{Kind: events.Discharged, Connection: "hl7"})
	if got := strings.Join(<-done, ","); got != "2,3" {
		t.Errorf("live stream gave ids %s, want 2,3 (published by the other replica)", got)
	}
	b.Publish(events.Event{Kind: events.ResultFinal, Connection: "hl7"})
	if got := strings.Join(read("2", 2), ","); got != "3,4" {
		t.Errorf("resumed from 2: ids %s, want 3,4", got)
	}
}

// TestWebhooksFromTheLog: a consumer that is down gets every event once
// it is back, in order, none skipped; a hook starts at the log's end.
func TestWebhooksFromTheLog(t *testing.T) {
	st := openLog(t)
	bus := events.NewBus(events.BusOptions{Log: st})
	var mu sync.Mutex
	var got []uint64
	var down atomic.Bool
	down.Store(true)
	consumer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var e events.Event
		json.Unmarshal(body, &e)
		mu.Lock()
		got = append(got, e.ID)
		mu.Unlock()
	}))
	defer consumer.Close()
	w := events.NewWebhooks(events.WebhookOptions{Hooks: []events.Webhook{{URL: consumer.URL + "/hook?token=x"}},
		MaxAttempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	ctx := context.Background()
	bus.Publish(events.Event{Kind: events.Admitted}) // before the hook existed
	if n, err := w.DeliverFromLog(ctx, st, st); n != 0 || err != nil {
		t.Fatalf("first pass = %d, %v; want the hook placed at the log's end", n, err)
	}
	for i := 0; i < 5; i++ {
		bus.Publish(events.Event{Kind: events.ResultFinal})
	}
	if n, _ := w.DeliverFromLog(ctx, st, st); n != 0 {
		t.Fatalf("with the consumer down %d were delivered", n)
	}
	w.DeliverFromLog(ctx, st, st) // a second failed round
	hs, err := w.Health(ctx, st, st)
	if err != nil || len(hs) != 1 {
		t.Fatalf("Health = %v, %v", hs, err)
	}
	if h := hs[0]; h.Behind() != 5 || h.Failures != 2 || h.LastError != "HTTP 503" || h.FailedAt.IsZero() ||
		h.OldestUndelivered.IsZero() || strings.Contains(h.Name, "token") {
		t.Errorf("Health while down = %+v (behind %d), want 5 behind, 2 failures, HTTP 503, the URL without its query", h, h.Behind())
	}
	down.Store(false)
	if n, err := w.DeliverFromLog(ctx, st, st); n != 5 || err != nil {
		t.Fatalf("after the consumer came back: %d delivered, %v; want 5", n, err)
	}
	if n, _ := w.DeliverFromLog(ctx, st, st); n != 0 {
		t.Errorf("a pass with nothing new delivered %d", n)
	}
	if hs, err := w.Health(ctx, st, st); err != nil || hs[0].Behind() != 0 || hs[0].Failures != 0 || !hs[0].OldestUndelivered.IsZero() {
		t.Errorf("Health after delivery = %+v, %v; want up to date, failures reset", hs, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []uint64{2, 3, 4, 5, 6}
	if len(got) != len(want) {
		t.Fatalf("consumer got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("consumer got %v, want %v in order", got, want)
		}
	}
}

func TestLease(t *testing.T) {
	st := openLog(t)
	ctx := context.Background()
	now := time.Now()
	if ok, err := events.AcquireLease(ctx, st, "webhooks", "a", time.Minute, now); !ok || err != nil {
		t.Fatalf("a takes the free lease: %v %v", ok, err)
	}
	if ok, _ := events.AcquireLease(ctx, st, "webhooks", "b", time.Minute, now.Add(time.Second)); ok {
		t.Error("b took a lease a holds")
	}
	if ok, _ := events.AcquireLease(ctx, st, "webhooks", "a", time.Minute, now.Add(time.Second)); !ok {
		t.Error("a could not renew its lease")
	}
	if ok, _ := events.AcquireLease(ctx, st, "webhooks", "b", time.Minute, now.Add(2*time.Minute)); !ok {
		t.Error("b could not take an expired lease")
	} // b holds it now: a's release does nothing; b's frees it at once.
	later := now.Add(2*time.Minute + time.Second)
	if err := events.ReleaseLease(ctx, st, "webhooks", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := events.AcquireLease(ctx, st, "webhooks", "a", time.Minute, later); ok {
		t.Error("a's release freed b's lease")
	}
	if err := events.ReleaseLease(ctx, st, "webhooks", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := events.AcquireLease(ctx, st, "webhooks", "a", time.Minute, later); !ok {
		t.Error("a could not take a released lease")
	}
	if err := events.ReleaseLease(ctx, st, "never-taken", "a"); err != nil {
		t.Errorf("releasing a lease nobody took = %v", err)
	}
}
