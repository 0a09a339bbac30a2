package refresh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

// env is a simulated EHR loaded with synthetic patients, a store and a
// client pointed at the simulator.
type env struct {
	sim    *ehrsim.Server
	srv    *httptest.Server
	store  *sqlite.Store
	client *fhir.Client
}

func newEnv(t testing.TB, patients int, opts ehrsim.Options, keep func(typ string) bool, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	sim := ehrsim.New(opts)
	gen := synth.New(synth.Options{Patients: patients, Seed: 7})
	err := gen.Each(func(typ string, raw json.RawMessage) error {
		if keep != nil && !keep(typ) {
			return nil
		}
		return sim.Load(raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	h := sim.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	st, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client, err := fhir.NewClient(srv.URL+"/fhir", fhir.Options{
		Connection: "sim",
		Retry:      fhir.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, MaxAttempts: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, srv: srv, store: st, client: client}
}

func (e *env) sync(t testing.TB) refresh.Summary {
	t.Helper()
	s, err := refresh.New(e.client, e.store, refresh.Options{Connection: "sim", Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return sum
}

func (e *env) storeCounts(t testing.TB) (map[string]int, int) {
	t.Helper()
	st, err := e.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, tc := range st.Resources {
		out[tc.Type] += tc.Count
	}
	return out, st.Versions
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func TestSyncPullsEverythingAndIsIdempotent(t *testing.T) {
	e := newEnv(t, 12, ehrsim.Options{PageSize: 20}, nil, nil)
	first := e.sync(t)
	want := e.sim.Counts()
	if first.Patients != 12 || first.Errors != 0 || first.Quarantined != 0 {
		t.Fatalf("first sync = %+v; want 12 patients, no errors, nothing quarantined", first)
	}
	for _, typ := range refresh.ChartTypes {
		if first.Resources[typ] == 0 {
			t.Errorf("first sync pulled no %s", typ)
		}
		if first.Resources[typ] != want[typ] {
			t.Errorf("first sync pulled %d %s, simulator serves %d", first.Resources[typ], typ, want[typ])
		}
	}
	got, versions := e.storeCounts(t)
	if total(got) != total(want) || first.New != total(want) {
		t.Errorf("store holds %d resources (new %d), simulator serves %d", total(got), first.New, total(want))
	}

	second := e.sync(t)
	if second.New != 0 || second.Updated != 0 || second.Unchanged != total(want) {
		t.Errorf("second sync = new %d updated %d unchanged %d; want 0, 0, %d", second.New, second.Updated, second.Unchanged, total(want))
	}
	if _, v2 := e.storeCounts(t); v2 != versions {
		t.Errorf("second sync added rows: versions %d -> %d", versions, v2)
	}

	// Fetch state records every chart type for a patient as available.
	pid := e.sim.PatientIDs()[0]
	states, err := e.store.FetchStates(context.Background(), "sim", pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != len(refresh.ChartTypes)-1 {
		t.Errorf("patient %s has %d fetch states, want %d", pid, len(states), len(refresh.ChartTypes)-1)
	}
	for _, s := range states {
		if s.Availability != store.Available || s.FetchedAt.IsZero() {
			t.Errorf("fetch state %+v, want available with a time", s)
		}
	}
}

func TestSyncStoresRawBytesExactly(t *testing.T) {
	e := newEnv(t, 3, ehrsim.Options{}, nil, nil)
	e.sync(t)
	pid := e.sim.PatientIDs()[0]
	resp, err := e.client.Read(context.Background(), "Patient", pid)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.store.Get(context.Background(), "sim", "Patient", pid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(resp.Body), rec.Raw) {
		t.Errorf("stored raw Patient differs from what the server serves:\n got %s\nwant %s", rec.Raw, resp.Body)
	}
	if rec.Patient != nil || len(rec.Normalized) == 0 || rec.PatientID != pid || rec.Source == "" {
		t.Errorf("record = patient %q source %q normalized %d bytes", rec.PatientID, rec.Source, len(rec.Normalized))
	}
}

func TestSyncSurvivesFaults(t *testing.T) {
	e := newEnv(t, 15, ehrsim.Options{PageSize: 10, Faults: ehrsim.Faults{Rate: 0.05, Seed: 3, RetryAfter: 0,
		SlowDelay: 20 * time.Millisecond}}, nil, nil)
	sum := e.sync(t)
	if sum.Errors != 0 {
		t.Errorf("sync under 5%% faults had %d errors, want 0 (all faults are transient)", sum.Errors)
	}
	got, _ := e.storeCounts(t)
	want := e.sim.Counts()
	for typ, n := range want {
		if got[typ] != n {
			t.Errorf("store holds %d %s, simulator serves %d", got[typ], typ, n)
		}
	}
	st := e.sim.Stats()
	injected := int64(0)
	for _, n := range st.Faults {
		injected += n
	}
	if injected == 0 {
		t.Error("the simulator injected no faults; the test proves nothing")
	}
}

func TestMalformedResourcesAreQuarantined(t *testing.T) {
	bad := map[string]bool{}
	malformed := func(typ, id string) bool {
		if typ == "Observation" && strings.HasSuffix(id, "3") && len(bad) < 5 {
			bad[id] = true
			return true
		}
		return bad[id]
	}
	e := newEnv(t, 6, ehrsim.Options{Malformed: malformed}, nil, nil)
	sum := e.sync(t)
	if len(bad) == 0 {
		t.Fatal("no resource was malformed; the test proves nothing")
	}
	if sum.Quarantined != len(bad) || sum.Errors != 0 {
		t.Errorf("sync = quarantined %d errors %d, want %d and 0", sum.Quarantined, sum.Errors, len(bad))
	}
	got, _ := e.storeCounts(t)
	want := e.sim.Counts()
	if got["Observation"] != want["Observation"]-len(bad) || got["Condition"] != want["Condition"] {
		t.Errorf("store holds %d Observations and %d Conditions; want %d and %d", got["Observation"], got["Condition"],
			want["Observation"]-len(bad), want["Condition"])
	}
	items, err := e.store.Quarantined(context.Background(), "sim", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(bad) {
		t.Fatalf("quarantine holds %d items, want %d", len(items), len(bad))
	}
	for _, it := range items {
		if !bad[it.ResourceID] || len(it.Raw) == 0 || !json.Valid(it.Raw) || it.Reason == "" || it.Source == "" {
			t.Errorf("quarantine item %+v: want a malformed id with raw payload, reason and source", it.ResourceID)
		}
		if h, _ := fhir.ParseHeader(it.Raw); h.ID != it.ResourceID {
			t.Errorf("quarantined raw payload is not the resource %s", it.ResourceID)
		}
	}
}

// withoutType hides a resource type: the CapabilityStatement omits it and
// searches for it answer 400 not-supported, as many EHRs do.
func withoutType(typ string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/metadata"):
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				var cs map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &cs); err != nil {
					panic(err)
				}
				for _, rest := range cs["rest"].([]any) {
					rm := rest.(map[string]any)
					var kept []any
					for _, res := range rm["resource"].([]any) {
						if res.(map[string]any)["type"] != typ {
							kept = append(kept, res)
						}
					}
					rm["resource"] = kept
				}
				w.Header().Set("Content-Type", "application/fhir+json")
				_ = json.NewEncoder(w).Encode(cs)
			case strings.HasSuffix(r.URL.Path, "/"+typ):
				fhir.WriteOutcome(w, http.StatusBadRequest, "error", "not-supported", "unsupported resource type")
			default:
				h.ServeHTTP(w, r)
			}
		})
	}
}

func TestUnsupportedTypeIsNotAvailable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hideInCap bool
	}{{"absent from CapabilityStatement", true}, {"search answers not-supported", false}} {
		t.Run(tc.name, func(t *testing.T) {
			wrap := withoutType("DocumentReference")
			if !tc.hideInCap {
				inner := wrap
				wrap = func(h http.Handler) http.Handler {
					hidden := inner(h)
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if strings.HasSuffix(r.URL.Path, "/metadata") {
							h.ServeHTTP(w, r)
							return
						}
						hidden.ServeHTTP(w, r)
					})
				}
			}
			e := newEnv(t, 4, ehrsim.Options{}, nil, wrap)
			sum := e.sync(t)
			if sum.Errors != 0 || sum.Resources["DocumentReference"] != 0 || sum.Resources["Condition"] == 0 {
				t.Errorf("sync = %+v; want no errors, no DocumentReference, the rest pulled", sum)
			}
			states, _ := e.store.FetchStates(context.Background(), "sim", e.sim.PatientIDs()[0])
			found := false
			for _, s := range states {
				if s.Type == "DocumentReference" {
					found = true
					if s.Availability != store.NotAvailable || s.Detail == "" {
						t.Errorf("DocumentReference state = %+v, want not_available with a reason", s)
					}
				}
			}
			if !found {
				t.Error("no fetch state recorded for DocumentReference")
			}
		})
	}
}

