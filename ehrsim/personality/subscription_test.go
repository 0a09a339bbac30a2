package personality_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

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
