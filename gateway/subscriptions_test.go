package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/events"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/subscriptions"
)

// TestSubscriptionsThroughTheGateway: with events.subscriptions set, the
// gateway subscribes on a connection whose EHR lists a topic, takes its
// notifications on its own HTTP listener, stores every change and
// publishes a "changed" event for each to the durable event log; a second
// gateway process on the same store and keyring resumes the subscription.
func TestSubscriptionsThroughTheGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sim, ehr, st, kek := subscribingEHR(t, ctx)
	var addr string

	start := func(ctx context.Context, listen string) *gateway.Gateway {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		cfg := config.Config{Connections: []config.Connection{{Name: "clinic", BaseURL: ehr.URL + "/fhir", Vendor: "generic"}},
			Events: config.Events{Subscriptions: config.Subscriptions{BaseURL: "http://" + ln.Addr().String()}}}
		g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		ev, err := g.StartEvents(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.StartSubscriptions(ctx, ev.Bus); err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		go func() {
			if err := g.Serve(ctx, ln); err != nil && ctx.Err() == nil {
				t.Errorf("Serve: %v", err)
			}
		}()
		for g.SubscriptionManagers()["clinic"] == nil {
			if ctx.Err() != nil {
				t.Fatal("the gateway did not subscribe")
			}
			time.Sleep(20 * time.Millisecond)
		}
		return g
	}
	gctx, stop := context.WithCancel(ctx)
	g := start(gctx, "127.0.0.1:0")
	first := g.SubscriptionManagers()["clinic"].SubscriptionID()
	before, _ := st.NewestEvent(ctx)
	if _, err := sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: 20, Seed: 3, Base: ehr.URL + "/fhir"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return g.SubscriptionManagers()["clinic"].Stats().Events == 20 }, func() string {
		return fmt.Sprintf("%+v %+v", g.SubscriptionManagers()["clinic"].Stats(), sim.NotifyStats())
	})
	after, _ := st.NewestEvent(ctx)
	evs, err := st.EventsSince(ctx, before, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || after <= before {
		t.Fatal("no event was published for the stored changes")
	}
	var e events.Event
	if err := json.Unmarshal(evs[0].Body, &e); err != nil || e.Kind != events.Changed || e.Connection != "clinic" || len(e.Resources) != 1 {
		t.Errorf("event = %+v (%v), want a changed event of clinic naming one resource", e, err)
	}

	var shown bool
	for _, cs := range g.ConnectionStatus(ctx) {
		if cs.Name == "clinic" && cs.Subscription != nil {
			shown = cs.Subscription.ID == first && cs.Subscription.Healthy && cs.Subscription.Events == 20
		}
	}
	if !shown {
		t.Errorf("the connection status does not show the healthy subscription: %+v", g.ConnectionStatus(ctx))
	}

	// A restart on the same address (the one the EHR posts to): the second
	// process takes up the same subscription.
	stop()
	time.Sleep(100 * time.Millisecond)
	g2 := start(ctx, addr)
	if got := g2.SubscriptionManagers()["clinic"].SubscriptionID(); got != first {
		t.Errorf("after a restart the subscription is %s, want %s resumed", got, first)
	}
	if _, err := sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: 5, Seed: 4, Base: ehr.URL + "/fhir"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return g2.SubscriptionManagers()["clinic"].Stats().Events >= 5 }, func() string {
		return fmt.Sprintf("%+v %+v %v", g2.SubscriptionManagers()["clinic"].Stats(), sim.NotifyStats(), sim.SubscriptionIDs())
	})
}

