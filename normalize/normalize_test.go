package normalize

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldenfile "ehrgate/internal/golden"

	"github.com/google/go-cmp/cmp"

	"ehrgate/terminology"
)

// goldenCases lists every handwritten input in testdata with the resource
// type it is normalized as. Outputs (or error messages) are compared with
// testdata/golden/<name>.json.
var goldenCases = []struct {
	name string
	typ  string
	// secret, when set, must not appear in the error message: it is the
	// offending value of a malformed input.
	secret string
	// wantErr says the input is malformed.
	wantErr bool
}{
	{name: "obs-quantity", typ: "Observation"},
	{name: "obs-quantity-comparator", typ: "Observation"},
	{name: "obs-concept", typ: "Observation"},
	{name: "obs-string", typ: "Observation"},
	{name: "obs-boolean", typ: "Observation"},
	{name: "obs-integer", typ: "Observation"},
	{name: "obs-range", typ: "Observation"},
	{name: "obs-ratio", typ: "Observation"},
	{name: "obs-period", typ: "Observation"},
	{name: "obs-time", typ: "Observation"},
	{name: "obs-datetime", typ: "Observation"},
	{name: "obs-sampled", typ: "Observation"},
	{name: "obs-absent", typ: "Observation"},
	{name: "obs-bp-panel", typ: "Observation"},
	{name: "obs-local-code", typ: "Observation"},
	{name: "obs-local-and-loinc", typ: "Observation"},
	{name: "obs-uncoded", typ: "Observation"},
	{name: "obs-duplicate-codings", typ: "Observation"},
	{name: "obs-group-subject", typ: "Observation"},
	{name: "obs-weight-lb", typ: "Observation"},
	{name: "obs-weight-oz", typ: "Observation"},
	{name: "obs-weight-g", typ: "Observation"},
	{name: "obs-height-in", typ: "Observation"},
	{name: "obs-temp-f", typ: "Observation"},
	{name: "obs-glucose-mgdl", typ: "Observation"},
	{name: "obs-cholesterol-mgdl", typ: "Observation"},
	{name: "obs-creatinine-mgdl", typ: "Observation"},
	{name: "obs-creatinine-umol", typ: "Observation"},
	{name: "obs-potassium-no-conversion", typ: "Observation"},
	{name: "obs-bp-panel-55284", typ: "Observation"},
	{name: "obs-systolic-alone", typ: "Observation"},
	{name: "obs-local-mapped", typ: "Observation"},
	{name: "obs-text-unmapped", typ: "Observation"},
	{name: "obs-text-ambiguous", typ: "Observation"},
	{name: "obs-text-hgb", typ: "Observation"},
	{name: "cond-icd-hypertension", typ: "Condition"},
	{name: "cond-diabetes-both", typ: "Condition"},
	{name: "cond-local-unmapped", typ: "Condition"},
	{name: "med-stale", typ: "MedicationRequest"},
	{name: "med-fresh", typ: "MedicationRequest"},
	{name: "med-ingredient", typ: "MedicationRequest"},
	{name: "med-old-completed", typ: "MedicationRequest"},
	{name: "med-bounds-period", typ: "MedicationRequest"},
	{name: "med-validity-period", typ: "MedicationRequest"},
	{name: "enc-telephone-snomed", typ: "Encounter"},
	{name: "enc-cpt-modifier-95", typ: "Encounter"},
	{name: "enc-epic-telemedicine", typ: "Encounter"},
	{name: "cond-active", typ: "Condition"},
	{name: "cond-resolved", typ: "Condition"},
	{name: "cond-abated", typ: "Condition"},
	{name: "cond-recurrence-period", typ: "Condition"},
	{name: "cond-refuted", typ: "Condition"},
	{name: "cond-missing", typ: "Condition"},
	{name: "med-rxnorm", typ: "MedicationRequest"},
	{name: "med-ndc-only", typ: "MedicationRequest"},
	{name: "med-reference", typ: "MedicationRequest"},
	{name: "med-contained", typ: "MedicationRequest"},
	{name: "med-missing", typ: "MedicationRequest"},
	{name: "dr-structured", typ: "DiagnosticReport"},
	{name: "dr-narrative", typ: "DiagnosticReport"},
	{name: "dr-text-only", typ: "DiagnosticReport"},
	{name: "enc-in-person", typ: "Encounter"},
	{name: "enc-virtual-class", typ: "Encounter"},
	{name: "enc-telemed-snomed", typ: "Encounter"},
	{name: "enc-video-text", typ: "Encounter"},
	{name: "enc-videofluoroscopy", typ: "Encounter"},
	{name: "enc-missing", typ: "Encounter"},
	{name: "patient-full", typ: "Patient"},
	{name: "patient-minimal", typ: "Patient"},
	{name: "patient-no-mrn", typ: "Patient"},
	{name: "allergy-active", typ: "AllergyIntolerance"},
	{name: "allergy-no-clinical-status", typ: "AllergyIntolerance"},
	{name: "allergy-refuted", typ: "AllergyIntolerance"},
	{name: "allergy-resolved", typ: "AllergyIntolerance"},
	{name: "imm-cvx", typ: "Immunization"},
	{name: "imm-string", typ: "Immunization"},
	{name: "proc-cpt", typ: "Procedure"},
	{name: "proc-string", typ: "Procedure"},
	{name: "proc-missing", typ: "Procedure"},
	{name: "docref", typ: "DocumentReference"},
	{name: "docref-missing", typ: "DocumentReference"},
	{name: "other-careplan", typ: "CarePlan"},
	{name: "other-contract", typ: "Contract"},
	{name: "other-coverage", typ: "Coverage"},
	{name: "other-careplan", typ: ""}, // type taken from the resource

	{name: "bad-subject-number", typ: "Observation", wantErr: true, secret: "12345"},
	{name: "bad-birthdate-number", typ: "Patient", wantErr: true, secret: "19700101"},
	{name: "bad-quantity-string", typ: "Observation", wantErr: true, secret: "SECRET42"},
	{name: "bad-integer-fraction", typ: "Observation", wantErr: true, secret: "31.4159"},
	{name: "bad-code-array", typ: "Condition", wantErr: true, secret: "Asthma"},
	{name: "bad-no-resource-type", typ: "Observation", wantErr: true},
	{name: "bad-no-resource-type", typ: "", wantErr: true},
	{name: "bad-no-id", typ: "Observation", wantErr: true, secret: "SECRETVALUE"},
	{name: "bad-given-string", typ: "Patient", wantErr: true, secret: "Qwerty"},
	{name: "bad-contained", typ: "MedicationRequest", wantErr: true, secret: "SECRETCODE"},
	{name: "bad-status-bool", typ: "Immunization", wantErr: true, secret: "true"},
	{name: "bad-invalid-json", typ: "Observation", wantErr: true, secret: "SECRETVAL"},
	{name: "bad-not-object", typ: "Observation", wantErr: true, secret: "SECRETVAL"},
	{name: "patient-full", typ: "Observation", wantErr: true}, // routed as the wrong type
}

