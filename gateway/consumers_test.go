package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/events"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
)

// TestEventConsumersPage renders the event consumers page over a real
// store: a webhook that refuses every event shows its lag, its failures,
// its last error and next retry (its URL without the query, which may hold
// a token); the connection's inbound Subscription shows its mode (criteria
// on an EHR without topics).
func TestEventConsumersPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consumer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest) // not retryable: each round fails at once
	}))
	defer consumer.Close()
	sim := ehrsim.New(ehrsim.Options{Subscriptions: ehrsim.SubscriptionOptions{Enabled: true, Criteria: true}})
	if err := sim.Load(json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"Sub"}]}`)); err != nil {
		t.Fatal(err)
	}
	ehr := httptest.NewServer(sim.Handler())
	defer ehr.Close()
	defer sim.CloseSubscriptions()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := secrets.GenerateKEK()
	cfg := config.Config{Connections: []config.Connection{{Name: "clinic", BaseURL: ehr.URL + "/fhir", Vendor: "generic"}},
		Events: config.Events{Webhooks: []config.Webhook{{URL: consumer.URL + "/hook?token=hook-secret-token", SecretEnv: "HOOK_SECRET"}},
			Subscriptions: config.Subscriptions{BaseURL: "http://" + ln.Addr().String()}}}
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
	if err := g.StartSubscriptions(ctx, ev.Bus); err != nil {
		t.Fatal(err)
	}
	go g.Serve(ctx, ln)
	waitFor(t, ctx, func() bool { return g.SubscriptionManagers()["clinic"] != nil }, func() string { return "not subscribed" })
	time.Sleep(700 * time.Millisecond) // the hook's position is placed at the log's end
	for range 3 {
		ev.Bus.Publish(events.Event{Kind: events.Admitted, Connection: "hl7"})
	}
	waitFor(t, ctx, func() bool {
		c, err := g.EventConsumers(ctx)
		return err == nil && len(c.Outgoing) == 1 && c.Outgoing[0].Failures >= 1
	}, func() string { c, err := g.EventConsumers(ctx); return fmt.Sprintf("%+v %v", c, err) })

	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/events/consumers")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events/consumers = %d", resp.StatusCode)
	}
	for _, want := range []string{
		consumer.URL + "/hook",           // the webhook, by its URL
		`<td class="behind">3</td>`,      // three events it has not taken
		"HTTP 400",                       // its last error
		"criteria Subscriptions (R4)",    // the inbound mode
		`<a href="/connections/clinic">`, // per connection
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "hook-secret-token") {
		t.Error("the page shows the webhook URL's query (a token)")
	}
	c, _ := g.EventConsumers(ctx)
	if o := c.Outgoing[0]; o.OldestUndelivered.IsZero() || o.NextRetry.IsZero() || c.Head < 3 {
		t.Errorf("consumer = %+v, head %d: want the oldest undelivered event's time and a next retry", o, c.Head)
	}
}
