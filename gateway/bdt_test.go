package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"ehrgate/clients"
	"ehrgate/internal/bdtkit"
)

// TestBulkDataTestKitAgainstTheAPI runs the SMART Bulk Data server test kit
// (interop/bdt) against ehrgate's own $export (fhirapi), authorized by
// ehrgate's authorization server with SMART Backend Services: every test
// must pass, but the kit's own defects (bdtkit.Defects).
func TestBulkDataTestKitAgainstTheAPI(t *testing.T) {
	bdtkit.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := newAPIGateway(t, ctx, "system/*.rs")
	private, public := bdtkit.Key(t)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(public)
	}))
	defer jwks.Close()
	if _, err := clients.NewRegistry(a.st).Add(ctx, clients.Client{ID: "bdt", JWKS: public,
		Scopes: []string{"system/*.read", "system/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	rep := bdtkit.Run(t, ctx, map[string]any{
		"baseURL":             a.base,
		"groupExportEndpoint": "Group/clinic/$export",
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
