package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/ehrsim/bulkexport"
	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/store"
	"ehrgate/synth"
)

// recordingSim serves a simulator and records kick-off queries and file
// downloads.
type recordingSim struct {
	h         http.Handler
	mu        sync.Mutex
	kickoffs  []url.Values
	downloads map[string]int // path -> count
}

func newRecordingSim(sim *bulkexport.Server) *recordingSim {
	return &recordingSim{h: sim.Handler(), downloads: map[string]int{}}
}

func (s *recordingSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/$export"):
		s.kickoffs = append(s.kickoffs, r.URL.Query())
	case strings.Contains(r.URL.Path, "/$bulk-file/"):
		s.downloads[r.URL.Path]++
	}
	s.mu.Unlock()
	s.h.ServeHTTP(w, r)
}

func (s *recordingSim) kicks() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.kickoffs)
}

// exportVia runs Export against h with test-friendly options.
func exportVia(t *testing.T, h http.Handler, st ExportStore, req bulk.Request, opts ExportOptions) ExportSummary {
	t.Helper()
	ts := httptest.NewServer(h)
	defer ts.Close()
	c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep, MaxDownloads: 3, Retry: fhir.RetryPolicy{MaxAttempts: 20}})
	if err != nil {
		t.Fatal(err)
	}
	opts.Connection, opts.Sleep, opts.BatchSize = "sim", noSleep, 200
	sum, err := Export(context.Background(), c, st, req, opts)
	if err != nil {
		t.Fatalf("Export(%+v) = %v", req, err)
	}
	return sum
}

// typeOrder is the order in which the simulator plans the output files of
// types: first seen, patient by patient, each patient's types sorted.
func typeOrder(g *synth.Generator, types []string) []string {
	var order []string
	for i := 0; i < g.Patients(); i++ {
		var mine []string
		for _, r := range g.Resources(i) {
			if (len(types) == 0 || slices.Contains(types, r.Type)) && !slices.Contains(order, r.Type) && !slices.Contains(mine, r.Type) {
				mine = append(mine, r.Type)
			}
		}
		slices.Sort(mine)
		order = append(order, mine...)
	}
	return order
}

// countTypes counts the source's resources of the given types (all when
// none).
func countTypes(g *synth.Generator, types ...string) int {
	n := 0
	for i := 0; i < g.Patients(); i++ {
		for _, r := range g.Resources(i) {
			if len(types) == 0 || slices.Contains(types, r.Type) {
				n++
			}
		}
	}
	return n
}

func storedOf(t *testing.T, st ExportStore, typ string) int {
	t.Helper()
	return countOf(t, st.(store.Statter), typ)
}

func countOf(t *testing.T, s store.Statter, typ string) int {
	t.Helper()
	stats, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tc := range stats.Resources {
		if tc.Type == typ || typ == "" {
			n += tc.Count
		}
	}
	return n
}

