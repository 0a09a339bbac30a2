package subscriptions_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/fhir/backport"
	"ehrgate/subscriptions"
	"ehrgate/subscriptions/feedeval"
)

// subscription reads the manager's subscription from the simulator.
func subscription(t *testing.T, r *feedeval.Rig, id string) (status string, req backport.SubscriptionRequest) {
	t.Helper()
	resp, err := r.Client.Read(context.Background(), "Subscription", id)
	if err != nil {
		t.Fatalf("reading Subscription/%s: %v", id, err)
	}
	_, status, req, err = backport.ParseSubscription(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return status, req
}

func TestHandshake(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	t.Run("Active", func(t *testing.T) {
		m, stop, err := r.StartManager(context.Background(), r.ManagerOptions(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		status, req := subscription(t, r, m.SubscriptionID())
		if status != backport.StatusActive {
			t.Errorf("status = %q after the handshake, want active", status)
		}
		if req.Topic != ehrsim.TopicChartChange || req.Payload != backport.PayloadFullResource || !strings.HasPrefix(req.Endpoint, r.HubURL+subscriptions.NotifyPath) {
			t.Errorf("subscription = %+v", req)
		}
		if m.Stats().Notifications != 1 {
			t.Errorf("notifications = %d, want the handshake", m.Stats().Notifications)
		}
	})
	t.Run("EndpointRefuses", func(t *testing.T) {
		// A subscription whose endpoint no manager owns: the hub refuses the
		// handshake and the server puts the subscription in error.
		body, _ := backport.SubscriptionRequest{Topic: ehrsim.TopicChartChange, Endpoint: r.HubURL + subscriptions.NotifyPath + "nobody",
			Payload: backport.PayloadIDOnly}.Resource()
		unknown := r.Hub.Unknown()
		resp, err := r.Client.Create(context.Background(), "Subscription", body, "")
		if err != nil {
			t.Fatal(err)
		}
		id, status, _, err := backport.ParseSubscription(resp.Body)
		if err != nil || status != backport.StatusError {
			t.Errorf("Subscription/%s status = %q (%v), want error", id, status, err)
		}
		if r.Hub.Unknown() != unknown+1 {
			t.Errorf("unknown endpoints = %d, want %d", r.Hub.Unknown(), unknown+1)
		}
	})
	t.Run("NoTopics", func(t *testing.T) {
		sim := ehrsim.New(ehrsim.Options{})
		srv := httptestServer(t, sim.Handler())
		o := r.ManagerOptions()
		c := clientFor(t, srv)
		m, err := subscriptions.New(c, r.Store, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != subscriptions.ErrNotSupported {
			t.Errorf("Start on a server without topics = %v, want ErrNotSupported", err)
		}
	})
}

// TestHeartbeatLoss: the last notifications are dropped and heartbeats
// stop; the silence makes the manager ask $status and take the missing
// events by $events.
func TestHeartbeatLoss(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	o := r.ManagerOptions()
	o.GapWait = time.Hour // only the silence may trigger recovery
	m, stop, err := r.StartManager(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	changes(t, r, 20, 3)
	converge(t, r, 10*time.Second)
	r.Sim.StopHeartbeats(true)
	r.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: 1, Kinds: []ehrsim.NotifyFault{ehrsim.NotifyDrop}})
	changes(t, r, 10, 4)
	converge(t, r, 10*time.Second)
	if st := m.Stats(); st.Recovered < 10 {
		t.Errorf("Stats = %+v, want the 10 dropped events recovered by $events", st)
	}
}

// TestGapRecovery: dropped notifications leave gaps in the event numbers,
// closed by $events, or, on a server without it, by a refresh since the
// last good event.
func TestGapRecovery(t *testing.T) {
	for _, noEvents := range []bool{false, true} {
		name := map[bool]string{false: "Events", true: "RefreshWithoutEvents"}[noEvents]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, feedeval.RigOptions{NoEvents: noEvents})
			o := r.ManagerOptions()
			o.HeartbeatWait = time.Hour // only gaps may trigger recovery
			m, stop, err := r.StartManager(context.Background(), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			r.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: 0.3, Kinds: []ehrsim.NotifyFault{ehrsim.NotifyDrop}, Seed: 5})
			changes(t, r, 60, 5)
			changes(t, r, 0, 0)
			// The last drops are only seen as gaps once another event or a
			// heartbeat (which carries the count) arrives.
			converge(t, r, 15*time.Second)
			st := m.Stats()
			if noEvents && st.Refreshes == 0 {
				t.Errorf("Stats = %+v, want refreshes", st)
			}
			if !noEvents && (st.Recovered == 0 || st.Refreshes != 0) {
				t.Errorf("Stats = %+v, want events recovered by $events and no refresh", st)
			}
		})
	}
}

