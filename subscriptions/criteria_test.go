package subscriptions_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/fhir/backport"
	"ehrgate/refresh"
	"ehrgate/subscriptions"
	"ehrgate/subscriptions/feedeval"
)

// criteriaSubscription reads a criteria subscription from the simulator.
func criteriaSubscription(t *testing.T, r *feedeval.Rig, id string) (string, backport.CriteriaRequest) {
	t.Helper()
	resp, err := r.Client.Read(context.Background(), "Subscription", id)
	if err != nil {
		t.Fatalf("reading Subscription/%s: %v", id, err)
	}
	_, status, req, err := backport.ParseCriteriaSubscription(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return status, req
}

// criteriaOptions are the rig's manager options for criteria mode:
// reconciliation far away, so only notifications and status checks act.
func criteriaOptions(r *feedeval.Rig, payload string) subscriptions.Options {
	o := r.ManagerOptions()
	o.Payload = payload
	o.Reconcile = time.Hour
	return o
}

// TestCriteriaCreatedWithoutHandshake: on a server listing Subscription but
// no topic, the manager creates one active rest-hook subscription per chart
// type, no handshake, the secret in channel.header.
func TestCriteriaCreatedWithoutHandshake(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{Criteria: true})
	o := criteriaOptions(r, backport.PayloadFullResource)
	o.Filter = "Patient?_id=p3"
	m, stop, err := r.StartManager(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := m.Health()
	ids := strings.Split(h.Subscription, ",")
	if h.Mode != subscriptions.ModeCriteria || len(ids) != len(refresh.ChartTypes) {
		t.Fatalf("Health = %+v, want criteria mode with %d subscriptions", h, len(refresh.ChartTypes))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		status, req := criteriaSubscription(t, r, id)
		typ, q, err := backport.ParseCriteria(req.Criteria)
		if err != nil {
			t.Fatal(err)
		}
		seen[typ] = true
		want := "p3"
		got := q.Get("patient")
		if typ == "Patient" {
			got = q.Get("_id")
		}
		if status != backport.StatusActive || got != want || req.Payload != backport.PayloadMIME ||
			!strings.HasPrefix(req.Header, "Authorization: Bearer ") || !strings.HasPrefix(req.Endpoint, r.HubURL+subscriptions.NotifyPath) {
			t.Errorf("Subscription/%s = %q %+v", id, status, req)
		}
	}
	if len(seen) != len(refresh.ChartTypes) {
		t.Errorf("types subscribed = %v, want each chart type once", seen)
	}
	if n := m.Stats().Notifications; n != 0 {
		t.Errorf("notifications = %d before any change, want 0 (no handshake)", n)
	}
}

// TestCriteriaNotificationsApplied: type-wide subscriptions with the
// resource in the notification (PUT to endpoint/{type}/{id}) and empty ones
// (a refresh of the type): every change reaches the store, with duplicate,
// reordered and delayed notifications.
func TestCriteriaNotificationsApplied(t *testing.T) {
	for _, payload := range []string{backport.PayloadFullResource, backport.PayloadEmpty} {
		t.Run(payload, func(t *testing.T) {
			r := newRig(t, feedeval.RigOptions{Criteria: true})
			m, stop, err := r.StartManager(context.Background(), criteriaOptions(r, payload), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			r.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: 0.3, Seed: 3,
				Kinds: []ehrsim.NotifyFault{ehrsim.NotifyDuplicate, ehrsim.NotifyReorder, ehrsim.NotifyDelay}})
			changes(t, r, 40, 21)
			changes(t, r, 1, 22) // releases a reordered notification held last
			converge(t, r, 15*time.Second)
			st := m.Stats()
			if st.Applied == 0 || st.Forged != 0 {
				t.Errorf("Stats = %+v, want changes applied and none refused", st)
			}
			if payload == backport.PayloadEmpty && st.EmptyRefresh == 0 {
				t.Errorf("Stats = %+v, want refreshes for empty notifications", st)
			}
			if payload == backport.PayloadFullResource && st.Events == 0 {
				t.Errorf("Stats = %+v, want resources taken from notifications", st)
			}
		})
	}
}