// TestExportManifestErrorIsIncomplete: a manifest whose error array says
// the server could not generate a file makes the export incomplete for
// that file's type: its _since does not advance (the other types' does),
// the summary says which type and file, and the next incremental export
// asks for that type again from the beginning, in its own job, and ends
// with the whole source stored.
func TestExportManifestErrorIsIncomplete(t *testing.T) {
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	tests := []struct {
		name  string
		types []string
	}{
		{"typed request", []string{"Patient", "Condition", "Observation"}},
		{"request without _type", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			missing := typeOrder(gen, tc.types)[1] // FileSize is large: file 2 is the second type's only file
			now := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
			t1 := now
			sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 100000, RetryAfter: -1,
				Clock: func() time.Time { return now }, Faults: bulkexport.Faults{UngeneratedFile: 2}})
			proxy := newRecordingSim(sim)
			st := openStore(t, t.TempDir())
			req := bulk.Request{Types: tc.types}

			sum := exportVia(t, proxy, st, req, ExportOptions{Incremental: true})
			if sum.Complete || !slices.Equal(sum.IncompleteTypes(), []string{missing}) || sum.ServerErrors != 1 {
				t.Fatalf("first export: complete %v, incomplete %+v, server errors %d; want incomplete for %s only",
					sum.Complete, sum.Incomplete, sum.ServerErrors, missing)
			}
			if is := sum.Incomplete[0]; len(is.Files) != 1 || !strings.Contains(is.Files[0], "/$bulk-file/job1/failed-2") {
				t.Errorf("incomplete %s names files %v, want the manifest's error file", missing, is.Files)
			}
			last, _ := st.LastExports(context.Background(), "sim", "system")
			if _, ok := last[missing]; ok {
				t.Errorf("the _since of %s advanced to %v despite the manifest error", missing, last[missing])
			}
			if !last[""].IsZero() {
				t.Errorf("the request's _since advanced to %v despite the manifest error", last[""])
			}
			for _, typ := range tc.types {
				if typ != missing && !last[typ].Equal(t1) {
					t.Errorf("_since of %s = %v, want %v (it came completely)", typ, last[typ], t1)
				}
			}
			if got := storedOf(t, st, missing); got != 0 {
				t.Fatalf("%d %s stored from a file the server did not generate", got, missing)
			}

			now = t1.Add(24 * time.Hour)
			sum = exportVia(t, proxy, st, req, ExportOptions{Incremental: true})
			if !sum.Complete || len(sum.Errors) != 0 {
				t.Fatalf("second export: complete %v, incomplete %+v, errors %v", sum.Complete, sum.Incomplete, sum.Errors)
			}
			if got, want := storedOf(t, st, ""), countTypes(gen, tc.types...); got != want {
				t.Errorf("store holds %d resources after the second export, want the whole source %d", got, want)
			}
			if got, want := storedOf(t, st, missing), countTypes(gen, missing); got != want {
				t.Errorf("store holds %d %s, want %d", got, missing, want)
			}
			kicks := proxy.kicks()[1:]
			if tc.types == nil {
				if len(kicks) != 1 || kicks[0].Has("_since") {
					t.Errorf("second export kick-offs %v, want one from the beginning", kicks)
				}
				return
			}
			// Typed: the missing type from the beginning, the others from t1.
			if len(kicks) != 2 || sum.Jobs != 2 {
				t.Fatalf("second export kick-offs %v (jobs %d), want two", kicks, sum.Jobs)
			}
			for _, q := range kicks {
				fromStart := q.Get("_type") == missing && !q.Has("_since")
				incremental := !strings.Contains(q.Get("_type"), missing) && q.Get("_since") == t1.Format(time.RFC3339Nano)
				if !fromStart && !incremental {
					t.Errorf("kick-off %v: want _type=%s without _since, or the other types with _since=%s", q, missing, t1.Format(time.RFC3339))
				}
			}
			last, _ = st.LastExports(context.Background(), "sim", "system")
			for _, typ := range tc.types {
				if !last[typ].Equal(now) {
					t.Errorf("_since of %s after the second export = %v, want %v", typ, last[typ], now)
				}
			}
		})
	}
}

// TestExportGoneFile: a file answering 410 Gone is downloaded once, not
// retried; a new export is started for its type only (the old status URL
// has expired too) and the export completes. With re-exports disabled the
// type stays incomplete, and the next run asks for it again.
func TestExportGoneFile(t *testing.T) {
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	types := []string{"Patient", "Observation", "MedicationRequest"}
	tests := []struct {
		name     string
		max      int
		complete bool
	}{
		{"re-exported (default limit)", 0, true},
		{"re-exports disabled", -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 60, RetryAfter: -1,
				Faults: bulkexport.Faults{ExpireFile: 3}})
			proxy := newRecordingSim(sim)
			st := openStore(t, t.TempDir())
			req := bulk.Request{Types: types}
			sum := exportVia(t, proxy, st, req, ExportOptions{Incremental: true, MaxReexports: tc.max})
			proxy.mu.Lock()
			n := proxy.downloads["/fhir/$bulk-file/job1/3.ndjson"]
			proxy.mu.Unlock()
			if n != 1 {
				t.Errorf("the gone file was downloaded %d times, want once (410 is permanent)", n)
			}
			kicks := proxy.kicks()
			if sum.Complete != tc.complete {
				t.Fatalf("complete = %v, want %v (incomplete %+v, errors %+v)", sum.Complete, tc.complete, sum.Incomplete, sum.Errors)
			}
			if tc.complete {
				if len(kicks) != 2 || sum.Reexports != 1 || strings.Contains(kicks[1].Get("_type"), ",") ||
					!slices.Contains(types, kicks[1].Get("_type")) {
					t.Errorf("kick-offs %v, re-exports %d; want a second kick-off for the gone file's type only", kicks, sum.Reexports)
				}
				if len(sum.Errors) != 0 {
					t.Errorf("errors %+v remain after the re-export", sum.Errors)
				}
				if got, want := storedOf(t, st, ""), countTypes(gen, types...); got != want {
					t.Errorf("store holds %d, want %d", got, want)
				}
				return
			}
			if len(kicks) != 1 || len(sum.Errors) != 1 || !sum.Errors[0].Gone || len(sum.Incomplete) != 1 ||
				sum.Incomplete[0].Reason != reasonGone {
				t.Fatalf("kick-offs %d, errors %+v, incomplete %+v; want one kick-off and the gone file's type incomplete",
					len(kicks), sum.Errors, sum.Incomplete)
			}
			goneType := sum.Incomplete[0].Type
			last, _ := st.LastExports(context.Background(), "sim", "system")
			if _, ok := last[goneType]; ok {
				t.Errorf("_since of %s advanced despite its gone file", goneType)
			}
			sum = exportVia(t, proxy, st, req, ExportOptions{Incremental: true, MaxReexports: tc.max})
			if !sum.Complete {
				t.Errorf("next export: incomplete %+v", sum.Incomplete)
			}
			if got, want := storedOf(t, st, ""), countTypes(gen, types...); got != want {
				t.Errorf("store holds %d after the next export, want %d", got, want)
			}
		})
	}
}

