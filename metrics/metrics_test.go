package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"ehrgate/fhir"
)

func TestInstrumentsRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.ObserveRequest(fhir.RequestInfo{Connection: "c", ResourceType: "Observation", Interaction: "search", Status: 200, Duration: time.Second})
	m.ObserveRequest(fhir.RequestInfo{Connection: "c", ResourceType: "Observation", Interaction: "search", Duration: time.Second})
	m.Stored("c", "Observation", "new", 3)
	m.FetchFailed("c", "Procedure")
	m.QuarantinedInput("c", "Observation")
	m.AuthorizationFailed("c", true)
	now := time.Unix(1_700_000_000, 0)
	m.SyncCompleted("c", now, 2*time.Second, map[string]int{"Observation": 3, "Procedure": 0})

	checks := map[string]float64{
		`ehrgate_sync_resources_total{change="new",connection="c",resource_type="Observation"}`:    3,
		`ehrgate_sync_errors_total{connection="c",resource_type="Procedure"}`:                      1,
		`ehrgate_quarantined_total{connection="c",resource_type="Observation"}`:                    1,
		`ehrgate_token_refresh_failures_total{connection="c"}`:                                     1,
		`ehrgate_connection_needs_reauthorization{connection="c"}`:                                 1,
		`ehrgate_sync_last_success_timestamp_seconds{connection="c"}`:                              1_700_000_000,
		`ehrgate_sync_last_returned_resources{connection="c",resource_type="Procedure"}`:           0,
		`ehrgate_sync_last_nonempty_timestamp_seconds{connection="c",resource_type="Observation"}`: 1_700_000_000,
	}
	for series, want := range checks {
		if got := gatherValue(t, reg, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "ehrgate_fhir_request_duration_seconds" && len(mf.GetMetric()) != 2 {
			t.Errorf("request histogram has %d series, want 2 (status 200 and network error)", len(mf.GetMetric()))
		}
	}
	m.Authorized("c")
	if got := gatherValue(t, reg, `ehrgate_connection_needs_reauthorization{connection="c"}`); got != 0 {
		t.Errorf("needs_reauthorization after Authorized = %v, want 0", got)
	}
}

// gatherValue returns the value of one series, written as name{labels}.
func gatherValue(t *testing.T, g prometheus.Gatherer, series string) float64 {
	t.Helper()
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, lp := range m.GetLabel() {
				parts = append(parts, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			if strings.Join(parts, ",") != labels {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("series %s not found", series)
	return 0
}

// TestAlertRulesUseRealMetrics: every metric an alert rule names exists.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	files, err := filepath.Glob("../deploy/prometheus/*.yml")
	if err != nil || len(files) < 2 {
		t.Fatalf("rule files = %v, %v; want alerts.yml and hl7.yml", files, err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var one = doc
		one.Groups = nil
		if err := yaml.Unmarshal(b, &one); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		doc.Groups = append(doc.Groups, one.Groups...)
	}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q: want alert, labels.severity and annotations.summary", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("rule %s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewHL7Feeds(fakeFeeds{}, func() []string { return []string{"c"} }, nil, nil))
	m := New(reg)
	m.ObserveRequest(fhir.RequestInfo{Connection: "c", ResourceType: "T", Interaction: "read", Status: 200})
	m.Stored("c", "T", "new", 1)
	m.FetchFailed("c", "T")
	m.QuarantinedInput("c", "T")
	m.AuthorizationFailed("c", false)
	m.Authorized("c")
	m.SyncCompleted("c", time.Now(), time.Second, map[string]int{"T": 1})
	mfs, _ := reg.Gather()
	known := map[string]bool{}
	for _, mf := range mfs {
		known[mf.GetName()] = true
	}
	name := regexp.MustCompile(`ehrgate_[a-z0-9_]+`)
	rules := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			rules++
			for _, n := range name.FindAllString(r.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
				if !known[base] {
					t.Errorf("alert %s uses %s, which ehrgate does not export", r.Alert, n)
				}
			}
		}
	}
	if rules < 6 {
		t.Errorf("alerts.yml has %d rules, want the error-rate, latency, freshness, token, re-authorization and went-empty alerts", rules)
	}
}
