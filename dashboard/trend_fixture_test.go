package dashboard_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"ehrgate/normalize"
	"ehrgate/store"
)

// The trend patient: known values, normalized from raw FHIR by the real
// normalizer, so that unit conversions are normalize's own.
const (
	trendID      = "p-trend"
	glucoseMgL   = "o-glu-mgl" // glucose in mg/L: no conversion known, shown apart
	trendFetched = "2026-11-22T08:00:00Z"
)

// trendObs is one observation of the trend patient.
type trendObs struct {
	id, category, loinc, display, date string
	value                              float64
	unit, ucum                         string
	interp, refLow, refHigh            string // refLow/refHigh in unit
}

var trendObservations = []trendObs{
	{"o-wt-1", "vital-signs", "29463-7", "Body weight", "2024-03-01T09:00:00Z", 80, "kg", "kg", "", "", ""},
	{"o-wt-2", "vital-signs", "29463-7", "Body weight", "2025-03-01T09:00:00Z", 170, "lb", "[lb_av]", "", "", ""},
	{"o-wt-3", "vital-signs", "29463-7", "Body weight", "2026-03-01T09:00:00Z", 78.5, "kg", "kg", "", "", ""},
	{"o-hr-1", "vital-signs", "8867-4", "Heart rate", "2025-03-01T09:00:00Z", 88, "/min", "/min", "", "", ""},
	{"o-hr-2", "vital-signs", "8867-4", "Heart rate", "2026-03-01T09:00:00Z", 64, "/min", "/min", "", "", ""},
	{"o-glu-1", "laboratory", "2345-7", "Glucose", "2024-06-01T08:00:00Z", 99, "mg/dL", "mg/dL", "N", "70", "99"},
	{"o-glu-2", "laboratory", "2345-7", "Glucose", "2025-06-01T08:00:00Z", 6.1, "mmol/L", "mmol/L", "", "", ""},
	{"o-glu-3", "laboratory", "2345-7", "Glucose", "2026-01-15T08:00:00Z", 140, "mg/dL", "mg/dL", "H", "70", "99"},
	{glucoseMgL, "laboratory", "2345-7", "Glucose", "2026-02-01T08:00:00Z", 1200, "mg/L", "mg/L", "", "", ""},
	{"o-cr-1", "laboratory", "2160-0", "Creatinine", "2025-04-01T08:00:00Z", 1.0, "mg/dL", "mg/dL", "", "0.6", "1.3"},
	{"o-cr-2", "laboratory", "2160-0", "Creatinine", "2026-04-01T08:00:00Z", 1.9, "mg/dL", "mg/dL", "", "0.6", "1.3"},
}

// trendRaw renders one observation as FHIR R4 JSON.
func trendRaw(o trendObs) []byte {
	m := map[string]any{
		"resourceType": "Observation", "id": o.id, "status": "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": o.category}}}},
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": o.loinc, "display": o.display}}},
		"subject":           map[string]any{"reference": "Patient/" + trendID},
		"effectiveDateTime": o.date,
		"valueQuantity":     map[string]any{"value": o.value, "unit": o.unit, "system": "http://unitsofmeasure.org", "code": o.ucum},
	}
	if o.interp != "" {
		m["interpretation"] = []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": o.interp}}}}
	}
	if o.refLow != "" {
		m["referenceRange"] = []any{map[string]any{
			"low":  map[string]any{"value": json.Number(o.refLow), "unit": o.unit},
			"high": map[string]any{"value": json.Number(o.refHigh), "unit": o.unit}}}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// trendFixture is the fixture plus the trend patient, each observation
// normalized from raw JSON and stored with its fetch time.
func trendFixture(t testing.TB) *fakeStore {
	t.Helper()
	f := fixture()
	f.addPatient(connEpic, trendID, normalize.Patient{Name: "Tess Trend", BirthDate: "1970-05-05", Gender: "female", MRN: "MRN-2002"})
	at, _ := time.Parse(time.RFC3339, trendFetched)
	for _, o := range trendObservations {
		n, err := normalize.Normalize(normalize.Ref{Connection: connEpic, Type: "Observation", ID: o.id}, trendRaw(o))
		if err != nil {
			t.Fatalf("normalizing %s: %v", o.id, err)
		}
		f.add(connEpic, "Observation", o.id, trendID, n)
		k := [3]string{connEpic, "Observation", o.id}
		rec := f.recs[k]
		rec.FetchedAt = at
		f.recs[k] = rec
	}
	f.state(connEpic, trendID, "Observation", store.Available, len(trendObservations), fetched, "")
	return f
}

// storedValue is what the store says an observation's plotted value must
// be: its canonical value when normalize converted it, else its number.
func storedValue(t testing.TB, f *fakeStore, id string) (value float64, unit, date string) {
	t.Helper()
	rec, ok := f.recs[[3]string{connEpic, "Observation", id}]
	if !ok {
		t.Fatalf("no stored observation %s", id)
	}
	var o normalize.Observation
	if err := json.Unmarshal(rec.Normalized, &o); err != nil {
		t.Fatal(err)
	}
	if o.Value == nil || o.Value.Number == nil {
		t.Fatalf("stored observation %s has no number", id)
	}
	if c := o.Value.Canonical; c != nil {
		return c.Number, c.Unit, o.Effective
	}
	return *o.Value.Number, o.Value.UnitCode, o.Effective
}

func (o trendObs) String() string { return fmt.Sprintf("%s %v %s", o.id, o.value, o.unit) }
