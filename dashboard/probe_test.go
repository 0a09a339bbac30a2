package dashboard_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/dashboard"
	"ehrgate/probe"
)

func TestProbePage(t *testing.T) {
	rep := &probe.Report{Connection: "site-a", BaseURL: "https://ehr.example/fhir", At: time.Now().Add(-time.Hour),
		Vendor: "epic", Version: "November 2025", Adapter: "epic", Checks: []probe.Check{
			{ID: "search Observation", Area: "search", Type: "Observation", Result: "ok", Status: 200, Count: 12},
			{ID: "param Observation code", Area: "param", Type: "Observation", Param: "code", Result: "not_supported", Status: 400,
				Detail: "The server refused the parameter."},
		}}
	d := dashboard.New(fixture(), dashboard.Options{Probe: func(_ context.Context, conn string) (*probe.Report, error) {
		switch conn {
		case "site-a":
			return rep, nil
		case "broken":
			return nil, errors.New("disk on fire")
		}
		return nil, nil
	}, Status: func(context.Context) []dashboard.ConnectionStatus {
		return []dashboard.ConnectionStatus{{Name: "site-a"}}
	}})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/connections/site-a/probe")
	for _, want := range []string{"epic", "November 2025", "1 checks need attention", "not_supported", "The server refused the parameter."} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("probe page (%d) lacks %q", code, want)
		}
	}
	if code, body := get("/connections/never/probe"); code != 200 || !strings.Contains(body, "Not yet probed") {
		t.Errorf("unprobed connection page = %d, want a 'Not yet probed' state", code)
	}
	if code, body := get("/connections/broken/probe"); code != 500 || strings.Contains(body, "disk on fire") {
		t.Errorf("failing probe page = %d; want 500 without the internal error", code)
	}
	if _, body := get("/"); !strings.Contains(body, `href="/connections/site-a/probe"`) {
		t.Error("overview does not link the connection's compatibility matrix")
	}
}

func TestProbePageHiddenWithoutSource(t *testing.T) {
	srv := httptest.NewServer(dashboard.New(fixture(), dashboard.Options{}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/connections/site-a/probe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("probe page without a probe source = %d, want 404", resp.StatusCode)
	}
}