func TestFailedFetchIsCountedAndRecorded(t *testing.T) {
	failProcedures := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/Procedure") {
				fhir.WriteOutcome(w, http.StatusForbidden, "error", "forbidden", "denied")
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, 3, ehrsim.Options{}, nil, failProcedures)
	sum := e.sync(t)
	if sum.Errors != 3 {
		t.Errorf("sync errors = %d, want 3 (one failed Procedure fetch per patient)", sum.Errors)
	}
	states, _ := e.store.FetchStates(context.Background(), "sim", e.sim.PatientIDs()[1])
	for _, s := range states {
		if s.Type == "Procedure" && (s.Availability != store.Failed || !strings.Contains(s.Detail, "403")) {
			t.Errorf("Procedure state = %+v, want error mentioning HTTP 403", s)
		}
	}
}

func TestPatientRefresh(t *testing.T) {
	e := newEnv(t, 5, ehrsim.Options{}, nil, nil)
	s, _ := refresh.New(e.client, e.store, refresh.Options{Connection: "sim"})
	pid := e.sim.PatientIDs()[2]
	sum, err := s.Patient(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resources["Patient"] != 1 || sum.New == 0 {
		t.Errorf("Patient refresh = %+v, want the patient and their chart", sum)
	}
	got, _ := e.storeCounts(t)
	if got["Patient"] != 1 {
		t.Errorf("store holds %d patients after a one-patient refresh, want 1", got["Patient"])
	}
}

func TestCancelledSyncStops(t *testing.T) {
	e := newEnv(t, 10, ehrsim.Options{Faults: ehrsim.Faults{Rate: 1, Kinds: []ehrsim.FaultKind{ehrsim.FaultSlow}, SlowDelay: time.Second}}, nil, nil)
	s, _ := refresh.New(e.client, e.store, refresh.Options{Connection: "sim"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Run(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run with a cancelled context = %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancelled Run took %s", time.Since(start))
	}
}

// categoryPlanner fans Observation searches out over categories, with a
// deliberately overlapping catch-all query, like an adapter for an EHR that
// requires a category would (without the catch-all).
type categoryPlanner struct{}

func (categoryPlanner) Plan(typ, patient string) ([]*fhir.Query, string) {
	if typ == "DocumentReference" {
		return nil, "Documents are switched off for this site."
	}
	if typ != "Observation" {
		return []*fhir.Query{fhir.NewQuery().Patient(patient)}, ""
	}
	return []*fhir.Query{
		fhir.NewQuery().Patient(patient).Add("category", "vital-signs"),
		fhir.NewQuery().Patient(patient).Add("category", "laboratory"),
		fhir.NewQuery().Patient(patient),
	}, ""
}

func TestPlannerFanOutCountsEachResourceOnce(t *testing.T) {
	e := newEnv(t, 5, ehrsim.Options{PageSize: 7}, nil, nil)
	s, _ := refresh.New(e.client, e.store, refresh.Options{Connection: "sim", Planner: categoryPlanner{}})
	sum, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := e.sim.Counts()
	if sum.Resources["Observation"] != want["Observation"] || sum.New != total(want)-want["DocumentReference"] {
		t.Errorf("fan-out sync = %d Observations, %d new; want %d and %d", sum.Resources["Observation"], sum.New,
			want["Observation"], total(want)-want["DocumentReference"])
	}
	states, _ := e.store.FetchStates(context.Background(), "sim", e.sim.PatientIDs()[0])
	for _, st := range states {
		if st.Type == "DocumentReference" && (st.Availability != store.NotAvailable || !strings.Contains(st.Detail, "switched off")) {
			t.Errorf("DocumentReference state = %+v, want not available with the planner's reason", st)
		}
		if st.Type == "Observation" {
			n := 0
			for _, ty := range []string{"Observation"} {
				recs, _ := e.store.ListByPatient(context.Background(), "sim", e.sim.PatientIDs()[0], ty)
				n = len(recs)
			}
			if st.Count != n {
				t.Errorf("Observation fetch state count = %d, store holds %d", st.Count, n)
			}
		}
	}
}

// A resumed run skips what Options.Done says an earlier attempt fetched,
// counts it, and fetches the rest.
func TestSyncSkipsWhatAResumedRunFetched(t *testing.T) {
	var searches sync.Map // "type?patient" -> count
	e := newEnv(t, 6, ehrsim.Options{}, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Query().Get("patient"); p != "" {
				n, _ := searches.LoadOrStore(path.Base(r.URL.Path)+"?"+p, new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	ids := e.sim.PatientIDs()
	doneFor := map[string]bool{ids[0]: true, ids[1]: true}
	s, err := refresh.New(e.client, e.store, refresh.Options{Connection: "sim", Workers: 4,
		Done: func(_ context.Context, patient, typ string) bool { return doneFor[patient] }})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	perPatient := len(refresh.ChartTypes) - 1
	if sum.Resumed != 2*perPatient {
		t.Errorf("Resumed = %d, want %d (two patients' types)", sum.Resumed, 2*perPatient)
	}
	searches.Range(func(k, v any) bool {
		_, p, _ := strings.Cut(k.(string), "?")
		if doneFor[p] {
			t.Errorf("%s was fetched again although done", k)
		}
		return true
	})
	for _, p := range ids[2:] {
		if _, ok := searches.Load("Condition?" + p); !ok {
			t.Errorf("patient %s's Condition was not fetched", p)
		}
	}
}