// TestSubscriptionInError: the server switches the subscription to error
// (it stops sending); the manager notices at the next status check,
// creates a new one, catches up the old one and deletes it.
func TestSubscriptionInError(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	m, stop, err := r.StartManager(context.Background(), r.ManagerOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	changes(t, r, 10, 6)
	converge(t, r, 10*time.Second)
	old := m.SubscriptionID()
	r.Sim.SetSubscriptionStatus(old, backport.StatusError)
	changes(t, r, 30, 7)
	converge(t, r, 15*time.Second)
	if m.SubscriptionID() == old || m.Stats().Recreated == 0 {
		t.Errorf("subscription %s (was %s), Stats %+v: want a new one", m.SubscriptionID(), old, m.Stats())
	}
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(r.Sim.SubscriptionIDs(), old) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if slices.Contains(r.Sim.SubscriptionIDs(), old) {
		t.Errorf("the old subscription %s was not deleted", old)
	}
	// The new one works.
	changes(t, r, 10, 8)
	converge(t, r, 10*time.Second)
}

// TestForgedNotifications: a wrong secret, an unknown endpoint and another
// subscription's notification are refused and counted, and what they
// carry never reaches the store.
func TestForgedNotifications(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	m, stop, err := r.StartManager(context.Background(), r.ManagerOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	_, req := subscription(t, r, m.SubscriptionID())
	fake := []byte(`{"resourceType":"Observation","id":"forged","meta":{"versionId":"1"},"status":"final","code":{"text":"forged"},"subject":{"reference":"Patient/p1"}}`)
	note := func(sub string) []byte {
		b, err := backport.Bundle(backport.Status{Subscription: "Subscription/" + sub, Topic: ehrsim.TopicChartChange,
			Status: "active", Type: backport.TypeEvent, EventsSinceStart: 1,
			Events: []backport.Event{{Number: 1, Timestamp: time.Now(), Focus: "Observation/forged"}}},
			r.SimURL, []backport.Entry{{Ref: "Observation/forged", Resource: fake}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	secretHeader := strings.TrimSpace(strings.TrimPrefix(req.Header, "Authorization:"))
	tests := []struct {
		name, url, auth string
		body            []byte
		want            int
	}{
		{"NoSecret", req.Endpoint, "", note(m.SubscriptionID()), http.StatusUnauthorized},
		{"WrongSecret", req.Endpoint, "Bearer 0000", note(m.SubscriptionID()), http.StatusUnauthorized},
		{"UnknownEndpoint", r.HubURL + subscriptions.NotifyPath + "feedface", secretHeader, note(m.SubscriptionID()), http.StatusNotFound},
		{"OtherSubscription", req.Endpoint, secretHeader, note("sub-999"), http.StatusBadRequest},
		{"NotABundle", req.Endpoint, secretHeader, []byte(`{"resourceType":"Patient"}`), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr, _ := http.NewRequest(http.MethodPost, tt.url, bytes.NewReader(tt.body))
			if tt.auth != "" {
				hr.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("POST = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	st := m.Stats()
	if st.Forged != 2 || st.Malformed != 2 || r.Hub.Unknown() != 1 {
		t.Errorf("forged %d, malformed %d, unknown %d; want 2, 2, 1", st.Forged, st.Malformed, r.Hub.Unknown())
	}
	if _, err := r.Store.Get(context.Background(), feedeval.Connection, "Observation", "forged"); err == nil {
		t.Error("a refused notification's resource is in the store")
	}
	// The simulator's wrong-secret fault: refused, counted, recovered.
	r.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: 0.5, Kinds: []ehrsim.NotifyFault{ehrsim.NotifyWrongSecret}, Seed: 9})
	changes(t, r, 20, 9)
	converge(t, r, 15*time.Second)
	if m.Stats().Forged <= 2 {
		t.Errorf("forged = %d after wrong-secret faults, want more than 2", m.Stats().Forged)
	}
}

// TestRestartMidFeed: ehrgate stops while the hospital goes on changing
// charts (its endpoint is gone, deliveries fail, the server gives up on
// the subscription); a new manager on the same store and key resumes the
// subscription from the store, re-creates it and catches up.
func TestRestartMidFeed(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	ctx := context.Background()
	m1, stop1, err := r.StartManager(ctx, r.ManagerOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := r.Sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: 150, Rate: 300, Seed: 10, Base: r.SimURL}); err != nil {
			t.Error(err)
		}
	})
	time.Sleep(150 * time.Millisecond)
	stop1() // ehrgate goes down in the middle of the feed
	first := m1.SubscriptionID()
	time.Sleep(200 * time.Millisecond)
	m2, stop2, err := r.StartManager(ctx, r.ManagerOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	wg.Wait()
	converge(t, r, 20*time.Second)
	if m1.Stats().Events == 0 || m1.Stats().Events >= 150 {
		t.Errorf("the first manager took %d events, want some but not all", m1.Stats().Events)
	}
	st := m2.Stats()
	t.Logf("first subscription %s, now %s; second manager %+v", first, m2.SubscriptionID(), st)
	if st.Recovered == 0 && st.Refreshes == 0 {
		t.Errorf("the restarted manager recovered nothing: %+v", st)
	}
}

// TestUnhealthyPollsUntilRecreated: the subscription goes to error and the
// server refuses the first re-creations; meanwhile the manager polls by
// _lastUpdated, so changes still arrive, and it re-creates the
// subscription once the server accepts.
func TestUnhealthyPollsUntilRecreated(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{})
	m, stop, err := r.StartManager(context.Background(), r.ManagerOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r.Sim.InjectWriteFault(ehrsim.WriteFault500, 3)
	r.Sim.SetSubscriptionStatus(m.SubscriptionID(), backport.StatusError)
	changes(t, r, 30, 11)
	converge(t, r, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for m.Stats().Recreated == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := m.Stats()
	if st.Recreated != 1 || st.Refreshes == 0 || st.Errors < 3 {
		t.Errorf("Stats = %+v, want 3 failed re-creations, polling, then one re-created", st)
	}
	changes(t, r, 10, 12)
	converge(t, r, 10*time.Second)
}
