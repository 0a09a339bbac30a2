package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ehrgate/cdshooks"
	"ehrgate/server"
)

// TestMountCDS: the CDS services are served by the gateway, discovery
// public, the service calls behind the CDS client's JWT.
func TestMountCDS(t *testing.T) {
	ctx := context.Background()
	g, _, _ := newClinicGateway(t, ctx, "http://127.0.0.1:1")
	if _, err := g.MountCDS(cdshooks.Options{}); err == nil {
		t.Fatal("MountCDS without a BaseURL succeeded")
	}
	if _, err := g.MountCDS(cdshooks.Options{BaseURL: "https://ehrgate.example"}); err != nil {
		t.Fatal(err)
	}
	access := map[string]server.Access{}
	for _, r := range g.Routes() {
		access[r.Pattern] = r.Access
	}
	if access["GET /cds-services"] != server.Public || access["POST /cds-services/{id}"] != server.Token {
		t.Errorf("route access = %v", access)
	}
	h := g.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cds-services", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), cdshooks.ServiceOrderSign) {
		t.Errorf("discovery = %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/cds-services/"+cdshooks.ServiceOrderSign, strings.NewReader(`{}`)))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unsigned call = %d, want 401", rec.Code)
	}
}