// staticGrants is a Grants whose server never grants some types.
type staticGrants struct{ denied []string }

func (g staticGrants) EnsureTypes(_ context.Context, types []string) ([]string, error) {
	var out []string
	for _, t := range types {
		if slices.Contains(g.denied, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// TestExportMissingType: a requested type absent from the output of an
// export from the beginning is incomplete (the next run asks again); absent
// from an incremental export it is complete (nothing changed), unless the
// access token was not granted it.
func TestExportMissingType(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 3})
	now := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	sim := bulkexport.New(bulkexport.Options{Source: gen, RetryAfter: -1, Clock: func() time.Time { return now }})
	st := openStore(t, t.TempDir())
	req := bulk.Request{Types: []string{"Patient", "Device"}} // the simulator holds no Device

	sum := exportVia(t, sim.Handler(), st, req, ExportOptions{Incremental: true})
	if sum.Complete || len(sum.Incomplete) != 1 || sum.Incomplete[0].Type != "Device" || sum.Incomplete[0].Reason != reasonMissing {
		t.Fatalf("first export: complete %v, incomplete %+v; want Device missing", sum.Complete, sum.Incomplete)
	}
	if !slices.Equal(sum.Advanced, []string{"Patient"}) {
		t.Errorf("advanced %v, want [Patient]", sum.Advanced)
	}

	now = now.Add(time.Hour)
	tests := []struct {
		name       string
		grants     Grants
		incomplete []string
		jobs       int
	}{
		{"nothing changed", nil, []string{"Device"}, 2}, // Device from the beginning, Patient incremental
		{"Patient not granted", staticGrants{denied: []string{"Patient"}}, []string{"Device", "Patient"}, 1},
		{"nothing granted", staticGrants{denied: []string{"Patient", "Device"}}, []string{"Device", "Patient"}, 0},
	}
	for _, tc := range tests {
		sum = exportVia(t, sim.Handler(), st, req, ExportOptions{Incremental: true, Grants: tc.grants})
		if got := sum.IncompleteTypes(); !slices.Equal(got, tc.incomplete) || sum.Jobs != tc.jobs || sum.Complete {
			t.Errorf("%s: incomplete %v after %d jobs, want %v after %d", tc.name, sum.Incomplete, sum.Jobs, tc.incomplete, tc.jobs)
		}
	}
	if sum.NotGranted == nil || sum.NotGranted[0] != "Patient" {
		t.Errorf("NotGranted = %v, want [Patient]", sum.NotGranted)
	}
}

func TestIssueTypes(t *testing.T) {
	cands := []string{"Patient", "Observation", "Condition"}
	tests := []struct {
		name  string
		entry string
		issue fhir.OutcomeIssue
		want  []string
	}{
		{"reference server text", "OperationOutcome", fhir.OutcomeIssue{Diagnostics: "Failed to export 2.Observation.ndjson"}, []string{"Observation"}},
		{"expression", "OperationOutcome", fhir.OutcomeIssue{Expression: []string{"Condition.code", "Patient"}}, []string{"Condition", "Patient"}},
		{"details text", "OperationOutcome", fhir.OutcomeIssue{Details: &fhir.CodeableConcept{Text: "Patient export timed out"}}, []string{"Patient"}},
		{"entry typed by the server", "Condition", fhir.OutcomeIssue{Diagnostics: "Observation too"}, []string{"Condition"}},
		{"a word inside another is not a type", "OperationOutcome", fhir.OutcomeIssue{Diagnostics: "PatientObservation failed"}, nil},
		{"nothing named", "OperationOutcome", fhir.OutcomeIssue{Diagnostics: "internal error"}, nil},
		{"type not requested", "OperationOutcome", fhir.OutcomeIssue{Diagnostics: "Failed to export 1.Device.ndjson"}, nil},
	}
	for _, tc := range tests {
		if got := issueTypes(tc.entry, tc.issue, cands); !slices.Equal(got, tc.want) {
			t.Errorf("%s: issueTypes(%q, %+v) = %v, want %v", tc.name, tc.entry, tc.issue, got, tc.want)
		}
	}
}

// TestReadServerErrors: warnings are not failures; an error tied to no
// type, or a line that is not an OperationOutcome, affects every type.
func TestReadServerErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		failed bool
		all    bool
		types  []string
	}{
		{"warnings only", `{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"not-supported","diagnostics":"Observation filter dropped"}]}`, false, false, nil},
		{"error naming a type", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Failed to export 1.Patient.ndjson"}]}`, true, false, []string{"Patient"}},
		{"fatal naming nothing", `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"disk full"}]}`, true, true, nil},
		{"not an OperationOutcome", `{"resourceType":"Patient","id":"x"}`, true, true, nil},
		{"malformed line", `{"resourceType":`, true, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(tc.body + "\n"))
			}))
			defer ts.Close()
			c, _ := bulk.NewClient(ts.URL, bulk.Options{})
			m := &bulk.Manifest{}
			se := readServerErrors(context.Background(), c, m, bulk.OutputFile{Type: "OperationOutcome", URL: ts.URL + "/e.ndjson"},
				[]string{"Patient", "Observation"}, nil)
			var types []string
			for ty := range se.types {
				types = append(types, ty)
			}
			if se.failed() != tc.failed || se.all != tc.all || !slices.Equal(types, tc.types) || se.lines != 1 {
				t.Errorf("readServerErrors = failed %v all %v types %v lines %d; want %v %v %v 1",
					se.failed(), se.all, types, se.lines, tc.failed, tc.all, tc.types)
			}
		})
	}
}

