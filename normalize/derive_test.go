package normalize

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/terminology"
)

func quantityObs(t *testing.T, id, patient, loinc, effective, value, unit string) *Observation {
	t.Helper()
	raw := `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"` + loinc + `"}]},` +
		`"subject":{"reference":"Patient/` + patient + `"},"effectiveDateTime":"` + effective + `","valueQuantity":{"value":` + value + `,"unit":"` + unit + `","system":"http://unitsofmeasure.org","code":"` + unit + `"}}`
	r, err := Normalize(Ref{Connection: "c", Type: "Observation"}, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r.(*Observation)
}

func TestDeriveBMI(t *testing.T) {
	obs := []*Observation{
		quantityObs(t, "w1", "p1", "29463-7", "2024-01-10", "176", "[lb_av]"), // 79.8322 kg
		quantityObs(t, "h-old", "p1", "8302-2", "2020-01-01", "150", "cm"),    // too far
		quantityObs(t, "h1", "p1", "8302-2", "2024-01-01", "70", "[in_i]"),    // 177.8 cm, nearest
		quantityObs(t, "h2", "p1", "8302-2", "2023-03-01", "178", "cm"),
		quantityObs(t, "w2", "p2", "29463-7", "2024-01-10", "60", "kg"), // no height for p2
		quantityObs(t, "w3", "p3", "29463-7", "2024-02-01", "90", "kg"),
		quantityObs(t, "h3", "p3", "8302-2", "2024-02-01", "180", "cm"),
		quantityObs(t, "b3", "p3", "39156-5", "2024-02-01", "27.8", "kg/m2"), // already there
	}
	got := DeriveBMI(obs)
	if len(got) != 1 {
		t.Fatalf("DeriveBMI returned %d observations, want 1", len(got))
	}
	b := got[0]
	want := []any{true, "39156-5", 25.3, "kg/m2", "bmi-w1", "p1", []string{"w1", "h1"}, "2024-01-10"}
	gotv := []any{b.Derived, b.Code.Code, *b.Value.Number, b.Value.Unit, b.Source.ID, b.PatientID, []string{b.DerivedFrom[0].ID, b.DerivedFrom[1].ID}, b.Effective}
	if diff := cmp.Diff(want, gotv); diff != "" {
		t.Errorf("DeriveBMI mismatch (-want +got):\n%s", diff)
	}
}

func TestMergeConditions(t *testing.T) {
	mk := func(id, system, code string, active bool) *Condition {
		clin := "resolved"
		if active {
			clin = "active"
		}
		raw := `{"resourceType":"Condition","id":"` + id + `","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"` + clin + `"}]},` +
			`"code":{"coding":[{"system":"` + system + `","code":"` + code + `"}]},"subject":{"reference":"Patient/p1"}}`
		r, err := Normalize(Ref{Connection: "c", Type: "Condition"}, []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return r.(*Condition)
	}
	const sct, icd = "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"
	conds := []*Condition{
		mk("a", icd, "I10", true),
		mk("b", sct, "38341003", false),
		mk("c", icd, "E11.9", true),
		mk("d", sct, "44054006", true),
		mk("e", icd, "e11.9", false), // case differs
		mk("f", icd, "J45.909", true),
		mk("g", sct, "55822004", true),
		mk("h", icd, "I10", false),
	}
	got := MergeConditions(conds)
	var summary []string
	for _, m := range got {
		var ids []string
		for _, s := range m.Sources {
			ids = append(ids, s.Source.ID)
		}
		summary = append(summary, m.Code.Code+":"+strings.Join(ids, ",")+":"+strings.Join(m.Groups, "+")+":"+map[bool]string{true: "active", false: "inactive"}[m.Active])
	}
	want := []string{
		"38341003:a,b,h:hypertension:active",
		"44054006:c,d,e:diabetes:active",
		"J45.909:f:asthma:active",
		"55822004:g:hyperlipidemia:active",
	}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("MergeConditions mismatch (-want +got):\n%s", diff)
	}
}

func TestStaleMedication(t *testing.T) {
	raw := readTestdata(t, "med-stale")
	tests := []struct {
		name      string
		now       time.Time
		after     time.Duration
		wantStale bool
	}{
		{"over a year", time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), DefaultStaleAfter, true},
		{"within a year", time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), DefaultStaleAfter, false},
		{"custom period", time.Date(2019, 8, 1, 0, 0, 0, 0, time.UTC), 30 * 24 * time.Hour, true},
		{"off", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := New(WithClock(func() time.Time { return tc.now }), WithStaleAfter(tc.after))
			r, err := n.Normalize(Ref{Type: "MedicationRequest"}, raw)
			if err != nil {
				t.Fatal(err)
			}
			m := r.(*MedicationRequest)
			if m.Stale != tc.wantStale || m.Active != true || (m.Stale && m.StaleReason == "") {
				t.Errorf("Stale = %v (%q), want %v", m.Stale, m.StaleReason, tc.wantStale)
			}
		})
	}
	r, _ := New(WithClock(func() time.Time { return testClock })).Normalize(Ref{Type: "MedicationRequest"}, readTestdata(t, "med-old-completed"))
	if r.(*MedicationRequest).Stale {
		t.Errorf("a completed order is never stale")
	}
}

func TestNDCToRxNorm(t *testing.T) {
	drugs := terminology.NewDrugTable()
	if err := drugs.LoadRXNSAT(strings.NewReader("197361|||||||||NDC|RXNORM|00093005801|N||\n")); err != nil {
		t.Fatal(err)
	}
	n := New(WithDrugs(drugs))
	r, err := n.Normalize(Ref{Type: "MedicationRequest"}, readTestdata(t, "med-ndc-only"))
	if err != nil {
		t.Fatal(err)
	}
	m := r.(*MedicationRequest)
	orig := m.Medication.Original
	if len(orig) == 0 {
		t.Fatal("no original coding kept")
	}
	ndc, _ := terminology.NormalizeNDC(orig[0].Code)
	if ndc != "00093005801" {
		t.Skipf("fixture NDC %q is not the one this test loads", orig[0].Code)
	}
	if m.Medication.Mapping != MappingNDC || m.Medication.Code != "197361" || !m.Medication.Standard {
		t.Errorf("Medication = %+v, want RxNorm 197361 mapped by ndc", m.Medication)
	}
	// Without the table entry the NDC stays unmapped: never guessed.
	r, _ = Normalize(Ref{Type: "MedicationRequest"}, readTestdata(t, "med-ndc-only"))
	if got := r.(*MedicationRequest).Medication.Mapping; got != MappingUnmapped {
		t.Errorf("default Medication.Mapping = %q, want unmapped", got)
	}
}