// testClock is the fixed "now" of the golden tests (stale orders).
var testClock = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

// testNormalizer is the chain the golden tests use: bundled tables, the
// local-code map testdata/localmap.csv and a fixed clock.
func testNormalizer(t testing.TB) *Normalizer {
	t.Helper()
	lm, err := terminology.OpenLocalMap(filepath.Join("testdata", "localmap.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return New(WithLocalCodes(lm), WithClock(func() time.Time { return testClock }))
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatalf("reading input: %v", err)
	}
	return b
}

func TestNormalizeGolden(t *testing.T) {
	for _, tc := range goldenCases {
		golden := tc.name
		if tc.typ == "" {
			golden += ".untyped"
		} else if tc.wantErr && !strings.HasPrefix(tc.name, "bad-") {
			golden += ".as-" + tc.typ
		}
		t.Run(golden, func(t *testing.T) {
			raw := readTestdata(t, tc.name)
			res, err := testNormalizer(t).Normalize(Ref{Connection: "test", Type: tc.typ}, raw)
			var got []byte
			switch {
			case tc.wantErr:
				if err == nil {
					t.Fatalf("Normalize(%q) = %T, want error", tc.name, res)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("Normalize(%q) error %v does not wrap ErrMalformed", tc.name, err)
				}
				if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
					t.Errorf("Normalize(%q) error %q leaks the value %q", tc.name, err, tc.secret)
				}
				got, _ = json.MarshalIndent(map[string]string{"error": err.Error()}, "", "  ")
			case err != nil:
				t.Fatalf("Normalize(%q) error: %v", tc.name, err)
			default:
				if res.Base().Source.Type == "" || res.Base().Source.ID == "" {
					t.Errorf("Normalize(%q) source = %+v, want type and id", tc.name, res.Base().Source)
				}
				got, err = json.MarshalIndent(res, "", "  ")
				if err != nil {
					t.Fatalf("marshalling output: %v", err)
				}
			}
			got = append(got, '\n')
			goldenfile.Check(t, filepath.Join("testdata", "golden", golden+".json"), got)
		})
	}
}

