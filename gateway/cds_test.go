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
	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, localRequest("/cds/feedback"))
	if rec.Code != http.StatusNotFound {
		t.Errorf("feedback page before MountCDS = %d, want 404", rec.Code)
	}
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
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, localRequest("/cds/feedback"))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "No feedback recorded yet") {
		t.Errorf("dashboard feedback page = %d, want 200 with no feedback", rec.Code)
	}
	rec = httptest.NewRecorder()
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

// localRequest is a GET of path as a browser on the machine sends it (the
// dashboard answers only its own host names).
func localRequest(path string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+path, nil)
	r.RemoteAddr = "127.0.0.1:5000"
	return r
}
