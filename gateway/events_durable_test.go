package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/events"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
)

// TestWebhooksFromTwoReplicasDeliverEachEventOnce: two gateways on one
// store publish events; the webhook consumer gets every event exactly
// once, in order, from whichever replica holds the delivery lease.
func TestWebhooksFromTwoReplicasDeliverEachEventOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[uint64]int{}
	var order []uint64
	consumer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e events.Event
		json.Unmarshal(body, &e)
		mu.Lock()
		seen[e.ID]++
		order = append(order, e.ID)
		mu.Unlock()
	}))
	defer consumer.Close()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	cfg := config.Config{Events: config.Events{Webhooks: []config.Webhook{{URL: consumer.URL, SecretEnv: "HOOK_SECRET"}}}}
	var buses []*events.Bus
	for i := 0; i < 2; i++ {
		g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek),
			Getenv: func(string) string { return "secret" }})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		ev, err := g.StartEvents(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		buses = append(buses, ev.Bus)
	}
	time.Sleep(700 * time.Millisecond) // the hook's position is placed at the log's end
	for i := 0; i < 10; i++ {
		buses[i%2].Publish(events.Event{Kind: events.Admitted, Connection: "hl7"})
	}
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 10 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the consumer got %d of 10 events", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // any duplicate would arrive by now
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %d delivered %d times", id, n)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Errorf("delivered out of order: %v", order)
			break
		}
	}
}
