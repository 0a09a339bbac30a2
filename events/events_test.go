package events

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/fhir"
)

func TestBusRing(t *testing.T) {
	b := NewBus(BusOptions{RingSize: 3})
	for i := 0; i < 5; i++ {
		b.Publish(Event{Kind: Admitted})
	}
	tests := []struct {
		after    uint64
		ids      []uint64
		complete bool
	}{
		{0, []uint64{3, 4, 5}, false},
		{1, []uint64{3, 4, 5}, false},
		{2, []uint64{3, 4, 5}, true},
		{4, []uint64{5}, true},
		{5, nil, true},
	}
	for _, tt := range tests {
		evs, complete := b.Since(tt.after)
		var ids []uint64
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		if complete != tt.complete || len(ids) != len(tt.ids) {
			t.Errorf("Since(%d) = %v, %v; want %v, %v", tt.after, ids, complete, tt.ids, tt.complete)
			continue
		}
		for i := range ids {
			if ids[i] != tt.ids[i] {
				t.Errorf("Since(%d) = %v, want %v", tt.after, ids, tt.ids)
			}
		}
	}
}

type fakeRefresher struct {
	mu    sync.Mutex
	calls map[string]int
	gate  chan struct{}
}

func (f *fakeRefresher) RefreshPatient(ctx context.Context, conn string, id fhir.Identifier) error {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[conn+"|"+id.System+"|"+id.Value]++
	return nil
}

func TestRefreshQueueCoalescesBursts(t *testing.T) {
	f := &fakeRefresher{calls: map[string]int{}, gate: make(chan struct{})}
	q := NewRefreshQueue(f, RefreshOptions{Connections: []string{"epic"}, Workers: 1, QueueSize: 4})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	a := Event{Kind: Updated, Patient: fhir.Identifier{System: "urn:oid:1", Value: "A"}}
	for i := 0; i < 50; i++ { // a burst for one patient: one refresh queued
		q.Notify(a)
	}
	for i := 0; i < 10; i++ { // more distinct patients than the queue holds: dropped, never blocking
		q.Notify(Event{Kind: Updated, Patient: fhir.Identifier{System: "urn:oid:1", Value: string(rune('B' + i))}})
	}
	close(f.gate)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := q.Stats()
		if st.Done == st.Queued || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	st := q.Stats()
	if f.calls["epic|urn:oid:1|A"] < 1 || f.calls["epic|urn:oid:1|A"] > 2 {
		t.Errorf("refreshes of A = %d, want 1 (or 2 if one burst event arrived while running)", f.calls["epic|urn:oid:1|A"])
	}
	if st.Dropped == 0 || st.Coalesced < 48 {
		t.Errorf("stats = %+v, want drops and coalesced bursts", st)
	}
}

func TestWebhookSignatureRetriesAndLog(t *testing.T) {
	secret := []byte("s3cret")
	var attempts atomic.Int32
	var bad atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify(secret, r.Header.Get(HeaderTimestamp), body, r.Header.Get(HeaderSignature)) {
			bad.Add(1)
		}
		if r.Header.Get(HeaderEvent) != "admitted" || !strings.Contains(string(body), `"kind":"admitted"`) {
			bad.Add(1)
		}
		if attempts.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	reject := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer reject.Close()
	var slept []time.Duration
	var mu sync.Mutex
	w := NewWebhooks(WebhookOptions{
		Hooks:          []Webhook{{URL: srv.URL, Secret: secret}, {URL: reject.URL, Kinds: []Kind{Admitted}}, {URL: reject.URL, Kinds: []Kind{Merged}}},
		InitialBackoff: 100 * time.Millisecond, MaxBackoff: 150 * time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			slept = append(slept, d)
			mu.Unlock()
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	w.Notify(Event{ID: 7, Kind: Admitted})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		final := 0
		for _, d := range w.Log() {
			if d.Outcome == "delivered" || d.Outcome == "failed" {
				final++
			}
		}
		if final == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if bad.Load() != 0 {
		t.Errorf("%d requests with a bad signature or body", bad.Load())
	}
	var outcomes []string
	for _, d := range w.Log() {
		outcomes = append(outcomes, d.URL[len(d.URL)-5:]+":"+d.Outcome)
	}
	log := strings.Join(outcomes, ",")
	if strings.Count(log, "retrying") != 2 || strings.Count(log, "delivered") != 1 || strings.Count(log, "failed") != 1 {
		t.Errorf("delivery log = %s; want 2 retries then delivered, and one failed (400 not retried)", log)
	}
	for _, d := range slept {
		if d < 0 || d > 150*time.Millisecond {
			t.Errorf("backoff %v outside [0, MaxBackoff]", d)
		}
	}
}

func TestWebhookNeverBlocks(t *testing.T) {
	w := NewWebhooks(WebhookOptions{Hooks: []Webhook{{URL: "http://127.0.0.1:1"}}, QueueSize: 2})
	start := time.Now()
	for i := 0; i < 100; i++ { // Run not started: the queue fills, the rest is dropped
		w.Notify(Event{ID: uint64(i), Kind: Updated})
	}
	if time.Since(start) > time.Second {
		t.Fatal("Notify blocked")
	}
	dropped := 0
	for _, d := range w.Log() {
		if d.Outcome == "dropped" {
			dropped++
		}
	}
	if dropped != 98 {
		t.Errorf("dropped = %d, want 98", dropped)
	}
}

func readEvents(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var ids []string
	for len(ids) < n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v (got %v)", err, ids)
		}
		if strings.HasPrefix(line, "id: ") {
			ids = append(ids, strings.TrimSpace(line[4:]))
		}
		if strings.HasPrefix(line, "event: reset") {
			ids = append(ids, "reset")
		}
	}
	return ids
}

func TestSSEResumeAndHeartbeat(t *testing.T) {
	b := NewBus(BusOptions{RingSize: 4})
	srv := httptest.NewServer(SSEHandler(b, SSEOptions{Heartbeat: 20 * time.Millisecond}))
	defer srv.Close()
	for i := 0; i < 3; i++ {
		b.Publish(Event{Kind: Admitted, Patient: fhir.Identifier{Value: "x"}})
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if got := strings.Join(readEvents(t, r, 2), ","); got != "2,3" {
		t.Errorf("replay = %s, want 2,3", got)
	}
	b.Publish(Event{Kind: Discharged})
	if got := strings.Join(readEvents(t, r, 1), ","); got != "4" {
		t.Errorf("live = %s, want 4", got)
	}
	// Heartbeat comment while idle.
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, ": heartbeat") {
			break
		}
	}
	// A client too far behind is told to reset.
	for i := 0; i < 6; i++ {
		b.Publish(Event{Kind: Updated})
	}
	req2, _ := http.NewRequest("GET", srv.URL, nil)
	req2.Header.Set("Last-Event-ID", "1")
	resp2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if got := readEvents(t, bufio.NewReader(resp2.Body), 2); got[0] != "reset" || got[1] != "7" {
		t.Errorf("stale resume = %v, want reset then 7", got)
	}
	bad, _ := http.Get(srv.URL + "?lastEventId=x")
	if bad.StatusCode != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: status %d", bad.StatusCode)
	}
	bad.Body.Close()
}
