package probe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/internal/golden"

	"github.com/google/go-cmp/cmp"

	"ehrgate/ehr"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
	"ehrgate/probe"
	"ehrgate/synth"
)

func newSim(t *testing.T) *ehrsim.Server {
	t.Helper()
	sim := ehrsim.New(ehrsim.Options{})
	err := synth.New(synth.Options{Patients: 4, Seed: 7}).Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) })
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

func client(t *testing.T, sim *ehrsim.Server, vendor string, site *ehr.SiteProfile) *fhir.Client {
	t.Helper()
	h, err := personality.Wrap(vendor, site, sim.Handler())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := fhir.NewClient(srv.URL+"/fhir", ehr.MustLookup(vendor).ClientOptions(fhir.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var fixedClock = func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }

// TestProbeEveryPersonality probes each personality: the vendor is
// detected, the detected adapter's searches succeed, and the matrix matches
// the golden file (printed in ehr/README.md).
func TestProbeEveryPersonality(t *testing.T) {
	sim := newSim(t)
	for _, vendor := range ehr.Vendors() {
		t.Run(vendor, func(t *testing.T) {
			r, err := probe.Run(context.Background(), client(t, sim, vendor, nil), probe.Options{Clock: fixedClock})
			if err != nil {
				t.Fatal(err)
			}
			if r.Vendor != vendor || r.Adapter != vendor || r.Patient != "p00000" {
				t.Errorf("vendor %q adapter %q patient %q; want %s, %s, p00000", r.Vendor, r.Adapter, r.Patient, vendor, vendor)
			}
			for _, c := range r.Checks {
				if (c.Area == "search" || c.Area == "param") && c.Result == string(ehr.ClassInvalid) {
					t.Errorf("%s: %s (HTTP %d) %s", c.ID, c.Result, c.Status, c.Detail)
				}
			}
			var buf bytes.Buffer
			if err := probe.WriteText(&buf, r, probe.TextOptions{}); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(buf.String(), r.BaseURL, "http://127.0.0.1:PORT/fhir")
			golden.Check(t, filepath.Join("testdata", "matrix-"+vendor+".txt"), []byte(got))
		})
	}
}

// TestProbeSiteDifferences compares a vendor with and without a site
// profile that switches off a type and a search parameter: the probe
// reports exactly those.
func TestProbeSiteDifferences(t *testing.T) {
	site, err := ehr.ParseSiteProfile([]byte(`
name: st-example
vendor: epic
disabled_types: {Immunization: "kept in the state registry"}
disabled_params: {Observation: [code]}
`))
	if err != nil {
		t.Fatal(err)
	}
	sim := newSim(t)
	a := ehr.MustLookup("epic")
	before, err := probe.Run(context.Background(), client(t, sim, "epic", nil), probe.Options{Adapter: a})
	if err != nil {
		t.Fatal(err)
	}
	after, err := probe.Run(context.Background(), client(t, sim, "epic", site), probe.Options{Adapter: a})
	if err != nil {
		t.Fatal(err)
	}
	changes := probe.Diff(before, after)
	var sawType, sawParam bool
	for _, c := range changes {
		switch {
		case c.ID == "search Immunization":
			sawType = c.Before == "ok (HTTP 200)" && c.After == "not_supported (HTTP 400)"
		case strings.HasPrefix(c.ID, "param Immunization "):
			// the type's parameters cannot be tried once the type is gone
		case c.ID == "param Observation code":
			sawParam = c.Before == "ok (HTTP 200)" && c.After == "not_supported (HTTP 400)"
		default:
			t.Errorf("unexpected difference %s", c)
		}
	}
	if !sawType || !sawParam {
		t.Errorf("differences %v; want Immunization and Observation code to become not_supported", changes)
	}
	if d := probe.Diff(before, before); len(d) != 0 {
		t.Errorf("Diff(r, r) = %v", d)
	}
}

func TestSaveLoadDiff(t *testing.T) {
	dir := t.TempDir()
	r := &probe.Report{Connection: "../hospital a", BaseURL: "https://x/fhir", Vendor: "epic", Version: "1",
		Checks: []probe.Check{{ID: "search Observation", Result: "ok", Status: 200}, {ID: "paging Patient", Result: "ok", Status: 200}}}
	path, err := probe.Save(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "probes", "_hospital_a.json"); path != want {
		t.Errorf("Save path = %q, want %q", path, want)
	}
	got, err := probe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("Load(Save(r)) (-want +got):\n%s", diff)
	}
	upgraded := &probe.Report{Vendor: "epic", Version: "2", Checks: []probe.Check{
		{ID: "search Observation", Result: "invalid", Status: 400}, {ID: "error bogus-id", Result: "not_found", Status: 404}}}
	want := []probe.Change{
		{ID: "version", Before: "1", After: "2"},
		{ID: "search Observation", Before: "ok (HTTP 200)", After: "invalid (HTTP 400)"},
		{ID: "error bogus-id", After: "not_found (HTTP 404)"},
		{ID: "paging Patient", Before: "ok (HTTP 200)"},
	}
	if diff := cmp.Diff(want, probe.Diff(r, upgraded)); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	if _, err := probe.Save(dir, &probe.Report{}); err == nil {
		t.Error("Save without a connection = nil error")
	}
	if _, err := probe.Load(filepath.Join(dir, "nope.json")); err == nil {
		t.Error("Load(missing) = nil error")
	}
}

// TestReadmeShowsTheMatrices keeps ehr/README.md in step with the golden
// matrices.
func TestReadmeShowsTheMatrices(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "ehr", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, vendor := range ehr.Vendors() {
		m, err := os.ReadFile(filepath.Join("testdata", "matrix-"+vendor+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), string(m)) {
			t.Errorf("ehr/README.md does not show the current %s matrix (copy probe/testdata/matrix-%s.txt)", vendor, vendor)
		}
	}
}
