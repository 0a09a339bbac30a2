package summary_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/normalize"
	"ehrgate/store"
	"ehrgate/summary"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fakeStore is an in-memory summary.Reader.
type fakeStore struct {
	recs   []store.Record
	states []store.FetchState
	fail   string // a type whose listing fails
}

func (f *fakeStore) Get(_ context.Context, conn, typ, id string) (store.Record, error) {
	for _, r := range f.recs {
		if r.Connection == conn && r.Type == typ && r.ID == id {
			return r, nil
		}
	}
	return store.Record{}, store.ErrNotFound
}

func (f *fakeStore) ListByPatient(_ context.Context, conn, pid, typ string) ([]store.Record, error) {
	if typ == f.fail {
		return nil, errors.New("disk on fire")
	}
	var out []store.Record
	for _, r := range f.recs {
		if r.Connection == conn && r.PatientID == pid && r.Type == typ {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeStore) FetchStates(_ context.Context, conn, pid string) ([]store.FetchState, error) {
	var out []store.FetchState
	for _, s := range f.states {
		if s.Connection == conn && s.PatientID == pid {
			out = append(out, s)
		}
	}
	return out, nil
}

// add stores a normalized resource (v's Common.Source names it).
func (f *fakeStore) add(t *testing.T, v normalize.Resource) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c := v.Base()
	f.recs = append(f.recs, store.Record{Key: store.Key{Connection: c.Source.Connection, Type: c.Source.Type, ID: c.Source.ID},
		PatientID: c.PatientID, Normalized: b})
}

func (f *fakeStore) state(conn, pid, typ string, a store.Availability, detail string) {
	f.states = append(f.states, store.FetchState{Connection: conn, PatientID: pid, Type: typ, Availability: a, Detail: detail})
}

func common(conn, typ, id, pid string) normalize.Common {
	return normalize.Common{Source: normalize.Ref{Connection: conn, Type: typ, ID: id}, PatientID: pid}
}

func f64(x float64) *float64 { return &x }

const (
	snomed = "http://snomed.info/sct"
	loinc  = "http://loinc.org"
	rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
)

func quantity(n float64, unit string) *normalize.Value {
	return &normalize.Value{Kind: "quantity", Number: f64(n), Unit: unit, UnitCode: unit}
}

// twoSources is one person seen at epic_a (patient p1: everything) and at
// cerner (patient 77: the same hypertension, the same lisinopril order,
// the same HbA1c result; no allergy endpoint; vital signs fetch failed).
func twoSources(t *testing.T) *fakeStore {
	f := &fakeStore{}
	for _, p := range []struct{ conn, id string }{{"epic_a", "p1"}, {"cerner", "77"}} {
		f.add(t, &normalize.Patient{Common: common(p.conn, "Patient", p.id, p.id), Name: "Ada Example", Gender: "female", BirthDate: "1961-04-02"})
	}
	htn := normalize.Concept{System: snomed, Code: "38341003", Text: "Hypertension"}
	f.add(t, &normalize.Condition{Common: common("epic_a", "Condition", "c1", "p1"), Code: htn, ClinicalStatus: "active", Active: true, Onset: "2019-03-01"})
	f.add(t, &normalize.Condition{Common: common("epic_a", "Condition", "c2", "p1"), Code: normalize.Concept{System: snomed, Code: "74400008", Text: "Appendicitis"},
		ClinicalStatus: "resolved", Onset: "1990-07-10", Abatement: "1990-07-20"})
	f.add(t, &normalize.Condition{Common: common("epic_a", "Condition", "c3", "p1"), Code: normalize.Concept{Text: "Asthma"},
		ClinicalStatus: "active", Active: true, VerificationStatus: "entered-in-error"})
	f.add(t, &normalize.Condition{Common: common("cerner", "Condition", "dx-9", "77"), Code: htn, ClinicalStatus: "active", Active: true, Onset: "2019-03-02T00:00:00Z"})
	f.add(t, &normalize.Condition{Common: common("cerner", "Condition", "dx-10", "77"), Code: normalize.Concept{System: "http://hl7.org/fhir/sid/icd-10-cm", Code: "E11.9", Text: "Type 2 diabetes mellitus"},
		ClinicalStatus: "active", Active: true, Onset: "2021-05-20"})

	lis := normalize.Concept{System: rxnorm, Code: "314076", Text: "lisinopril 10 MG Oral Tablet"}
	f.add(t, &normalize.MedicationRequest{Common: common("epic_a", "MedicationRequest", "m1", "p1"), Medication: lis, Status: "active", Active: true,
		AuthoredOn: "2026-01-10T09:00:00Z", Dosage: "1 tablet daily"})
	f.add(t, &normalize.MedicationRequest{Common: common("cerner", "MedicationRequest", "rx-1", "77"), Medication: lis, Status: "active", Active: true,
		AuthoredOn: "2026-01-10", Dosage: "10 mg once a day"})
	f.add(t, &normalize.MedicationRequest{Common: common("epic_a", "MedicationRequest", "m2", "p1"), Medication: normalize.Concept{System: rxnorm, Code: "861007", Text: "metformin 500 MG Oral Tablet"},
		Status: "active", Active: true, AuthoredOn: "2023-02-01", Stale: true, StaleReason: "no activity since 2023-02-01"})
	f.add(t, &normalize.MedicationRequest{Common: common("cerner", "MedicationRequest", "rx-2", "77"), Medication: normalize.Concept{System: rxnorm, Code: "197361", Text: "amlodipine 5 MG Oral Tablet"},
		Status: "stopped", AuthoredOn: "2020-01-01"})

	f.add(t, &normalize.AllergyIntolerance{Common: common("epic_a", "AllergyIntolerance", "a1", "p1"), Substance: normalize.Concept{System: rxnorm, Code: "7980", Text: "Penicillin G"},
		ClinicalStatus: "active", Active: true, Criticality: "high", Reactions: []string{"Hives"}, Recorded: "2010-02-03"})

	a1c := normalize.Concept{System: loinc, Code: "4548-4", Text: "Hemoglobin A1c"}
	f.add(t, &normalize.Observation{Common: common("epic_a", "Observation", "o1", "p1"), Status: "final", Category: []string{"laboratory"}, Code: a1c,
		Effective: "2026-05-01T08:00:00Z", Value: quantity(7.4, "%"), Interpretation: "H"})
	f.add(t, &normalize.Observation{Common: common("epic_a", "Observation", "o2", "p1"), Status: "final", Category: []string{"laboratory"}, Code: a1c,
		Effective: "2026-11-01T08:00:00Z", Value: quantity(7.1, "%"), Interpretation: "H"})
	f.add(t, &normalize.Observation{Common: common("cerner", "Observation", "lab-5", "77"), Status: "final", Category: []string{"laboratory"}, Code: a1c,
		Effective: "2026-11-01T03:00:00-05:00", Value: quantity(7.1, "%"), Interpretation: "H"})
	glu := &normalize.Value{Kind: "quantity", Number: f64(110), Unit: "mg/dL", UnitCode: "mg/dL", Canonical: &normalize.Canonical{Number: 6.1, Unit: "mmol/L"}}
	f.add(t, &normalize.Observation{Common: common("cerner", "Observation", "lab-6", "77"), Status: "final", Category: []string{"laboratory"},
		Code: normalize.Concept{System: loinc, Code: "2345-7", Text: "Glucose"}, Effective: "2026-10-15", Value: glu})
	f.add(t, &normalize.Observation{Common: common("cerner", "Observation", "lab-7", "77"), Status: "final", Category: []string{"laboratory"},
		Code: normalize.Concept{System: loinc, Code: "2345-7", Text: "Glucose"}, Effective: "2026-09-15",
		Value: &normalize.Value{Kind: "quantity", Number: f64(7.0), Unit: "mmol/L", UnitCode: "mmol/L", Canonical: &normalize.Canonical{Number: 7.0, Unit: "mmol/L"}}})
	bp := func(id, at string, sys, dia float64) *normalize.Observation {
		return &normalize.Observation{Common: common("epic_a", "Observation", id, "p1"), Status: "final", Category: []string{"vital-signs"},
			Code: normalize.Concept{System: loinc, Code: "85354-9", Text: "Blood pressure"}, Effective: at,
			BloodPressure: &normalize.BP{Systolic: quantity(sys, "mm[Hg]"), Diastolic: quantity(dia, "mm[Hg]"), From: "components"}}
	}
	f.add(t, bp("v1", "2026-06-01T10:00:00Z", 135, 88))
	f.add(t, bp("v2", "2026-11-01T10:00:00Z", 128, 82))
	f.add(t, &normalize.Observation{Common: common("epic_a", "Observation", "v3", "p1"), Status: "final", Category: []string{"vital-signs"},
		Code: normalize.Concept{System: loinc, Code: "29463-7", Text: "Body weight"}, Effective: "2026-11-01T10:00:00Z", Value: quantity(71.5, "kg")})
	f.add(t, &normalize.Observation{Common: common("epic_a", "Observation", "s1", "p1"), Status: "final", Category: []string{"social-history"},
		Code: normalize.Concept{System: loinc, Code: "72166-2", Text: "Tobacco smoking status"}, Effective: "2026-11-01"})

	f.add(t, &normalize.Encounter{Common: common("epic_a", "Encounter", "e1", "p1"), Status: "finished", Class: "AMB",
		Type: normalize.Concept{Text: "Office visit"}, Start: "2026-11-01T09:30:00Z", End: "2026-11-01T10:15:00Z"})
	f.add(t, &normalize.Encounter{Common: common("cerner", "Encounter", "enc-3", "77"), Status: "finished", Class: "EMER",
		Type: normalize.Concept{Text: "Emergency"}, Start: "2025-08-14T22:00:00Z", End: "2025-08-15T04:00:00Z"})
	f.add(t, &normalize.Encounter{Common: common("epic_a", "Encounter", "e0", "p1"), Status: "finished", Class: "AMB",
		Type: normalize.Concept{Text: "Office visit"}, Start: "2024-03-01T09:30:00Z"})

	for _, typ := range []string{"Condition", "MedicationRequest", "AllergyIntolerance", "Observation", "Encounter"} {
		f.state("epic_a", "p1", typ, store.Available, "")
	}
	for _, typ := range []string{"Condition", "MedicationRequest", "Encounter", "Observation?category=laboratory"} {
		f.state("cerner", "77", typ, store.Available, "")
	}
	f.state("cerner", "77", "AllergyIntolerance", store.NotAvailable, "the endpoint does not support AllergyIntolerance search")
	f.state("cerner", "77", "Observation?category=vital-signs", store.Failed, "HTTP 503 from the source")
	return f
}

var asOf = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func build(t *testing.T, f *fakeStore, o summary.Options, members ...summary.Member) *summary.Summary {
	t.Helper()
	o.Now = func() time.Time { return asOf }
	s, err := summary.Build(context.Background(), f, members, o)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}

var (
	epic   = summary.Member{Connection: "epic_a", PatientID: "p1"}
	cerner = summary.Member{Connection: "cerner", PatientID: "77"}
)

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (run with -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestPersonAcrossTwoConnections(t *testing.T) {
	s := build(t, twoSources(t), summary.Options{Person: "psn-0123456789abcdef"}, epic, cerner)
	md := summary.Markdown(s)
	golden(t, "person.md", md)
	golden(t, "person.json", summary.JSON(s))

	// Hand-made expectations, independent of the golden files.
	if n := len(s.Problems.Items); n != 3 {
		t.Fatalf("problems = %d, want 3 (hypertension once, diabetes, appendicitis; the entered-in-error one dropped)", n)
	}
	htn := s.Problems.Items[1]
	if htn.Text != "Hypertension" || len(htn.Sources) != 2 || htn.Onset != "2019-03-01" {
		t.Errorf("hypertension = %+v, want one statement with both sources, the earlier onset", htn)
	}
	if s.Problems.Items[2].Active {
		t.Errorf("last problem %q is active; want active problems first", s.Problems.Items[2].Text)
	}
	if m := s.Medications.Items; len(m) != 2 || len(m[0].Sources) != 2 || m[1].Stale != true || s.Medications.Limited != 1 {
		t.Errorf("medications = %+v (inactive %d), want lisinopril once with two sources, then stale metformin; one inactive", m, s.Medications.Limited)
	}
	var a1c summary.Result
	for _, r := range s.Labs.Items {
		if r.Code.Code == "4548-4" {
			a1c = r
		}
	}
	if a1c.Count != 2 || len(a1c.Last.Sources) != 2 || a1c.Previous == nil || a1c.Previous.Value != "7.4 %" || a1c.Trend != "down" {
		t.Errorf("HbA1c = %+v, want the same result from both sources once, previous 7.4 %%, down", a1c)
	}
	if c := s.Allergies.Coverage; len(c) != 2 || c[0].Connection != "cerner" || c[0].State != summary.StateNotAvailable {
		t.Errorf("allergy coverage = %+v, want cerner not-available", c)
	}
	if c := s.Vitals.Coverage[0]; c.State != summary.StateFailed {
		t.Errorf("cerner vital signs = %+v, want failed", c)
	}
	if !bytes.Contains(md, []byte("Source cerner: not available from this source (the endpoint does not support AllergyIntolerance search).")) {
		t.Errorf("Markdown does not say cerner has no allergy endpoint")
	}
	if bytes.Contains(md, []byte("Ada")) {
		t.Errorf("Markdown holds the patient's name")
	}
}

func TestNotAvailableIsNeverNone(t *testing.T) {
	f := twoSources(t)
	s := build(t, f, summary.Options{}, cerner)
	md := summary.Markdown(s)
	golden(t, "cerner.md", md)
	if s.Allergies.State != summary.StateNotAvailable || len(s.Allergies.Items) != 0 {
		t.Errorf("allergies = %s, want not-available", s.Allergies.State)
	}
	if s.Vitals.State != summary.StateFailed {
		t.Errorf("vital signs = %s, want failed", s.Vitals.State)
	}
	_, allergies, _ := strings.Cut(string(md), "## Allergies\n")
	allergies, _, _ = strings.Cut(allergies, "\n## ")
	if strings.Contains(allergies, "none recorded") {
		t.Errorf("allergies section reads as none recorded:\n%s", allergies)
	}

	// no fetch state at all: not fetched, not none
	f.states = nil
	s = build(t, f, summary.Options{}, cerner)
	if s.Allergies.State != summary.StateNotFetched {
		t.Errorf("without fetch states allergies = %s, want not-fetched", s.Allergies.State)
	}
	// withheld types are not read and say so
	s = build(t, twoSources(t), summary.Options{Withheld: map[string]bool{"Observation": true}}, epic)
	if s.Labs.State != summary.StateWithheld || len(s.Labs.Items) != 0 || s.Vitals.State != summary.StateWithheld {
		t.Errorf("withheld Observation: labs %s (%d items), vitals %s", s.Labs.State, len(s.Labs.Items), s.Vitals.State)
	}
}

func TestFitTokenBudget(t *testing.T) {
	s := build(t, twoSources(t), summary.Options{}, epic, cerner)
	full := summary.Markdown(s)
	// no budget and a generous one change nothing
	if _, out := summary.Fit(s, 0, summary.Markdown); !bytes.Equal(out, full) {
		t.Errorf("Fit without budget changed the output")
	}
	budget := summary.Tokens(full) - 80
	fit, out := summary.Fit(s, budget, summary.Markdown)
	golden(t, "budget.md", out)
	if summary.Tokens(out) > budget || !fit.Budget.Fits {
		t.Errorf("Fit(%d) = %d tokens (fits %v)", budget, summary.Tokens(out), fit.Budget.Fits)
	}
	if len(fit.Encounters.Items) != 0 || fit.Encounters.Omitted != 3 {
		t.Errorf("encounters kept %d, omitted %d; want all 3 dropped first", len(fit.Encounters.Items), fit.Encounters.Omitted)
	}
	if len(fit.Allergies.Items) != 1 || len(fit.Problems.Items) != 3 || len(fit.Medications.Items) != 2 {
		t.Errorf("Fit dropped important statements: %d allergies, %d problems, %d medications", len(fit.Allergies.Items), len(fit.Problems.Items), len(fit.Medications.Items))
	}
	if len(s.Encounters.Items) != 3 {
		t.Errorf("Fit changed its input")
	}
	// deterministic
	if _, again := summary.Fit(s, budget, summary.Markdown); !bytes.Equal(again, out) {
		t.Errorf("Fit is not deterministic")
	}
	// an impossible budget keeps headings and states, says it does not fit
	tiny, out := summary.Fit(s, 10, summary.Markdown)
	if tiny.Budget.Fits || len(tiny.Allergies.Items) != 0 || !bytes.Contains(out, []byte("Source cerner: not available from this source")) {
		t.Errorf("Fit(10): fits %v, %d allergies; want nothing droppable kept, the states kept", tiny.Budget.Fits, len(tiny.Allergies.Items))
	}
	// JSON fits too
	_, js := summary.Fit(s, 600, summary.JSON)
	if summary.Tokens(js) > 600 || !json.Valid(js) {
		t.Errorf("JSON under budget 600: %d tokens, valid %v", summary.Tokens(js), json.Valid(js))
	}
}

func TestStoreErrorEndsBuild(t *testing.T) {
	f := twoSources(t)
	f.fail = "Encounter"
	if _, err := summary.Build(context.Background(), f, []summary.Member{epic}, summary.Options{}); err == nil || strings.Contains(err.Error(), "fire") == false {
		t.Errorf("Build with a failing store = %v, want the error", err)
	}
}
