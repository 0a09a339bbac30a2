package dashboard_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"ehrgate/dashboard"
	"ehrgate/normalize"
	"ehrgate/store"
)

// fakeStore is a map-backed dashboard.Reader. Its fail field makes a named
// method return an error whose text must never reach a page.
type fakeStore struct {
	mu     sync.Mutex
	recs   map[[3]string]store.Record // connection, type, id
	states []store.FetchState
	fail   map[string]bool // method name, or "ListByPatient:Type"
}

// secretErr is what failing fake methods return; pages must not show it.
const secretErr = "pq: password=hunter2 connection refused"

func newFakeStore() *fakeStore {
	return &fakeStore{recs: map[[3]string]store.Record{}, fail: map[string]bool{}}
}

func (f *fakeStore) err(method string) error {
	if f.fail[method] {
		return fmt.Errorf("%s: %s", method, secretErr)
	}
	return nil
}

func (f *fakeStore) Get(_ context.Context, connection, typ, id string) (store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("Get"); err != nil {
		return store.Record{}, err
	}
	rec, ok := f.recs[[3]string{connection, typ, id}]
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	return rec, nil
}

func (f *fakeStore) ListByPatient(_ context.Context, connection, patientID, typ string) ([]store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("ListByPatient:" + typ); err != nil {
		return nil, err
	}
	var out []store.Record
	for k, rec := range f.recs {
		if k[0] == connection && k[1] == typ && rec.PatientID == patientID {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeStore) SearchPatients(_ context.Context, q store.PatientQuery) ([]store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("SearchPatients"); err != nil {
		return nil, err
	}
	text := strings.ToLower(q.Text)
	var out []store.Record
	for k, rec := range f.recs {
		if k[1] != "Patient" || rec.Patient == nil || (q.Connection != "" && k[0] != q.Connection) {
			continue
		}
		if q.BirthDate != "" && rec.Patient.BirthDate != q.BirthDate {
			continue
		}
		if text != "" && !slices.ContainsFunc(append(slices.Clone(rec.Patient.Names), rec.Patient.MRNs...), func(s string) bool {
			return strings.Contains(strings.ToLower(s), text)
		}) {
			continue
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b store.Record) int {
		return cmp.Or(strings.Compare(a.Connection, b.Connection), strings.Compare(a.ID, b.ID))
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (f *fakeStore) FetchStates(_ context.Context, connection, patientID string) ([]store.FetchState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("FetchStates"); err != nil {
		return nil, err
	}
	var out []store.FetchState
	for _, s := range f.states {
		if s.Connection == connection && s.PatientID == patientID {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeStore) Stats(context.Context) (store.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("Stats"); err != nil {
		return store.Stats{}, err
	}
	counts := map[[2]string]int{}
	for k := range f.recs {
		counts[[2]string{k[0], k[1]}]++
	}
	var st store.Stats
	for k, n := range counts {
		st.Resources = append(st.Resources, store.TypeCount{Connection: k[0], Type: k[1], Count: n})
		st.Versions += n
	}
	st.Quarantined = 2
	return st, nil
}

// addPatient stores a Patient with its search keys.
func (f *fakeStore) addPatient(conn, id string, p normalize.Patient) {
	p.Source = normalize.Ref{Connection: conn, Type: "Patient", ID: id}
	var mrns []string
	if p.MRN != "" {
		mrns = []string{p.MRN}
	}
	f.recs[[3]string{conn, "Patient", id}] = store.Record{
		Key:        store.Key{Connection: conn, Type: "Patient", ID: id, VersionID: "1"},
		PatientID:  id,
		Normalized: mustJSON(p),
		Patient:    &store.PatientKeys{Names: []string{p.Name}, MRNs: mrns, BirthDate: p.BirthDate},
	}
}

// add stores one normalized resource of a patient.
func (f *fakeStore) add(conn, typ, id, patient string, v any) {
	f.recs[[3]string{conn, typ, id}] = store.Record{
		Key:        store.Key{Connection: conn, Type: typ, ID: id, VersionID: "1"},
		PatientID:  patient,
		Normalized: mustJSON(v),
	}
}

// state records a fetch state.
func (f *fakeStore) state(conn, patient, typ string, a store.Availability, count int, at time.Time, detail string) {
	f.states = append(f.states, store.FetchState{Connection: conn, PatientID: patient, Type: typ,
		Availability: a, Count: count, FetchedAt: at, Detail: detail})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func ptr[T any](v T) *T { return &v }

// The fixture's fixed times.
var (
	now     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fetched = now.Add(-2 * time.Hour)
)

// Fixture patients.
const (
	connEpic   = "sim-epic"
	connCerner = "sim-cerner"
	adaID      = "p-ada"
	evilName   = `<script>alert("x")</script> Mallory`
)

// fixture returns a store with three patients; Ada Lovelace has a full
// chart exercising every section state.
func fixture() *fakeStore {
	f := newFakeStore()
	f.addPatient(connEpic, adaID, normalize.Patient{Name: "Ada Lovelace", Family: "Lovelace", Given: []string{"Ada"},
		BirthDate: "1980-12-10", Gender: "female", MRN: "MRN-1001", Language: "English"})
	f.addPatient(connCerner, "g-7", normalize.Patient{Name: "Grace Hopper", BirthDate: "1906-12-09", Gender: "female", MRN: "C-42"})
	f.addPatient(connEpic, "evil", normalize.Patient{Name: evilName, BirthDate: "1990-01-01", MRN: "MRN-666"})

	c := normalize.Common{PatientID: adaID}
	f.add(connEpic, "Condition", "c1", adaID, normalize.Condition{Common: c, Active: true, ClinicalStatus: "active",
		Code:  normalize.Concept{System: "http://snomed.info/sct", Code: "38341003", Display: "Hypertensive disorder", Text: "Essential hypertension"},
		Onset: "2019-04-01"})
	f.add(connEpic, "Condition", "c2", adaID, normalize.Condition{Common: c, Active: false, ClinicalStatus: "resolved",
		Code: normalize.Concept{Text: "Acute bronchitis"}, Onset: "2023-01-05"})
	f.state(connEpic, adaID, "Condition", store.Available, 2, fetched, "")

	f.add(connEpic, "MedicationRequest", "m1", adaID, normalize.MedicationRequest{Common: c, Active: true, Status: "active",
		Medication: normalize.Concept{System: "http://www.nlm.nih.gov/research/umls/rxnorm", Code: "314076", Text: "Lisinopril 10 mg tablet"},
		Dosage:     "1 tablet by mouth daily", AuthoredOn: "2024-02-01"})
	f.state(connEpic, adaID, "MedicationRequest", store.Available, 1, fetched, "")

	f.state(connEpic, adaID, "AllergyIntolerance", store.Available, 0, fetched, "")

	f.add(connEpic, "Observation", "o-bp-old", adaID, normalize.Observation{Common: c, Category: []string{"vital-signs"},
		Code: normalize.Concept{System: "http://loinc.org", Code: "85354-9", Display: "Blood pressure panel"}, Effective: "2026-01-10T09:00:00Z",
		Components: []normalize.Component{
			{Code: normalize.Concept{Code: "8480-6"}, Value: normalize.Value{Kind: "quantity", Number: ptr(150.0), UnitCode: "mm[Hg]"}},
			{Code: normalize.Concept{Code: "8462-4"}, Value: normalize.Value{Kind: "quantity", Number: ptr(95.0), UnitCode: "mm[Hg]"}},
		}})
	f.add(connEpic, "Observation", "o-bp", adaID, normalize.Observation{Common: c, Category: []string{"vital-signs"},
		Code: normalize.Concept{System: "http://loinc.org", Code: "85354-9", Display: "Blood pressure panel"}, Effective: "2026-11-20T09:30:00Z",
		Components: []normalize.Component{
			{Code: normalize.Concept{Code: "8480-6"}, Value: normalize.Value{Kind: "quantity", Number: ptr(120.0), UnitCode: "mm[Hg]"}},
			{Code: normalize.Concept{Code: "8462-4"}, Value: normalize.Value{Kind: "quantity", Number: ptr(80.0), UnitCode: "mm[Hg]"}},
		}})
	f.add(connEpic, "Observation", "o-hr", adaID, normalize.Observation{Common: c, Category: []string{"vital-signs"},
		Code: normalize.Concept{System: "http://loinc.org", Code: "8867-4", Display: "Heart rate"}, Effective: "2026-11-20T09:30:00Z",
		Value: &normalize.Value{Kind: "quantity", Number: ptr(72.0), Unit: "/min"}})
	f.add(connEpic, "Observation", "o-a1c", adaID, normalize.Observation{Common: c, Category: []string{"laboratory"},
		Code: normalize.Concept{System: "http://loinc.org", Code: "4548-4", Display: "Hemoglobin A1c/Hemoglobin.total in Blood"}, Effective: "2026-11-02T08:00:00Z",
		Value: &normalize.Value{Kind: "quantity", Number: ptr(7.1), Unit: "%"}, Interpretation: "H", ReferenceRange: "4.0–5.6 %"})
	f.add(connEpic, "Observation", "o-hgb", adaID, normalize.Observation{Common: c, Category: []string{"laboratory"},
		Code: normalize.Concept{System: "http://loinc.org", Code: "718-7", Display: "Hemoglobin"}, Effective: "2026-10-02T08:00:00Z",
		Value: &normalize.Value{Kind: "quantity", Number: ptr(13.2), Unit: "g/dL"}, Interpretation: "N", ReferenceRange: "12.0–16.0 g/dL"})
	f.state(connEpic, adaID, "Observation", store.Available, 5, fetched, "")

	f.add(connEpic, "Encounter", "e1", adaID, normalize.Encounter{Common: c, Status: "finished", Class: "AMB",
		Type: normalize.Concept{Text: "Office visit"}, Start: "2026-11-20T09:00:00Z", End: "2026-11-20T09:40:00Z"})
	f.state(connEpic, adaID, "Encounter", store.Available, 1, fetched, "")

	f.state(connEpic, adaID, "Immunization", store.NotAvailable, 0, fetched,
		"This EHR does not expose immunizations through its FHIR API.")
	f.state(connEpic, adaID, "Procedure", store.Failed, 0, fetched,
		"The EHR answered 503 Service Unavailable.")

	f.add(connEpic, "DiagnosticReport", "r1", adaID, normalize.DiagnosticReport{Common: c, Status: "final",
		Code: normalize.Concept{Text: "Chest X-ray"}, Effective: "2026-06-01", NarrativeOnly: true, Conclusion: "No acute findings."})
	f.state(connEpic, adaID, "DiagnosticReport", store.Available, 1, fetched, "")
	// DocumentReference: no fetch state at all.
	return f
}

// newDashboard serves the fixture with a fixed clock.
func newDashboard(r dashboard.Reader) *dashboard.Dashboard {
	return dashboard.New(r, dashboard.Options{
		Title: "ehrgate",
		Clock: func() time.Time { return now },
		Status: func(context.Context) []dashboard.ConnectionStatus {
			return []dashboard.ConnectionStatus{
				{Name: connEpic, Vendor: "epic", BaseURL: "https://ehrsim.local/epic/api/FHIR/R4", LastSync: fetched, State: "ok"},
				{Name: connCerner, Vendor: "oracle", BaseURL: "https://ehrsim.local/cerner/r4", State: "needs re-authorization",
					Detail: "The refresh token expired; an administrator must sign in again."},
			}
		},
	})
}

var _ dashboard.Reader = (*fakeStore)(nil)
