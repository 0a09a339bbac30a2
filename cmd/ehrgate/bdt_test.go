package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"ehrgate/ehrsim/smartauth"
	"ehrgate/internal/bdtkit"
)

// TestBulkDataTestKitAgainstTheSimulator runs the SMART Bulk Data server
// test kit (interop/bdt) against `ehrgate sim` with SMART Backend Services
// on: every test must pass, but the kit's own defects (bdtkit.Defects),
// and none may be skipped for lack of a feature.
func TestBulkDataTestKitAgainstTheSimulator(t *testing.T) {
	// Mostly waiting (on River's rescuer, on the Node test kit): runs beside
	// the other long waiter once the sequential tests are done.
	t.Parallel()
	bdtkit.Require(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	private, public := bdtkit.Key(t)
	// The kit's public keys, served where its registered JWKS URL points
	// (the kit then also checks the jku header).
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(public)
	}))
	defer jwks.Close()
	clients := []smartauth.Client{{ID: "bdt", Name: "SMART Bulk Data test kit", JWKSURL: jwks.URL + "/jwks.json",
		TokenEndpointAuth: "private_key_jwt", Scopes: []string{"system/*.read", "system/*.rs"}}}
	f := simFlags{patients: 5, seed: 3, vendor: "generic", bulkFileSize: 5000, accessTTL: time.Hour, pageSize: 50, bulkScopeFilter: true}
	sim, err := f.newSim(log)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := f.start(ctx, sim, "127.0.0.1:0", clients, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.stop()
	// The token endpoint and the system and patient export endpoints are
	// found in the CapabilityStatement (the kit checks they are there).
	rep := bdtkit.Run(t, ctx, map[string]any{
		"baseURL":             ep.base,
		"groupExportEndpoint": "Group/all/$export",
		"fastestResource":     "Patient",
		"authentication": map[string]any{
			"type":               "backend-services",
			"clientId":           "bdt",
			"privateKey":         private,
			"scope":              "system/*.read",
			"tokenSignAlgorithm": "ES384",
			"tokenExpiresIn":     "5m",
			"jwksUrl":            jwks.URL + "/jwks.json",
		},
		"requests": map[string]any{"timeout": 30000},
	})
	bdtkit.Check(t, rep, bdtkit.Defects)
}
