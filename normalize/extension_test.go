package normalize

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPatientUSCoreExtensions(t *testing.T) {
	raw := `{"resourceType":"Patient","id":"p1","extension":[
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[
	   {"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2106-3","display":"White"}},
	   {"url":"text","valueString":"White"}]},
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity","extension":[
	   {"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2135-2","display":"Hispanic or Latino"}}]},
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"},
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-genderIdentity","valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"446141000124107","display":"Identifies as female gender (finding)"}]}},
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex","valueCoding":{"system":"http://snomed.info/sct","code":"248152002","display":"Female (finding)"}},
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-tribal-affiliation","extension":[
	   {"url":"tribalAffiliation","valueCodeableConcept":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-TribalEntityUS","code":"187","display":"Shoshone"}]}},
	   {"url":"isEnrolled","valueBoolean":true}]},
	 {"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-interpreter-needed","valueCoding":{"system":"http://snomed.info/sct","code":"373066001","display":"Yes (qualifier value)"}},
	 {"url":"http://example.org/fhir/StructureDefinition/test-vendor-flag","valueCodeableConcept":{"coding":[{"system":"urn:test","code":"Y","display":"Flagged"}]}},
	 {"url":"http://example.org/nobody-knows","valueString":"x"},
	 {"url":"http://example.org/nobody-knows","valueString":"y"},
	 {"url":"http://example.org/odd-shape","valueCoding":"not an object"},
	 "not an extension"
	]}`
	RegisterExtensions(ExtensionDef{URL: "http://example.org/fhir/StructureDefinition/test-vendor-flag", Types: []string{"Patient"},
		Name: "testFlag", Label: "Test flag", Source: "Test vendor"})
	res, err := Normalize(Ref{Type: "Patient"}, []byte(raw))
	if err != nil {
		t.Fatalf("Normalize: %v (an odd extension must not make the patient malformed)", err)
	}
	p := res.(*Patient)
	got := map[string]any{"race": p.Race, "ethnicity": p.Ethnicity, "birthSex": p.BirthSex, "genderIdentity": p.GenderIdentity,
		"sex": p.Sex, "tribal": p.TribalAffiliation, "interpreter": p.InterpreterNeeded, "ext": p.Extensions, "unknown": p.UnknownExtensions}
	want := map[string]any{"race": "White", "ethnicity": "Hispanic or Latino", "birthSex": "F",
		"genderIdentity": "Identifies as female gender (finding)", "sex": "Female (finding)",
		"tribal": []string{"Shoshone (enrolled)"}, "interpreter": "Yes (qualifier value)",
		"ext": []Extension{{Name: "testFlag", Label: "Test flag", URL: "http://example.org/fhir/StructureDefinition/test-vendor-flag",
			Value: "Flagged", Code: &Coding{System: "urn:test", Code: "Y", Display: "Flagged"}, Source: "Test vendor"}},
		"unknown": []string{"http://example.org/nobody-knows"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("patient extensions (-want +got):\n%s", d)
	}
}

func TestExtensionsOnOtherTypes(t *testing.T) {
	tests := []struct {
		name, raw   string
		wantExt     []string // name=value
		wantUnknown []string
	}{
		{"encounter interpreter needed",
			`{"resourceType":"Encounter","id":"e","status":"finished","extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-interpreter-needed","valueCoding":{"code":"373067005","display":"No"}}]}`,
			[]string{"interpreterNeeded=No"}, nil},
		{"a definition for another type is not understood here",
			`{"resourceType":"Observation","id":"o","extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-interpreter-needed","valueBoolean":true}]}`,
			nil, []string{"http://hl7.org/fhir/us/core/StructureDefinition/us-core-interpreter-needed"}},
		{"unknown on a type outside the model",
			`{"resourceType":"Goal","id":"g","extension":[{"url":"urn:x:odd","valueInteger":3}]}`,
			nil, []string{"urn:x:odd"}},
		{"condition asserted date",
			`{"resourceType":"Condition","id":"c","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/condition-assertedDate","valueDateTime":"2024-01-02"}]}`,
			[]string{"assertedDate=2024-01-02"}, nil},
		{"extension not an array is ignored",
			`{"resourceType":"Procedure","id":"x","extension":{"url":"urn:x"}}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Normalize(Ref{}, []byte(tt.raw))
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			b := res.Base()
			var got []string
			for _, e := range b.Extensions {
				got = append(got, e.Name+"="+e.Value)
			}
			if d := cmp.Diff(tt.wantExt, got); d != "" {
				t.Errorf("Extensions (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantUnknown, b.UnknownExtensions); d != "" {
				t.Errorf("UnknownExtensions (-want +got):\n%s", d)
			}
		})
	}
}

func TestMalformedStillMalformedWithExtensions(t *testing.T) {
	// The extension array is read loosely, but the rest of the resource is
	// as strict as before.
	_, err := Normalize(Ref{}, []byte(`{"resourceType":"Patient","id":"p","gender":3,"extension":[]}`))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Normalize = %v, want ErrMalformed", err)
	}
}

func TestMedicationPeriodAndStaleness(t *testing.T) {
	n := New(WithClock(func() time.Time { return time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC) }))
	med := func(status, authored, extra string) string {
		return `{"resourceType":"MedicationRequest","id":"m","status":"` + status + `","intent":"order","medicationCodeableConcept":{"text":"x"},"authoredOn":"` + authored + `"` + extra + `}`
	}
	tests := []struct {
		name, raw               string
		start, end, from, stale string
	}{
		{"no period: no stop date invented", med("completed", "2024-01-01", ""), "", "", "", ""},
		{"validity period", med("active", "2024-05-01", `,"dispenseRequest":{"validityPeriod":{"start":"2024-05-01","end":"2025-05-01"}}`),
			"2024-05-01", "2025-05-01", PeriodValidity, ""},
		{"dosage bounds win over validity", med("active", "2024-05-01", `,"dosageInstruction":[{"timing":{"repeat":{"boundsPeriod":{"start":"2024-05-02","end":"2024-07-01"}}}}],"dispenseRequest":{"validityPeriod":{"start":"2024-05-01","end":"2025-05-01"}}`),
			"2024-05-02", "2024-07-01", PeriodDosageBounds, ""},
		{"active past its validity end is stale", med("active", "2024-01-01", `,"dispenseRequest":{"validityPeriod":{"start":"2024-01-01","end":"2024-03-01"}}`),
			"2024-01-01", "2024-03-01", PeriodValidity, "status active but its prescription's validity period ended on 2024-03-01"},
		{"the end date itself is still in the period", med("active", "2024-05-01", `,"dosageInstruction":[{"timing":{"repeat":{"boundsPeriod":{"end":"2024-06-01"}}}}]`),
			"", "2024-06-01", PeriodDosageBounds, ""},
		{"a completed order past its end is not stale", med("completed", "2024-01-01", `,"dispenseRequest":{"validityPeriod":{"end":"2024-02-01"}}`),
			"", "2024-02-01", PeriodValidity, ""},
		{"empty period objects are no period", med("active", "2024-05-01", `,"dosageInstruction":[{"timing":{"repeat":{"boundsPeriod":{}}}}],"dispenseRequest":{"validityPeriod":{}}`),
			"", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := n.Normalize(Ref{}, []byte(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			m := res.(*MedicationRequest)
			got := []string{m.Start, m.End, m.PeriodFrom, m.StaleReason}
			if d := cmp.Diff([]string{tt.start, tt.end, tt.from, tt.stale}, got); d != "" {
				t.Errorf("start, end, from, stale reason (-want +got):\n%s", d)
			}
		})
	}
}