func waitFor(t *testing.T, ctx context.Context, ok func() bool, state func() string) {
	t.Helper()
	for !ok() {
		if ctx.Err() != nil {
			t.Fatalf("timed out: %s", state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSubscriptionReplicas: two serve replicas on one store behind one
// address (taking turns): one holds the connection's subscription lease
// and keeps the subscription, the other follows; both take notifications
// and apply them, and only one subscription exists on the EHR. When the
// leader stops, the follower leads on the same subscription.
func TestSubscriptionReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim, ehr, st, kek := subscribingEHR(t, ctx)
	var backends [2]atomic.Pointer[string]
	var turn atomic.Int64
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 2 { // the next replica that is up
			if addr := backends[turn.Add(1)%2].Load(); addr != nil {
				(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
					pr.SetURL(&url.URL{Scheme: "http", Host: *addr})
				}}).ServeHTTP(w, r)
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer lb.Close()
	start := func(ctx context.Context, i int) *gateway.Gateway {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := config.Config{Connections: []config.Connection{{Name: "clinic", BaseURL: ehr.URL + "/fhir", Vendor: "generic"}},
			Events: config.Events{Subscriptions: config.Subscriptions{BaseURL: lb.URL}}}
		g, err := gateway.New(ctx, gateway.Options{Config: cfg, Store: st, Keyring: secrets.NewKeyring(kek)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		ev, err := g.StartEvents(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.StartSubscriptions(ctx, ev.Bus); err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		backends[i].Store(&addr)
		go func() {
			if err := g.Serve(ctx, ln); err != nil && ctx.Err() == nil {
				t.Errorf("Serve: %v", err)
			}
		}()
		return g
	}
	ctx1, stop1 := context.WithCancel(ctx)
	manager := func(g *gateway.Gateway) *subscriptions.Manager { return g.SubscriptionManagers()["clinic"] }
	g1 := start(ctx1, 0)
	waitFor(t, ctx, func() bool { return manager(g1) != nil }, func() string { return "the first replica did not subscribe" })
	g2 := start(ctx, 1)
	waitFor(t, ctx, func() bool { return manager(g2) != nil && manager(g2).SubscriptionID() != "" }, func() string {
		return "the second replica does not follow"
	})
	leader, follower := manager(g1), manager(g2)
	if !leader.Leading() || follower.Leading() {
		t.Fatalf("leading: first %v, second %v; want the first only", leader.Leading(), follower.Leading())
	}
	if _, err := sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: 30, Seed: 5, Base: ehr.URL + "/fhir"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return leader.Stats().Applied+follower.Stats().Applied >= 30 }, func() string {
		return fmt.Sprintf("leader %+v %+v follower %+v %+v sim %+v %v", leader.Stats(), leader.Health(), follower.Stats(), follower.Health(), sim.NotifyStats(), sim.SubscriptionIDs())
	})
	if follower.Stats().Applied == 0 || leader.Stats().Applied == 0 {
		t.Errorf("leader %+v, follower %+v: want both to apply notifications", leader.Stats(), follower.Stats())
	}
	if ids := sim.SubscriptionIDs(); len(ids) != 1 {
		t.Errorf("subscriptions on the EHR = %v, want one", ids)
	}
	first := leader.SubscriptionID()
	// The leader stops: the follower takes the lease and leads.
	backends[0].Store(nil)
	stop1()
	waitFor(t, ctx, follower.Leading, func() string { return "the follower did not take the lead" })
	if got := follower.SubscriptionID(); got != first {
		t.Errorf("the new leader keeps %s, want %s", got, first)
	}
	before := follower.Stats().Events + follower.Stats().Recovered
	if _, err := sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: 10, Seed: 6, Base: ehr.URL + "/fhir"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return follower.Stats().Events+follower.Stats().Recovered >= before+10 }, func() string {
		return fmt.Sprintf("%+v %+v", follower.Stats(), sim.NotifyStats())
	})
}

// subscribingEHR is a simulated EHR offering topic-based Subscriptions
// with five patients, served over HTTP, and a fresh store and KEK for the
// gateways under test; all closed when the test ends.
func subscribingEHR(t *testing.T, ctx context.Context) (*ehrsim.Server, *httptest.Server, store.Backend, secrets.KEK) {
	t.Helper()
	sim := ehrsim.New(ehrsim.Options{Subscriptions: ehrsim.SubscriptionOptions{Enabled: true}})
	for i := 1; i <= 5; i++ {
		if err := sim.Load(json.RawMessage(fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","name":[{"family":"Sub"}]}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	ehr := httptest.NewServer(sim.Handler())
	t.Cleanup(ehr.Close)
	t.Cleanup(sim.CloseSubscriptions)
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	return sim, ehr, st, kek
}
