package ehrsim

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ehrgate/synth"
)

// TestSynthDataset loads a synthetic dataset and checks that a sync over the
// API (every patient, every type) gets back exactly what was loaded.
func TestSynthDataset(t *testing.T) {
	s := New(Options{PageSize: 20})
	loaded := map[string]int{}
	err := synth.New(synth.Options{Patients: 5, Seed: 1}).Each(func(resourceType string, raw json.RawMessage) error {
		loaded[resourceType]++
		return s.Load(raw)
	})
	if err != nil {
		t.Fatalf("loading synth data: %v", err)
	}
	if diff := cmp.Diff(loaded, s.Counts()); diff != "" {
		t.Fatalf("Counts() after load (-loaded +counts):\n%s", diff)
	}
	ts := newHTTPServer(t, s)
	c := &syncClient{t: t, client: ts.Client()}
	got, seen := map[string]int{}, map[string]bool{}
	patients, err := c.collect(ts.URL+"/fhir/Patient", got, seen)
	if err != nil {
		t.Fatal(err)
	}
	for typ := range s.Counts() {
		if typ == "Patient" {
			continue
		}
		// Types of the search table with a patient parameter are synced per
		// patient; any other type (Medication, Practitioner, ...) whole.
		if _, ok := builtinParams[typ]; !ok || paramsFor(typ).patientParam() == nil {
			if _, err := c.collect(ts.URL+"/fhir/"+typ, got, seen); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, pid := range patients {
			if _, err := c.collect(ts.URL+"/fhir/"+typ+"?patient="+pid, got, seen); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := cmp.Diff(s.Counts(), got); diff != "" {
		t.Errorf("per-patient sync (-counts +synced):\n%s", diff)
	}
	// Every resource reads back.
	for key := range seen {
		resp, body := get(t, ts.Client(), ts.URL+"/fhir/"+key)
		if resp.StatusCode != http.StatusOK || !json.Valid(body) {
			t.Errorf("GET %s: %d", key, resp.StatusCode)
		}
	}
}