// TestCriteriaForged: a wrong secret is refused and counted, what it
// carries never reaches the store; a resource of another type than the
// subscription's is refused as malformed.
func TestCriteriaForged(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{Criteria: true})
	m, stop, err := r.StartManager(context.Background(), criteriaOptions(r, backport.PayloadFullResource), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var obsID string
	for _, id := range strings.Split(m.Health().Subscription, ",") {
		if _, req := criteriaSubscription(t, r, id); req.Criteria == "Observation" {
			obsID = id
		}
	}
	_, req := criteriaSubscription(t, r, obsID)
	secret := strings.TrimSpace(strings.TrimPrefix(req.Header, "Authorization:"))
	fake := []byte(`{"resourceType":"Observation","id":"forged","meta":{"versionId":"1"},"status":"final","code":{"text":"forged"},"subject":{"reference":"Patient/p1"}}`)
	cond := []byte(`{"resourceType":"Condition","id":"forged","meta":{"versionId":"1"},"subject":{"reference":"Patient/p1"}}`)
	tests := []struct {
		name, auth, path string
		body             []byte
		want             int
	}{
		{"NoSecret", "", "/Observation/forged", fake, http.StatusUnauthorized},
		{"WrongSecret", "Bearer 0000", "/Observation/forged", fake, http.StatusUnauthorized},
		{"OtherType", secret, "/Condition/forged", cond, http.StatusBadRequest},
		{"PathMismatch", secret, "/Observation/other", fake, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr, _ := http.NewRequest(http.MethodPut, req.Endpoint+tt.path, bytes.NewReader(tt.body))
			if tt.auth != "" {
				hr.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("PUT = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if st := m.Stats(); st.Forged != 2 || st.Malformed != 2 {
		t.Errorf("forged %d, malformed %d; want 2, 2", st.Forged, st.Malformed)
	}
	for _, typ := range []string{"Observation", "Condition"} {
		if _, err := r.Store.Get(context.Background(), feedeval.Connection, typ, "forged"); err == nil {
			t.Errorf("a refused notification's %s is in the store", typ)
		}
	}
	// The simulator's wrong-secret fault: refused and counted; the
	// reconciliation brings the changes in.
	r.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: 0.5, Kinds: []ehrsim.NotifyFault{ehrsim.NotifyWrongSecret}, Seed: 9})
	changes(t, r, 20, 23)
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().Forged <= 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if m.Stats().Forged <= 2 {
		t.Errorf("forged = %d after wrong-secret faults, want more than 2", m.Stats().Forged)
	}
}

// TestCriteriaReconcile: dropped notifications (no event numbers to show
// the gap) are found by the periodic reconciliation.
func TestCriteriaReconcile(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{Criteria: true})
	o := criteriaOptions(r, backport.PayloadFullResource)
	o.Reconcile = 300 * time.Millisecond
	m, stop, err := r.StartManager(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: 1, Kinds: []ehrsim.NotifyFault{ehrsim.NotifyDrop}})
	changes(t, r, 20, 24)
	converge(t, r, 10*time.Second)
	if st := m.Stats(); st.Reconciled == 0 || st.Events != 0 {
		t.Errorf("Stats = %+v, want everything by reconciliation", st)
	}
}

// TestCriteriaInError: the server switches a subscription to error (it
// sends nothing more); at the next status check the manager raises an
// alert, re-creates it, refreshes its type, and deletes the old one.
func TestCriteriaInError(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{Criteria: true})
	m, stop, err := r.StartManager(context.Background(), criteriaOptions(r, backport.PayloadFullResource), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ids := strings.Split(m.Health().Subscription, ",")
	for _, id := range ids {
		r.Sim.SetSubscriptionStatus(id, backport.StatusError)
	}
	changes(t, r, 30, 25)
	converge(t, r, 15*time.Second)
	deadline := time.Now().Add(10 * time.Second) // each is re-created in turn
	for m.Stats().Recreated < int64(len(ids)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := m.Stats()
	if st.Alerts < int64(len(ids)) || st.Recreated < int64(len(ids)) || st.Refreshes == 0 {
		t.Errorf("Stats = %+v, want %d alerts, re-creations and refreshes", st, len(ids))
	}
	for _, id := range ids {
		for _, now := range r.Sim.SubscriptionIDs() {
			if now == id {
				t.Errorf("the subscription in error %s was not deleted", id)
			}
		}
	}
	// The new ones work.
	before := m.Stats().Events
	changes(t, r, 10, 26)
	converge(t, r, 10*time.Second)
	deadline = time.Now().Add(5 * time.Second)
	for m.Stats().Events == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if m.Stats().Events == before {
		t.Error("no notification arrived on the re-created subscriptions")
	}
}

// TestCriteriaRestart: a second manager on the same store takes up the
// criteria subscriptions instead of creating new ones, and catches up.
func TestCriteriaRestart(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{Criteria: true})
	o := criteriaOptions(r, backport.PayloadFullResource)
	m1, stop1, err := r.StartManager(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := m1.Health().Subscription
	stop1()
	changes(t, r, 15, 27) // delivered to nobody: the endpoints are gone
	m2, stop2, err := r.StartManager(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	converge(t, r, 10*time.Second)
	// Those the server put in error meanwhile (their deliveries failed)
	// are re-created; the others are taken up.
	kept := map[string]bool{}
	for _, id := range strings.Split(first, ",") {
		kept[id] = true
	}
	same := 0
	for _, id := range strings.Split(m2.Health().Subscription, ",") {
		if kept[id] {
			same++
		}
	}
	if st := m2.Stats(); same == 0 || int64(len(kept)-same) != st.Recreated {
		t.Errorf("after restart %d of %d subscriptions kept, Stats %+v: want the others re-created", same, len(kept), st)
	}
}

// TestCriteriaUnhealthyPolls: a subscription goes to error and the server
// refuses its first re-creations; the manager polls its type meanwhile
// (changes still arrive) and re-creates it once the server accepts.
func TestCriteriaUnhealthyPolls(t *testing.T) {
	r := newRig(t, feedeval.RigOptions{Criteria: true})
	m, stop, err := r.StartManager(context.Background(), criteriaOptions(r, backport.PayloadFullResource), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var obs string
	for _, id := range strings.Split(m.Health().Subscription, ",") {
		if _, req := criteriaSubscription(t, r, id); req.Criteria == "Observation" {
			obs = id
		}
	}
	r.Sim.InjectWriteFault(ehrsim.WriteFault500, 3)
	r.Sim.SetSubscriptionStatus(obs, backport.StatusError)
	changes(t, r, 30, 28)
	converge(t, r, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for (m.Stats().Recreated == 0 || !m.Health().Healthy) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if st := m.Stats(); st.Recreated != 1 || st.Errors < 3 || st.Alerts < 1 {
		t.Errorf("Stats = %+v, want 3 failed re-creations, alerts, then one re-created", st)
	}
	if !m.Health().Healthy {
		t.Errorf("Health = %+v after the re-creation, want healthy", m.Health())
	}
	changes(t, r, 10, 29)
	converge(t, r, 10*time.Second)
}
