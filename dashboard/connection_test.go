package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/dashboard"
)

// TestConnectionPage: a connection's page shows the types the EHR did not
// grant and, per scope, whether the last bulk export was complete and, if
// not, which types and files and why; the overview flags both.
func TestConnectionPage(t *testing.T) {
	now := time.Now()
	statuses := []dashboard.ConnectionStatus{
		{Name: "site-a", BaseURL: "https://ehr.example/fhir", Vendor: "epic", State: "ok", LastSync: now.Add(-time.Hour),
			NotGranted: []string{"Condition"}, ScopesCheckedAt: now.Add(-time.Minute),
			BulkExports: []dashboard.BulkExportStatus{
				{Scope: "system", At: now.Add(-time.Minute), Complete: false, Incomplete: []dashboard.BulkTypeIssue{
					{Type: "Observation", Reason: "the server could not generate its output", Files: []string{"https://ehr.example/bulk/err-1.ndjson"}},
					{Type: "Condition", Reason: "the server did not grant the access token this type"},
				}},
				{Scope: "group/g1", At: now.Add(-2 * time.Hour), Complete: true},
			},
			Runs: []dashboard.RunStatus{{What: "sync", Since: now.Add(-time.Hour), State: "interrupted"},
				{What: "bulk export system", Since: now.Add(-time.Minute), State: "running"}},
			Subscription: &dashboard.SubscriptionStatus{ID: "sub-7", Healthy: false, LastHeard: now.Add(-time.Minute), Events: 12, Recovered: 3, Refused: 2}},
		{Name: "site-b", State: "ok"},
	}
	d := dashboard.New(fixture(), dashboard.Options{Status: func(context.Context) []dashboard.ConnectionStatus { return statuses }})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/connections/site-a")
	for _, want := range []string{"narrower scopes", "did not grant reading Condition", "incomplete", "Observation",
		"the server could not generate its output", "https://ehr.example/bulk/err-1.ndjson", "group/g1", "complete",
		"The sync started 1 hour ago was interrupted", "A bulk export system is running",
		"sub-7", "unhealthy: polling", "12 events taken, 3 recovered, 2 notifications refused"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("connection page (%d) lacks %q", code, want)
		}
	}
	if code, body := get("/connections/site-b"); code != 200 || !strings.Contains(body, "No bulk export has been recorded") ||
		!strings.Contains(body, "no FHIR Subscription on this connection") ||
		strings.Contains(body, "narrower scopes") || strings.Contains(body, "interrupted") {
		t.Errorf("connection without exports = %d:\n%s", code, body)
	}
	if code, _ := get("/connections/unknown"); code != 404 {
		t.Errorf("unknown connection = %d, want 404", code)
	}
	_, body = get("/")
	for _, want := range []string{`href="/connections/site-a"`, "bulk export incomplete", "scopes not granted: Condition"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if strings.Count(body, "bulk export incomplete") != 1 {
		t.Error("the overview flags a connection whose bulk exports are complete")
	}

	bare := httptest.NewServer(dashboard.New(fixture(), dashboard.Options{}).Handler())
	defer bare.Close()
	resp, err := http.Get(bare.URL + "/connections/site-a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("connection page without a status source = %d, want 404", resp.StatusCode)
	}
}
