package normalize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// decodeTargets are the structs decode fills, one constructor each.
var decodeTargets = map[string]func() any{
	"header":            func() any { return new(header) },
	"allergy":           func() any { return new(allergyJSON) },
	"condition":         func() any { return new(conditionJSON) },
	"documentReference": func() any { return new(documentReferenceJSON) },
	"encounter":         func() any { return new(encounterJSON) },
	"immunization":      func() any { return new(immunizationJSON) },
	"medicationRequest": func() any { return new(medicationRequestJSON) },
	"observation":       func() any { return new(observationJSON) },
	"patient":           func() any { return new(patientJSON) },
	"procedure":         func() any { return new(procedureJSON) },
	"diagnosticReport":  func() any { return new(diagnosticReportJSON) },
}

// checkDecodeAgrees fails when the fast decoder accepts raw but yields
// something other than encoding/json (or encoding/json rejects it).
func checkDecodeAgrees(t *testing.T, raw []byte) {
	t.Helper()
	for name, mk := range decodeTargets {
		fast, std := mk(), mk()
		if err := jsonv1.Unmarshal(raw, fast); err != nil {
			continue // decode falls back to encoding/json
		}
		if err := json.Unmarshal(raw, std); err != nil {
			t.Fatalf("%s: go-json-experiment accepted %q, encoding/json says %v", name, raw, err)
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%s: decoders differ on %q:\nfast %+v\nstd  %+v", name, raw, fast, std)
		}
	}
}

func decodeSeeds(tb testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	seeds := [][]byte{[]byte(benchObservation), []byte(benchMedicationRequest)}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds,
		[]byte(`{"resourceType":"Encounter","id":"e","ID":"f","period":{"start":"2024"}}`),
		[]byte(`{"resourceType":"Patient","id":"p","birthDate":null,"name":[null,{"given":["A","B"]}]}`),
		[]byte(`{"resourceType":"Condition","id":"c","subject":{"reference":"Patient/\u0070"},"onsetDateTime":"2020"}`),
		[]byte("{\"resourceType\":\"Observation\",\"id\":\"o\",\"valueString\":\"\xff\"}"),
		[]byte(`{"resourceType":"Observation","id":"o","valueQuantity":{"value":1e400}}`),
		[]byte(`{"resourceType":"Observation","id":"o","valueQuantity":{"value":"1"}}`),
	)
}

// TestDecodeAgrees runs the seeds of FuzzDecodeAgrees.
func TestDecodeAgrees(t *testing.T) {
	for _, raw := range decodeSeeds(t) {
		checkDecodeAgrees(t, raw)
	}
}

func FuzzDecodeAgrees(f *testing.F) {
	for _, raw := range decodeSeeds(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeAgrees(t, raw)
	})
}

// BenchmarkDecodeStructs compares the two decoders on the envelope types
// without a hand-written fast path.
func BenchmarkDecodeStructs(b *testing.B) {
	raw := []byte(`{"resourceType":"Encounter","id":"p00001-enc-004","meta":{"versionId":"1","lastUpdated":"2023-05-02T10:00:00Z"},` +
		`"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"},` +
		`"type":[{"coding":[{"system":"http://snomed.info/sct","code":"185349003","display":"Encounter for check up"}],"text":"Check up"}],` +
		`"subject":{"reference":"Patient/p00001"},"participant":[{"individual":{"reference":"Practitioner/pr1","display":"Dr. A"}}],` +
		`"period":{"start":"2023-05-02T09:00:00Z","end":"2023-05-02T09:30:00Z"},"reasonCode":[{"coding":[{"system":"http://snomed.info/sct","code":"38341003","display":"Hypertension"}]}],` +
		`"serviceProvider":{"reference":"Organization/o1","display":"Clinic"}}`)
	for _, c := range []struct {
		name string
		fn   func([]byte, any) error
	}{
		{"encoding-json", json.Unmarshal},
		{"go-json-experiment-v1", func(b []byte, v any) error { return jsonv1.Unmarshal(b, v) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				var in encounterJSON
				if err := c.fn(raw, &in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
