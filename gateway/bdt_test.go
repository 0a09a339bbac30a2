package gateway_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"maps"
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
	// The kit's keys are registered by JWKS URL, which ehrgate requires to
	// be https: a TLS test server, whose certificate the authorization
	// server's HTTP client (the default transport) trusts for this test.
	jwks := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(public)
	}))
	defer jwks.Close()
	trustForTest(t, jwks)
	if _, err := clients.NewRegistry(a.st).Add(ctx, clients.Client{ID: "bdt", JWKSURL: jwks.URL + "/jwks.json",
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
	known := maps.Clone(bdtkit.Defects)
	known["4.0"] = bdtkit.Known{Status: "failed", Because: "Expected 200 to equal specified value: 202",
		Reason: "ehrgate's export files stream from the store when downloaded, so the manifest is complete at kick-off " +
			"and the first status request answers 200 (the IG's complete status); the kit expects one 202 first"}
	bdtkit.Check(t, rep, known)
}

// trustForTest makes http.DefaultTransport trust ts's certificate until the
// test ends (no test of this package runs in parallel).
func trustForTest(t *testing.T, ts *httptest.Server) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport)
	old := tr.TLSClientConfig
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.CloseIdleConnections()
	t.Cleanup(func() { tr.TLSClientConfig = old; tr.CloseIdleConnections() })
}
