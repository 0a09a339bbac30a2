package personality_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/fhir"
	"ehrgate/fhir/backport"
)

// TestEpicSubscriptions: behind the epic personality, the core's
// topic-based Subscriptions are listed in the CapabilityStatement and can
// be created and queried.
func TestEpicSubscriptions(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{Subscriptions: ehrsim.SubscriptionOptions{Enabled: true}})
	defer sim.CloseSubscriptions()
	base := serveVendor(t, sim, "epic", nil)
	endpoint := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer endpoint.Close()
	c, err := fhir.NewClient(base, fhir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	capab, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics := backport.Topics(capab); len(topics) != 1 || topics[0] != ehrsim.TopicChartChange {
		t.Fatalf("topics = %v, want the chart-change topic", topics)
	}
	body, _ := backport.SubscriptionRequest{Topic: ehrsim.TopicChartChange, Endpoint: endpoint.URL, Payload: backport.PayloadIDOnly}.Resource()
	resp, err := c.Create(ctx, "Subscription", body, "")
	if err != nil {
		t.Fatalf("create through the epic personality: %v", err)
	}
	id, status, _, err := backport.ParseSubscription(resp.Body)
	if err != nil || status != backport.StatusActive {
		t.Fatalf("created %s: %q, %v", id, status, err)
	}
	if _, err := c.Search(ctx, "Subscription/"+id+"/$status", nil); err != nil {
		t.Errorf("$status through the epic personality: %v", err)
	}
}

// TestOracleCriteriaSubscriptions: behind the oracle personality, the
// core's classic R4 criteria Subscriptions (SubscriptionOptions.Criteria)
// are listed without topics, created active without a handshake, and a
// change of a matching resource is PUT to endpoint/{type}/{id} with the
// channel header.
func TestOracleCriteriaSubscriptions(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{Subscriptions: ehrsim.SubscriptionOptions{Enabled: true, Criteria: true}})
	defer sim.CloseSubscriptions()
	if err := sim.Load(json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"Crit"}]}`)); err != nil {
		t.Fatal(err)
	}
	base := serveVendor(t, sim, "oracle", nil)
	got := make(chan string, 100)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization")
	}))
	defer endpoint.Close()
	c, err := fhir.NewClient(base, fhir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	capab, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics := backport.Topics(capab); len(topics) != 0 || !backport.OffersSubscription(capab) {
		t.Fatalf("topics = %v, Subscription offered = %v; want no topics, Subscription offered", topics, backport.OffersSubscription(capab))
	}
	body, _ := backport.CriteriaRequest{Criteria: "Observation?patient=p1", Endpoint: endpoint.URL + "/hook",
		Header: "Authorization: Bearer s3cret", Payload: backport.PayloadMIME}.Resource()
	resp, err := c.Create(ctx, "Subscription", body, "")
	if err != nil {
		t.Fatalf("create through the oracle personality: %v", err)
	}
	id, status, _, err := backport.ParseCriteriaSubscription(resp.Body)
	if err != nil || status != backport.StatusActive {
		t.Fatalf("created %s: %q, %v", id, status, err)
	}
	if len(got) != 0 {
		t.Errorf("the endpoint heard %q at creation, want no handshake", <-got)
	}
	if _, err := sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: 20, Seed: 1, Base: base}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if !strings.HasPrefix(n, "PUT /hook/Observation/") || !strings.HasSuffix(n, " Bearer s3cret") {
			t.Errorf("notification = %q, want PUT /hook/Observation/{id} with the channel header", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after 20 changes")
	}
}
