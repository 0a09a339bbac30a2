package fhir

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var headerCases = []string{
	`{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2025-01-02T03:04:05Z"},"name":[{"family":"X"}]}`,
	` { "id" : "o1" , "resourceType" : "Observation", "valueString": "a \"quoted\" } value", "component":[{"x":[1,2,{"y":"]"}]}] } `,
	`{"resourceType":"Observation"}`,
	`{"resourceType":"Obs\u0065rvation","id":"x"}`,
	`{"resourceType":"Patient","id":"p1","id":"p2"}`,
	`{"resourceType":"Patient","meta":{"versionId":7}}`,
	`{"resourceType":"Patient","id":12}`,
	`{"resourceType":"Patient" "id":"p1"}`,
	`{"resourceType":"Patient","id":"p1"`,
	`[{"resourceType":"Patient"}]`,
	`{"active":true,"resourceType":"Patient","n":-1.5e3,"x":null}`,
	`{}`,
	``,
	`{"resourceType":"Patient"} trailing`,
	`{"resourceType":"Patient","meta":{"lastUpdated":"2025-01-02T03:04:05Z","source":"#abc","versionId":"2"}}`,
	`{"resourceType":"Patient","meta":{"versionId":"2","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]}}`,
	`{"resourceType":"Patient","meta":{"versionId":"2","extension":[{"url":"x","valueString":"}"}],"tag":[{"code":"t"}]}}`,
	`{"resourceType":"Patient","meta":{"versionId":"2","extension":[{"url":"x"}]}}`,
	`{"resourceType":"Patient","meta":{"versionId":"2","versionId":"3"}}`,
	`{"resourceType":"Patient","meta":{"VersionId":"2"}}`,
	`{"resourceType":"Patient","meta":{"versionId":"a\u0032"}}`,
	`{"resourceType":"Patient","meta":{}}`,
	`{"resourceType":"Patient","meta":null}`,
	`{"resourceType":"Patient","meta":{"versionId":null}}`,
}

// TestParseHeaderMatchesEncodingJSON: the fast path must agree with a full
// decode on every valid input and fall back on everything else.
func TestParseHeaderMatchesEncodingJSON(t *testing.T) {
	for _, in := range headerCases {
		checkHeader(t, []byte(in))
	}
}

func checkHeader(t *testing.T, in []byte) {
	t.Helper()
	var want Header
	wantErr := json.Unmarshal(in, &want)
	if wantErr == nil && want.ResourceType == "" {
		wantErr = errSlowPath
	}
	got, err := ParseHeader(in)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ParseHeader(%q) error = %v, encoding/json says %v", in, err, wantErr)
	}
	if err == nil {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseHeader(%q) mismatch (-encoding/json +fast):\n%s", in, diff)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, c := range headerCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			_, _ = ParseHeader(in) // must not panic
			return
		}
		checkHeader(t, in)
	})
}

func BenchmarkParseHeader(b *testing.B) {
	raw := []byte(`{"resourceType":"Observation","id":"p00042-obs-017","meta":{"versionId":"1","lastUpdated":"2025-06-15T14:59:00Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose"}]},"subject":{"reference":"Patient/p00042"},"effectiveDateTime":"2025-06-15T14:59:00Z","valueQuantity":{"value":143,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},"referenceRange":[{"low":{"value":70,"unit":"mg/dL"},"high":{"value":99,"unit":"mg/dL"}}]}`)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ParseHeader(raw); err != nil {
			b.Fatal(err)
		}
	}
}