// TestExportToDir writes the files as received and the manifest, stores
// nothing, and re-exports a gone file's type (removing what the first job
// wrote for it).
func TestExportToDir(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 7})
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 50, RetryAfter: -1, Gzip: true,
		Faults: bulkexport.Faults{ExpireFile: 2, TruncateFile: 1}})
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()
	c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum, err := ExportToDir(context.Background(), c, dir, bulk.Request{}, ExportOptions{Options: Options{Sleep: noSleep}})
	if err != nil || !sum.Complete || sum.Reexports != 1 {
		t.Fatalf("ExportToDir = %+v, %v; want complete after one re-export", sum, err)
	}
	for _, name := range []string{"manifest.json", "manifest.reexport-1.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bulk.DecodeManifest(b); err != nil {
			t.Errorf("%s is not a manifest: %v", name, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	lines := map[string]bool{}
	perType := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		typ, _, _ := strings.Cut(filepath.Base(f), ".")
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			h, err := fhir.ParseHeader([]byte(l))
			if err != nil || h.ResourceType != typ {
				t.Fatalf("%s holds a line that is not a %s: %.80s (%v)", f, typ, l, err)
			}
			key := h.ResourceType + "/" + h.ID
			if lines[key] {
				t.Errorf("%s is written twice", key)
			}
			lines[key] = true
			perType[typ]++
		}
	}
	for i := 0; i < gen.Patients(); i++ {
		for _, r := range gen.Resources(i) {
			perType[r.Type]--
		}
	}
	for typ, n := range perType {
		if n != 0 {
			t.Errorf("%s: %+d lines against the source", typ, n)
		}
	}
	if partial, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(partial) != 0 {
		t.Errorf("partial files left: %v", partial)
	}
}

func TestIssueTypesWithoutCandidates(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"Failed to export 3.Encounter.ndjson", []string{"Encounter"}},
		{"OperationOutcome for Immunization", []string{"Immunization"}},
		{"internal error", nil},
	}
	for _, tc := range tests {
		if got := issueTypes("OperationOutcome", fhir.OutcomeIssue{Diagnostics: tc.text}, nil); !slices.Equal(got, tc.want) {
			t.Errorf("issueTypes(%q, any type) = %v, want %v", tc.text, got, tc.want)
		}
	}
}
