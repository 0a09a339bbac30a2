package ehrsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"ehrgate/fhir"
)

// strictObservation is how a strict typed consumer decodes clinical
// resources: a wrong JSON type in subject fails the decode.
type strictObservation struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	Meta         *fhir.Meta `json:"meta"`
	Subject      *struct{ Reference string }
	Patient      *struct{ Reference string }
	Code         *fhir.CodeableConcept
	Text         *fhir.Narrative
}

type strictPatient struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id"`
	Meta         *fhir.Meta       `json:"meta"`
	BirthDate    string           `json:"birthDate"`
	Name         []fhir.HumanName `json:"name"`
}

func TestMalformedResources(t *testing.T) {
	bad := map[string]bool{
		"Observation/o1": true, "AllergyIntolerance/a1": true, "Medication/m1": true,
		"Patient/p1": true, "Patient/p3": true, "CarePlan/cp1": true,
	}
	s, ts := startSmall(t, Options{Malformed: func(typ, id string) bool { return bad[typ+"/"+id] }})
	noBirthDate := []byte(`{"resourceType":"Patient","id":"p3","name":[{"family":"Smithers"}]}`)
	if err := s.Load(noBirthDate); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key       string
		wantField string // the field replaced with a wrong JSON type, "" for an intact resource
		patient   bool
	}{
		{"Observation/o1", "subject", false},
		{"Observation/o2", "", false},
		{"AllergyIntolerance/a1", "patient", false},
		{"Medication/m1", "code", false},
		{"CarePlan/cp1", "subject", false},
		{"Patient/p1", "birthDate", true},
		{"Patient/p2", "", true},
		{"Patient/p3", "name", true},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			resp, body := get(t, ts.Client(), ts.URL+"/fhir/"+tt.key)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tt.key, resp.StatusCode, body)
			}
			checkMalformed(t, tt.key, body, tt.wantField, tt.patient)
			// Served the same way every time, in reads and searches.
			_, again := get(t, ts.Client(), ts.URL+"/fhir/"+tt.key)
			if !bytes.Equal(body, again) {
				t.Errorf("second read differs:\n%s\n%s", body, again)
			}
			h, _ := fhir.ParseHeader(body)
			_, sb := get(t, ts.Client(), ts.URL+"/fhir/"+h.ResourceType+"?_id="+h.ID)
			var b fhir.Bundle
			if err := json.Unmarshal(sb, &b); err != nil {
				t.Fatalf("bundle holding %s is not valid JSON: %v", tt.key, err)
			}
			if len(b.Entry) != 1 || !bytes.Equal(b.Entry[0].Resource, body) {
				t.Errorf("search entries %d differ from read:\n%s\n%s", len(b.Entry), sb, body)
			}
		})
	}
	if got := s.Counts()["Patient"]; got != 3 {
		t.Errorf("Counts()[Patient] = %d, want 3 (malformed resources count)", got)
	}
	// A search over malformed resources still finds them by their intact
	// index values.
	_, body := get(t, ts.Client(), ts.URL+"/fhir/Observation?patient=p1")
	if _, matches, _ := decodeBundle(t, body); len(matches) != 3 {
		t.Errorf("Observation?patient=p1 = %v, want o1, o2, o3", matches)
	}
}

func checkMalformed(t *testing.T, key string, body []byte, wantField string, patient bool) {
	t.Helper()
	h, err := fhir.ParseHeader(body)
	if err != nil || h.ResourceType+"/"+h.ID != key || h.VersionID() == "" || h.LastUpdated().IsZero() {
		t.Fatalf("envelope of %s damaged: %+v, %v", key, h, err)
	}
	var strictErr error
	if patient {
		strictErr = json.Unmarshal(body, new(strictPatient))
	} else {
		strictErr = json.Unmarshal(body, new(strictObservation))
	}
	if wantField == "" {
		if strictErr != nil {
			t.Errorf("intact %s fails a strict decode: %v", key, strictErr)
		}
		return
	}
	var te *json.UnmarshalTypeError
	if !errors.As(strictErr, &te) || !strings.EqualFold(te.Field, wantField) {
		t.Errorf("strict decode of malformed %s = %v, want a type error on %q", key, strictErr, wantField)
	}
}