// TestRules asserts the clinically important decisions directly, so that a
// careless -update cannot bless a wrong golden file.
func TestRules(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		get  func(Resource) any
		want any
	}{
		{"obs-quantity", "Observation", func(r Resource) any {
			o := r.(*Observation)
			return []any{o.Value.Kind, *o.Value.Number, o.Interpretation, o.ReferenceRange}
		}, []any{"quantity", 5.6, "H", "3.5–5.1 mmol/L"}},
		{"obs-quantity-comparator", "Observation", func(r Resource) any { o := r.(*Observation); return []any{o.Value.Comparator, o.ReferenceRange} }, []any{"<", "≤10 mg/L"}},
		{"obs-concept", "Observation", func(r Resource) any {
			o := r.(*Observation)
			return []any{o.Value.Kind, o.Value.Concept.Code, o.Value.Text}
		}, []any{"concept", "266919005", "Never smoker"}},
		{"obs-string", "Observation", func(r Resource) any { return r.(*Observation).Value.Kind }, "string"},
		{"obs-boolean", "Observation", func(r Resource) any { v := r.(*Observation).Value; return []any{v.Kind, *v.Bool} }, []any{"boolean", false}},
		{"obs-integer", "Observation", func(r Resource) any { o := r.(*Observation); return []any{o.Value.Kind, *o.Value.Number, o.Effective} }, []any{"integer", 7.0, "2024-02-01"}},
		{"obs-range", "Observation", func(r Resource) any { v := r.(*Observation).Value; return []any{v.Kind, *v.Low, *v.High, v.Text} }, []any{"range", 110.0, 125.0, "110–125 mmHg"}},
		{"obs-ratio", "Observation", func(r Resource) any { v := r.(*Observation).Value; return []any{v.Kind, v.Text} }, []any{"ratio", "1:128"}},
		{"obs-period", "Observation", func(r Resource) any { v := r.(*Observation).Value; return []any{v.Kind, v.Start, v.End} }, []any{"period", "2024-01-01T10:00:00Z", "2024-01-04T12:00:00Z"}},
		{"obs-time", "Observation", func(r Resource) any { o := r.(*Observation); return []any{o.Value.Kind, o.Value.Text, o.Effective} }, []any{"time", "22:30:00", "2024-03-01T08:00:00.000Z"}},
		{"obs-datetime", "Observation", func(r Resource) any { return r.(*Observation).Value.Kind }, "datetime"},
		{"obs-sampled", "Observation", func(r Resource) any { return r.(*Observation).Value.Kind }, "sampled"},
		{"obs-absent", "Observation", func(r Resource) any { o := r.(*Observation); return []any{o.Value.Kind, o.Value.Text, o.Missing} }, []any{"absent", "Asked But Declined", []string(nil)}},
		{"obs-bp-panel", "Observation", func(r Resource) any {
			o := r.(*Observation)
			return []any{o.Value == nil, len(o.Components), o.Components[0].Code.Code, o.Components[1].Value.Kind, o.Missing}
		}, []any{true, 2, "8480-6", "absent", []string(nil)}},
		{"obs-local-code", "Observation", func(r Resource) any {
			c := r.(*Observation).Code
			return []any{c.Code, c.Standard, c.Mapping, c.Original[0].Code}
		}, []any{"2823-3", true, "text", "12345"}},
		{"obs-local-mapped", "Observation", func(r Resource) any { c := r.(*Observation).Code; return []any{c.Code, c.Mapping, c.Confidence} }, []any{"2823-3", "local-map", 1.0}},
		{"obs-text-unmapped", "Observation", func(r Resource) any { c := r.(*Observation).Code; return []any{c.Code, c.Standard, c.Mapping, c.Text} }, []any{"55501", false, "unmapped", "Vancomycin Trough"}},
		{"obs-text-ambiguous", "Observation", func(r Resource) any { c := r.(*Observation).Code; return []any{c.Code, c.Mapping} }, []any{"", "unmapped"}},
		{"obs-text-hgb", "Observation", func(r Resource) any { c := r.(*Observation).Code; return []any{c.Code, c.Mapping} }, []any{"718-7", "text"}},
		{"obs-quantity", "Observation", func(r Resource) any { c := r.(*Observation).Code; return []any{c.Mapping, c.Confidence} }, []any{"standard", 1.0}},
		{"obs-weight-lb", "Observation", func(r Resource) any { v := r.(*Observation).Value; return []any{*v.Number, v.Unit, *v.Canonical} }, []any{180.0, "lb", Canonical{81.6466, "kg"}}},
		{"obs-weight-oz", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{3.1751, "kg"}},
		{"obs-weight-g", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{3.5, "kg"}},
		{"obs-height-in", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{177.8, "cm"}},
		{"obs-temp-f", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{37, "Cel"}},
		{"obs-glucose-mgdl", "Observation", func(r Resource) any {
			o := r.(*Observation)
			return []any{*o.Value.Canonical, o.ReferenceRange, o.Interpretation}
		}, []any{Canonical{5.5507, "mmol/L"}, "70–99 mg/dL", "H"}},
		{"obs-cholesterol-mgdl", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{5.172, "mmol/L"}},
		{"obs-creatinine-mgdl", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{106.104, "umol/L"}},
		{"obs-creatinine-umol", "Observation", func(r Resource) any { return *r.(*Observation).Value.Canonical }, Canonical{106, "umol/L"}},
		{"obs-potassium-no-conversion", "Observation", func(r Resource) any { return r.(*Observation).Value.Canonical == nil }, true},
		{"obs-bp-panel-55284", "Observation", func(r Resource) any {
			bp := r.(*Observation).BloodPressure
			return []any{*bp.Systolic.Number, *bp.Diastolic.Number, bp.From}
		}, []any{128.0, 82.0, "components"}},
		{"obs-bp-panel", "Observation", func(r Resource) any {
			bp := r.(*Observation).BloodPressure
			return []any{*bp.Systolic.Number, bp.Diastolic.Kind, bp.From}
		}, []any{128.0, "absent", "components"}},
		{"obs-systolic-alone", "Observation", func(r Resource) any {
			bp := r.(*Observation).BloodPressure
			return []any{*bp.Systolic.Number, bp.Diastolic == nil, bp.From}
		}, []any{141.0, true, "observation"}},
		{"cond-icd-hypertension", "Condition", func(r Resource) any { return r.(*Condition).Groups }, []string{"hypertension"}},
		{"cond-diabetes-both", "Condition", func(r Resource) any { c := r.(*Condition); return []any{c.Groups, c.Code.Mapping} }, []any{[]string{"diabetes"}, "standard"}},
		{"cond-local-unmapped", "Condition", func(r Resource) any { c := r.(*Condition); return []any{c.Code.Mapping, c.Code.Code, c.Groups} }, []any{"unmapped", "HTN-LOCAL", []string(nil)}},
		{"med-ingredient", "MedicationRequest", func(r Resource) any { m := r.(*MedicationRequest); return []any{m.DrugLevel, m.Ingredient.Code} }, []any{"ingredient", "29046"}},
		{"med-rxnorm", "MedicationRequest", func(r Resource) any {
			m := r.(*MedicationRequest)
			return []any{m.DrugLevel, m.Ingredient.Code, m.Ingredient.Display}
		}, []any{"clinical-drug", "17767", "amlodipine"}},
		{"enc-telephone-snomed", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, true},
		{"enc-cpt-modifier-95", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, true},
		{"enc-epic-telemedicine", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, true},
		{"obs-local-and-loinc", "Observation", func(r Resource) any {
			c := r.(*Observation).Code
			return []any{c.System, c.Code, c.Standard, len(c.Original)}
		}, []any{"http://loinc.org", "2823-3", true, 2}},
		{"obs-uncoded", "Observation", func(r Resource) any {
			o := r.(*Observation)
			return []any{o.Code.Text, o.Code.Standard, o.PatientID, o.Missing}
		}, []any{"Patient feels well", false, "p1", []string{"value", "effective", "status"}}},
		{"obs-duplicate-codings", "Observation", func(r Resource) any { c := r.(*Observation).Code; return []any{c.Code, c.Display, len(c.Original)} }, []any{"2823-3", "Potassium SerPl-sCnc", 2}},
		{"obs-group-subject", "Observation", func(r Resource) any { return r.Base().PatientID }, ""},
		{"cond-active", "Condition", func(r Resource) any { c := r.(*Condition); return []any{c.Active, c.Code.System, c.PatientID} }, []any{true, "http://snomed.info/sct", "0b3c2a4e-1111-4222-8333-944455556666"}},
		{"cond-resolved", "Condition", func(r Resource) any { return r.(*Condition).Active }, false},
		{"cond-abated", "Condition", func(r Resource) any { c := r.(*Condition); return []any{c.Active, c.Abatement} }, []any{false, "after surgery"}},
		{"cond-recurrence-period", "Condition", func(r Resource) any { c := r.(*Condition); return []any{c.Active, c.Onset, c.Code.System} }, []any{true, "2020-02", "http://hl7.org/fhir/sid/icd-10-cm"}},
		{"cond-refuted", "Condition", func(r Resource) any { c := r.(*Condition); return []any{c.Active, c.Onset} }, []any{false, "childhood"}},
		{"cond-missing", "Condition", func(r Resource) any { return r.Base().Missing }, []string{"clinicalStatus", "onset"}},
		{"med-rxnorm", "MedicationRequest", func(r Resource) any { m := r.(*MedicationRequest); return []any{m.Medication.Code, m.Active} }, []any{"197361", true}},
		{"med-ndc-only", "MedicationRequest", func(r Resource) any {
			m := r.(*MedicationRequest)
			return []any{m.Medication.System, m.Medication.Standard, m.Active}
		}, []any{"http://hl7.org/fhir/sid/ndc", false, false}},
		{"med-reference", "MedicationRequest", func(r Resource) any { m := r.(*MedicationRequest); return []any{m.Medication.Text, m.Active, m.Dosage} }, []any{"Lisinopril 10 mg tablet", true, "1 tab daily; hold if SBP < 100"}},
		{"med-contained", "MedicationRequest", func(r Resource) any { return r.(*MedicationRequest).Medication.Code }, "314076"},
		{"med-missing", "MedicationRequest", func(r Resource) any { return r.Base().Missing }, []string{"medication", "status", "authoredOn", "dosage"}},
		{"dr-structured", "DiagnosticReport", func(r Resource) any { d := r.(*DiagnosticReport); return []any{d.Results, d.NarrativeOnly} }, []any{2, false}},
		{"dr-narrative", "DiagnosticReport", func(r Resource) any {
			d := r.(*DiagnosticReport)
			return []any{d.NarrativeOnly, d.Code.Code, d.Effective}
		}, []any{true, "36643-5", "2024-03-02T10:00:00Z"}},
		{"dr-text-only", "DiagnosticReport", func(r Resource) any { return r.(*DiagnosticReport).NarrativeOnly }, true},
		{"enc-in-person", "Encounter", func(r Resource) any { e := r.(*Encounter); return []any{e.Telehealth, e.Class, e.Type.Code} }, []any{false, "AMB", "185349003"}},
		{"enc-virtual-class", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, true},
		{"enc-telemed-snomed", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, true},
		{"enc-video-text", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, true},
		{"enc-videofluoroscopy", "Encounter", func(r Resource) any { return r.(*Encounter).Telehealth }, false},
		{"enc-missing", "Encounter", func(r Resource) any { return r.Base().Missing }, []string{"status", "class", "start"}},
		{"patient-full", "Patient", func(r Resource) any {
			p := r.(*Patient)
			return []any{p.Name, p.MRN, p.Address, p.Phone, p.Email, p.Language, p.Race, p.Ethnicity, p.Deceased, p.Missing, p.Source.VersionID}
		}, []any{"Dorothy Ann Quinn", "E12345", "12 Elm St, Apt 4, Springfield, IL 62701, US", "555-0199", "dq@example.org", "es", "White", "Hispanic or Latino", true, []string(nil), "7"}},
		{"patient-minimal", "Patient", func(r Resource) any { return r.Base().Missing }, []string{"name", "birthDate", "gender", "mrn"}},
		{"patient-no-mrn", "Patient", func(r Resource) any {
			p := r.(*Patient)
			return []any{p.Name, p.MRN, p.Race, p.Deceased, p.Missing}
		}, []any{"J. Doe", "", "Black or African American, Asian", false, []string{"birthDate", "mrn"}}},
		{"allergy-active", "AllergyIntolerance", func(r Resource) any {
			a := r.(*AllergyIntolerance)
			return []any{a.Active, a.Substance.Code, a.Reactions, a.Criticality}
		}, []any{true, "7980", []string{"Hives", "Wheezing"}, "high"}},
		{"allergy-no-clinical-status", "AllergyIntolerance", func(r Resource) any { a := r.(*AllergyIntolerance); return []any{a.Active, a.Missing} }, []any{true, []string{"clinicalStatus"}}},
		{"allergy-refuted", "AllergyIntolerance", func(r Resource) any { return r.(*AllergyIntolerance).Active }, false},
		{"allergy-resolved", "AllergyIntolerance", func(r Resource) any { return r.(*AllergyIntolerance).Active }, false},
		{"imm-cvx", "Immunization", func(r Resource) any {
			i := r.(*Immunization)
			return []any{i.Vaccine.System, i.Vaccine.Code, i.Vaccine.Standard}
		}, []any{"http://hl7.org/fhir/sid/cvx", "150", true}},
		{"imm-string", "Immunization", func(r Resource) any { i := r.(*Immunization); return []any{i.Occurrence, i.PatientID} }, []any{"childhood", "p1"}},
		{"proc-cpt", "Procedure", func(r Resource) any { p := r.(*Procedure); return []any{p.Code.Code, p.Code.Standard, p.Performed} }, []any{"45378", true, "2024-01-10T08:00:00Z"}},
		{"proc-string", "Procedure", func(r Resource) any { p := r.(*Procedure); return []any{p.Code.Code, p.Performed} }, []any{"80146002", "1998"}},
		{"docref", "DocumentReference", func(r Resource) any { d := r.(*DocumentReference); return []any{d.ContentType, d.Title, d.Missing} }, []any{"application/pdf", "Progress note 2024-03-01", []string(nil)}},
		{"docref-missing", "DocumentReference", func(r Resource) any { return r.Base().Missing }, []string{"type", "status", "date", "content"}},
		{"other-careplan", "CarePlan", func(r Resource) any { _, ok := r.(*Other); return []any{ok, r.Base().PatientID} }, []any{true, "p1"}},
		{"other-contract", "Contract", func(r Resource) any { return r.Base().PatientID }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := testNormalizer(t).Normalize(Ref{Connection: "test", Type: tc.typ}, readTestdata(t, tc.name))
			if err != nil {
				t.Fatalf("Normalize(%q) error: %v", tc.name, err)
			}
			if diff := cmp.Diff(tc.want, tc.get(res)); diff != "" {
				t.Errorf("Normalize(%q) mismatch (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

func TestMalformedError(t *testing.T) {
	_, err := Normalize(Ref{Type: "Observation"}, readTestdata(t, "bad-subject-number"))
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("Normalize error = %v, want *MalformedError", err)
	}
	if me.Field != "subject" || me.Type != "Observation" {
		t.Errorf("MalformedError = %+v, want Type Observation, Field subject", me)
	}
}

func TestReferencePatientID(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"Patient/123", "123", true},
		{"https://ehr.example/fhir/R4/Patient/abc-9", "abc-9", true},
		{"Patient/123/_history/2", "123", true},
		{"urn:uuid:7515d14b-843b-4210-8b6b-a33ab253d560", "7515d14b-843b-4210-8b6b-a33ab253d560", true},
		{"Group/1", "", false},
		{"#contained", "", false},
		{"", "", false},
		{"123", "", false},
		{"Patient/", "", false},
		{"urn:uuid:", "", false},
	}
	for _, tc := range tests {
		got, ok := ReferencePatientID(tc.in)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ReferencePatientID(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestPatientID(t *testing.T) {
	tests := []struct {
		name    string
		want    string
		wantErr bool
	}{
		{"patient-full", "p1", false},
		{"obs-quantity", "p1", false},
		{"allergy-active", "p1", false},
		{"cond-active", "0b3c2a4e-1111-4222-8333-944455556666", false},
		{"obs-group-subject", "", false},
		{"other-contract", "", false},
		{"other-coverage", "p1", false}, // Coverage.beneficiary (Patient compartment)
		{"bad-no-id", "", true},
		{"bad-invalid-json", "", true},
	}
	for _, tc := range tests {
		got, err := PatientID(readTestdata(t, tc.name))
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("PatientID(%q) = %q, %v, want %q, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("PatientID(%q) error %v does not wrap ErrMalformed", tc.name, err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	types := []string{"", "Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
		"AllergyIntolerance", "Immunization", "Procedure", "DiagnosticReport", "DocumentReference", "CarePlan",
		"Coverage", "Appointment", "Provenance"}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for i, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	// Patient-compartment links of types outside the models (compartment_test.go).
	for i, raw := range []string{
		`{"resourceType":"Coverage","id":"c","beneficiary":{"reference":"Patient/p"}}`,
		`{"resourceType":"Appointment","id":"a","participant":[{"actor":{"reference":"Patient/p"}},{"actor":7}]}`,
		`{"resourceType":"Provenance","id":"v","target":[{"reference":"Patient/p"},"x"]}`,
	} {
		f.Add(uint8(len(types)-3+i), []byte(raw))
	}
	f.Fuzz(func(t *testing.T, typ uint8, raw []byte) {
		// Route each input both by its own type and by a forced one.
		for _, tt := range []string{"", types[int(typ)%len(types)]} {
			res, err := Normalize(Ref{Type: tt}, raw)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Normalize error %v does not wrap ErrMalformed", err)
				}
				continue
			}
			if res == nil || res.Base() == nil {
				t.Fatalf("Normalize returned nil resource without error")
			}
			if _, err := json.Marshal(res); err != nil {
				t.Fatalf("marshalling output: %v", err)
			}
		}
		_, _ = PatientID(raw)
	})
}
