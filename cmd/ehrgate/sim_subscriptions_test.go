package main

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"ehrgate/fhir/backport"
)

// TestSimSubscriptionsFlag: --subscriptions auto gives the epic simulator
// topic-based Subscriptions and the oracle one classic R4 criteria
// Subscriptions; criteria forces them; a bad value is refused.
func TestSimSubscriptionsFlag(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		vendor, mode      string
		topics, offersSub bool
	}{
		{"epic", "auto", true, true},
		{"oracle", "auto", false, true},
		{"generic", "auto", false, false},
		{"generic", "criteria", false, true},
		{"oracle", "off", false, false},
	} {
		f := simFlags{patients: 1, seed: 1, pageSize: 10, vendor: tt.vendor, noAuth: true, subscriptions: tt.mode}
		sim, err := f.newSim(log)
		if err != nil {
			t.Fatalf("newSim(%s, %s): %v", tt.vendor, tt.mode, err)
		}
		srv := httptest.NewServer(sim.Handler())
		resp, err := srv.Client().Get(srv.URL + "/fhir/metadata")
		if err != nil {
			t.Fatal(err)
		}
		capab, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if got := len(backport.Topics(capab)) > 0; got != tt.topics {
			t.Errorf("%s --subscriptions %s: topics listed = %v, want %v", tt.vendor, tt.mode, got, tt.topics)
		}
		if got := backport.OffersSubscription(capab); got != tt.offersSub {
			t.Errorf("%s --subscriptions %s: Subscription listed = %v, want %v", tt.vendor, tt.mode, got, tt.offersSub)
		}
	}
	f := simFlags{patients: 1, vendor: "epic", noAuth: true, subscriptions: "sometimes"}
	if _, err := f.newSim(log); err == nil {
		t.Error("--subscriptions sometimes was accepted")
	}
}
