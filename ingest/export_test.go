package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/ehrsim/bulkexport"
	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

const simPatients = 6

func sourceTotal(g *synth.Generator) (total int, perPatient []int) {
	for i := 0; i < g.Patients(); i++ {
		n := len(g.Resources(i))
		perPatient = append(perPatient, n)
		total += n
	}
	return total, perPatient
}

type reauth struct{ invalidated atomic.Int64 }

func (a *reauth) Authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer fresh")
	return nil
}

func (a *reauth) Invalidate(context.Context, *http.Request) error {
	a.invalidated.Add(1)
	return nil
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// lastExport is the stored _since of a type ("" = exports without _type) of
// connection "sim".
func lastExport(st ExportStore, scope, typ string) (time.Time, error) {
	m, err := st.LastExports(context.Background(), "sim", scope)
	return m[typ], err
}

func runExport(t *testing.T, sim *bulkexport.Server, st ExportStore, req bulk.Request, incremental bool, auth fhir.Authorizer) (ExportSummary, error) {
	t.Helper()
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()
	c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep, Authorizer: auth, MaxDownloads: 3,
		Retry: fhir.RetryPolicy{MaxAttempts: 20}})
	if err != nil {
		t.Fatal(err)
	}
	return Export(context.Background(), c, st, req, ExportOptions{Incremental: incremental,
		Options: Options{Connection: "sim", Sleep: noSleep, BatchSize: 200}})
}

// TestExportFaultKnobs runs a whole export against each of the simulator's
// fault knobs and checks the store ends with exactly the source.
func TestExportFaultKnobs(t *testing.T) {
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	want, _ := sourceTotal(gen)
	tests := []struct {
		name   string
		opts   bulkexport.Options
		faults int64 // injected faults expected (-1 = not checked)
	}{
		{"none", bulkexport.Options{}, 0},
		{"slow status", bulkexport.Options{Faults: bulkexport.Faults{SlowStatus: 30 * time.Millisecond}}, 0},
		{"429 on status polls", bulkexport.Options{Faults: bulkexport.Faults{StatusThrottle: 3}}, 3},
		{"transient 5xx on one file", bulkexport.Options{Faults: bulkexport.Faults{FileError: 2}}, 1},
		{"truncated file", bulkexport.Options{Faults: bulkexport.Faults{TruncateFile: 3}}, 1},
		{"token expires before download", bulkexport.Options{Faults: bulkexport.Faults{ExpireToken: true}}, 1},
		{"one download at a time", bulkexport.Options{Faults: bulkexport.Faults{MaxConcurrentDownloads: 1, ThrottleRetryAfter: -1}}, -1},
		{"thousands of tiny files, gzip", bulkexport.Options{FileSize: 7, Gzip: true}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Source = gen
			if tc.opts.FileSize == 0 {
				tc.opts.FileSize = 150
			}
			tc.opts.Authorize = func(r *http.Request) error {
				if r.Header.Get("Authorization") != "Bearer fresh" {
					return errors.New("no token")
				}
				return nil
			}
			sim := bulkexport.New(tc.opts)
			st := openStore(t, t.TempDir())
			auth := &reauth{}
			sum, err := runExport(t, sim, st, bulk.Request{}, false, auth)
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			if len(sum.Errors) != 0 || sum.Quarantined != 0 {
				t.Fatalf("Export errors %v, quarantined %d", sum.Errors, sum.Quarantined)
			}
			cur, vers, _ := total(t, st)
			if cur != want || vers != want || sum.New != want {
				t.Errorf("store holds %d current / %d versions (new %d), want %d", cur, vers, sum.New, want)
			}
			stats := sim.Stats()
			if tc.faults >= 0 && stats.Faults != tc.faults {
				t.Errorf("faults injected = %d, want %d", stats.Faults, tc.faults)
			}
			if stats.Deletes != 1 {
				t.Errorf("job deletes = %d, want 1 (job deleted when done)", stats.Deletes)
			}
			if tc.opts.Faults.ExpireToken && auth.invalidated.Load() != 1 {
				t.Errorf("re-authorizations = %d, want 1", auth.invalidated.Load())
			}
			if tc.opts.Faults.MaxConcurrentDownloads == 1 && stats.Throttled == 0 {
				t.Errorf("no download was throttled; the knob did not bite")
			}
			last, _ := lastExport(st, "system", "")
			if !last.Equal(sum.TransactionTime) || last.IsZero() {
				t.Errorf("LastExport = %v, want the manifest's transactionTime %v", last, sum.TransactionTime)
			}
		})
	}
}

// TestExportIncremental exports everything, then with _since taken from the
// store fetches only the patients changed since and applies deletions.
func TestExportIncremental(t *testing.T) {
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	want, per := sourceTotal(gen)
	st := openStore(t, t.TempDir())
	t1 := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	first := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 100, Clock: func() time.Time { return t1 }})
	sum, err := runExport(t, first, st, bulk.Request{}, true, nil)
	if err != nil || sum.New != want || !sum.Since.IsZero() {
		t.Fatalf("first export = new %d since %v, %v; want %d from the beginning", sum.New, sum.Since, err, want)
	}

	changed := func(i int) bool { return i%4 == 1 }
	wantChanged := 0
	for i, n := range per {
		if changed(i) {
			wantChanged += n
		}
	}
	deleted := gen.Resources(0)[1] // an Encounter of patient 0, not changed
	h, _ := fhir.ParseHeader(deleted.JSON)
	t2 := t1.Add(24 * time.Hour)
	second := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 100, Clock: func() time.Time { return t2 },
		Updated: changed, UpdatedAt: t1.Add(time.Hour), Deleted: []string{h.ResourceType + "/" + h.ID}})
	sum, err = runExport(t, second, st, bulk.Request{}, true, nil)
	if err != nil {
		t.Fatalf("second export: %v", err)
	}
	if !sum.Since.Equal(t1) {
		t.Errorf("second export _since = %v, want the first transactionTime %v", sum.Since, t1)
	}
	if sum.Lines != int64(wantChanged)+1 || sum.Updated != wantChanged || sum.New != 0 || sum.Unchanged != 0 || sum.Deleted != 1 {
		t.Errorf("second export = lines %d updated %d new %d unchanged %d deleted %d; want %d lines, %d updated, 1 deleted",
			sum.Lines, sum.Updated, sum.New, sum.Unchanged, sum.Deleted, wantChanged+1, wantChanged)
	}
	cur, vers, _ := total(t, st)
	if cur != want-1 || vers != want+wantChanged {
		t.Errorf("store holds %d current / %d versions, want %d / %d", cur, vers, want-1, want+wantChanged)
	}
	if _, err := st.Tombstone(context.Background(), "sim", h.ResourceType, h.ID); err != nil {
		t.Errorf("no tombstone for the deleted %s: %v", h.ResourceType, err)
	}

	// Nothing changed since the second export.
	t3 := t2.Add(time.Hour)
	third := bulkexport.New(bulkexport.Options{Source: gen, Clock: func() time.Time { return t3 }, Updated: changed, UpdatedAt: t1.Add(time.Hour)})
	sum, err = runExport(t, third, st, bulk.Request{}, true, nil)
	if err != nil || sum.Lines != 0 || !sum.Since.Equal(t2) {
		t.Errorf("third export = %d lines since %v, %v; want 0 since %v", sum.Lines, sum.Since, err, t2)
	}
	// Group exports keep their own state.
	if last, _ := lastExport(st, "group/all", ""); !last.IsZero() {
		t.Errorf("group scope has state %v before any group export", last)
	}
}

func TestExportGroupAndTypes(t *testing.T) {
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	sim := bulkexport.New(bulkexport.Options{Source: gen, Groups: map[string][]int{"g1": {2, 5}}})
	st := openStore(t, t.TempDir())
	sum, err := runExport(t, sim, st, bulk.Request{Group: "g1", Types: []string{"Patient", "Condition"}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, i := range []int{2, 5} {
		for _, r := range gen.Resources(i) {
			if r.Type == "Patient" || r.Type == "Condition" {
				want++
			}
		}
	}
	if sum.New != want || sum.Scope != "group/g1" {
		t.Errorf("group export = new %d scope %q, want %d group/g1", sum.New, sum.Scope, want)
	}
}

func TestExportCancelDeletesJob(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 3})
	sim := bulkexport.New(bulkexport.Options{Source: gen, Polls: 1000, RetryAfter: 10 * time.Millisecond})
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()
	c, _ := bulk.NewClient(ts.URL+"/fhir", bulk.Options{})
	st := openStore(t, filepath.Join(t.TempDir(), "d"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Export(ctx, c, st, bulk.Request{}, ExportOptions{Options: Options{Connection: "sim"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Export = %v, want deadline exceeded", err)
	}
	if sim.Stats().Deletes != 1 {
		t.Errorf("job deletes = %d, want 1 (cancelled on the server)", sim.Stats().Deletes)
	}
	if last, _ := lastExport(st, "system", ""); !last.IsZero() {
		t.Errorf("a cancelled export stored transactionTime %v", last)
	}
	if _, u, _, _ := st.PendingExport(context.Background(), "sim", "system"); u != "" {
		t.Errorf("the cancelled job %q is still recorded as pending", u)
	}
}

// isLab reports whether a synthetic resource is an Observation of category
// laboratory, read independently of the simulator's filter code.
func isLab(t *testing.T, raw []byte) bool {
	t.Helper()
	var o struct {
		ResourceType string `json:"resourceType"`
		Category     []struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"category"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.Category {
		for _, cd := range c.Coding {
			if cd.System == fhir.SystemObsCat && cd.Code == "laboratory" {
				return o.ResourceType == "Observation"
			}
		}
	}
	return false
}

// TestExportTypeFilter exports with _typeFilter and checks the store holds
// exactly the matching Observations (and every other type whole).
func TestExportTypeFilter(t *testing.T) {
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	wantLab, allObs := map[string]bool{}, 0
	wantOther := 0
	for i := 0; i < gen.Patients(); i++ {
		for _, r := range gen.Resources(i) {
			switch {
			case r.Type != "Observation":
				wantOther++
			case isLab(t, r.JSON):
				h, _ := fhir.ParseHeader(r.JSON)
				wantLab[h.ID] = true
				allObs++
			default:
				allObs++
			}
		}
	}
	if len(wantLab) == 0 || len(wantLab) == allObs {
		t.Fatalf("%d laboratory Observations of %d: the filter would not select a strict subset", len(wantLab), allObs)
	}
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 100})
	st := openStore(t, t.TempDir())
	sum, err := runExport(t, sim, st, bulk.Request{TypeFilters: []string{"Observation?category=laboratory"}}, false, nil)
	if err != nil || len(sum.Errors) != 0 || sum.ServerErrors != 0 {
		t.Fatalf("Export = %+v, %v", sum, err)
	}
	gotObs, gotOther := 0, 0
	err = st.ScanCurrent(context.Background(), func(r store.Record) error {
		if r.Type != "Observation" {
			gotOther++
			return nil
		}
		gotObs++
		if !wantLab[r.ID] || !isLab(t, r.Raw) {
			t.Errorf("stored Observation %s is not a laboratory one", r.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotObs != len(wantLab) || gotOther != wantOther {
		t.Errorf("stored %d Observations and %d others, want the %d laboratory ones (of %d) and %d others",
			gotObs, gotOther, len(wantLab), allObs, wantOther)
	}
}

// countingSim wraps the simulator: it counts kick-offs and calls hooks on
// status polls and file downloads.
type countingSim struct {
	h        http.Handler
	kickoffs atomic.Int64
	polls    atomic.Int64
	files    atomic.Int64
	onPoll   func(n int64, r *http.Request) // nil: none
	onFile   func(n int64) bool             // true: answer 503 instead
}

func (s *countingSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/$export"):
		s.kickoffs.Add(1)
	case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/$bulk-status/"):
		if n := s.polls.Add(1); s.onPoll != nil {
			s.onPoll(n, r)
		}
	case strings.Contains(r.URL.Path, "/$bulk-file/"):
		if n := s.files.Add(1); s.onFile != nil && s.onFile(n) {
			fhir.WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "going away")
			return
		}
	}
	s.h.ServeHTTP(w, r)
}

const exportChildEnv = "EHRGATE_EXPORT_KILL_CHILD"

// TestExportKillResume runs ehrgate's export in a child process, SIGKILLs it
// (after the kick-off, or in the middle of the downloads), then runs the
// same export here: it must poll the job the child kicked off (no second
// kick-off) and end with exactly the source in the store.
func TestExportKillResume(t *testing.T) {
	if os.Getenv(exportChildEnv) != "" {
		return
	}
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	gen := synth.New(synth.Options{Patients: simPatients, Seed: 3})
	want, _ := sourceTotal(gen)
	tests := []struct {
		name   string
		killAt string // "poll": the first status poll; "file": the third file download
	}{
		{"killed after kick-off", "poll"},
		{"killed while downloading", "file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 40, RetryAfter: 10 * time.Millisecond})
			dir := t.TempDir()
			var (
				mu       sync.Mutex
				cmd      *exec.Cmd
				killed   = make(chan struct{})
				once     sync.Once
				recorded string // the child's pending job, seen at the first poll (under mu)
			)
			kill := func() {
				once.Do(func() {
					mu.Lock()
					_ = cmd.Process.Kill()
					mu.Unlock()
					close(killed)
				})
			}
			proxy := &countingSim{h: sim.Handler()}
			proxy.onPoll = func(n int64, r *http.Request) {
				if n != 1 {
					return
				}
				// The job must be in the store before the first poll.
				st, err := sqlite.OpenDir(context.Background(), filepath.Join(dir, "data"))
				if err == nil {
					_, u, _, _ := st.PendingExport(context.Background(), "sim", "system")
					st.Close()
					mu.Lock()
					recorded = u
					mu.Unlock()
				}
				if tc.killAt == "poll" {
					kill()
				}
			}
			proxy.onFile = func(n int64) bool {
				if tc.killAt == "file" && n == 3 {
					kill()
					return true
				}
				return false
			}
			ts := httptest.NewServer(proxy)
			defer ts.Close()

			mu.Lock()
			cmd = exec.Command(os.Args[0], "-test.run=^TestExportKillResumeChild$", "-test.v")
			cmd.Env = append(os.Environ(), exportChildEnv+"="+dir+"|"+ts.URL)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			mu.Unlock()
			select {
			case <-killed:
			case <-time.After(60 * time.Second):
				kill()
				t.Fatalf("the child was never killed:\n%s", out.String())
			}
			_ = cmd.Wait()
			if strings.Contains(out.String(), "CHILD DONE") {
				t.Fatalf("the child finished before it was killed:\n%s", out.String())
			}
			mu.Lock()
			seen := recorded
			mu.Unlock()
			if proxy.kickoffs.Load() != 1 || !strings.Contains(seen, "/$bulk-status/") {
				t.Fatalf("child: %d kick-offs, pending job at the first poll %q; want 1 and the status URL", proxy.kickoffs.Load(), seen)
			}

			st := openStore(t, filepath.Join(dir, "data"))
			before, _, _ := total(t, st)
			c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep, MaxDownloads: 3, Retry: fhir.RetryPolicy{MaxAttempts: 20}})
			if err != nil {
				t.Fatal(err)
			}
			var resuming []string
			sum, err := Export(context.Background(), c, st, bulk.Request{}, ExportOptions{Incremental: true,
				Options:  Options{Connection: "sim", Sleep: noSleep, BatchSize: 50},
				Resuming: func(u string) { resuming = append(resuming, u) }})
			if err != nil || len(sum.Errors) != 0 {
				t.Fatalf("resumed Export = %+v, %v", sum, err)
			}
			if got := proxy.kickoffs.Load(); got != 1 {
				t.Errorf("kick-offs = %d, want 1 (the resumed run polls the child's job)", got)
			}
			if !sum.Resumed || len(resuming) != 1 || resuming[0] != seen {
				t.Errorf("Resumed = %v, Resuming called with %q; want the child's job %q", sum.Resumed, resuming, seen)
			}
			cur, vers, q := total(t, st)
			if cur != want || vers != want || q != 0 {
				t.Errorf("store holds %d current / %d versions / %d quarantined, want %d / %d / 0 (had %d before resuming)",
					cur, vers, q, want, want, before)
			}
			t.Logf("%d resources stored before the kill; the resumed run stored %d new, skipped %d complete files",
				before, sum.New, sum.Skipped)
			if _, u, _, _ := st.PendingExport(context.Background(), "sim", "system"); u != "" {
				t.Errorf("pending job %q still recorded after the export completed", u)
			}
			if last, _ := lastExport(st, "system", ""); !last.Equal(sum.TransactionTime) {
				t.Errorf("LastExport = %v, want %v", last, sum.TransactionTime)
			}
		})
	}
}

// TestExportKillResumeChild is the process TestExportKillResume kills.
func TestExportKillResumeChild(t *testing.T) {
	env := os.Getenv(exportChildEnv)
	if env == "" {
		t.Skip("run by TestExportKillResume")
	}
	dir, base, _ := strings.Cut(env, "|")
	st, err := sqlite.OpenDir(context.Background(), filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := bulk.NewClient(base+"/fhir", bulk.Options{MaxDownloads: 1, Retry: fhir.RetryPolicy{MaxAttempts: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(context.Background(), c, st, bulk.Request{}, ExportOptions{Incremental: true,
		Options: Options{Connection: "sim", BatchSize: 50, Files: 1}}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("CHILD DONE")
}

// TestExportRecordedJob runs Export with a pending job recorded in the
// store (kicked off here with the bulk client, as a killed run leaves it).
func TestExportRecordedJob(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 4, Seed: 5})
	want, _ := sourceTotal(gen)
	tests := []struct {
		name       string
		opts       bulkexport.Options
		recorded   bulk.Request // what the recorded job was kicked off for
		gone       bool         // the recorded job was deleted on the server
		resumed    bool
		kickoffs   int64 // in total, the recorded job's included
		oldDeleted bool  // the recorded job is deleted by Export
	}{
		{name: "same request resumes", recorded: bulk.Request{}, resumed: true, kickoffs: 1},
		{name: "different _type abandons", recorded: bulk.Request{Types: []string{"Patient"}}, kickoffs: 2, oldDeleted: true},
		{name: "different _typeFilter abandons", recorded: bulk.Request{TypeFilters: []string{"Observation?status=final"}},
			kickoffs: 2, oldDeleted: true},
		{name: "job gone on the server", recorded: bulk.Request{}, gone: true, kickoffs: 2},
		{name: "job failed on the server", opts: bulkexport.Options{Faults: bulkexport.Faults{FailJobs: 1}},
			recorded: bulk.Request{}, kickoffs: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Source = gen
			sim := bulkexport.New(tc.opts)
			proxy := &countingSim{h: sim.Handler()}
			ts := httptest.NewServer(proxy)
			defer ts.Close()
			c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep, Retry: fhir.RetryPolicy{MaxAttempts: 3}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			old, err := c.Kickoff(ctx, tc.recorded)
			if err != nil {
				t.Fatal(err)
			}
			if tc.gone {
				if err := c.Delete(ctx, old); err != nil {
					t.Fatal(err)
				}
			}
			st := openStore(t, t.TempDir())
			if err := st.SetPendingExport(ctx, "sim", tc.recorded.Scope(), requestFingerprint(tc.recorded), old.StatusURL, time.Now()); err != nil {
				t.Fatal(err)
			}
			deletesBefore := sim.Stats().Deletes
			sum, err := Export(ctx, c, st, bulk.Request{}, ExportOptions{Options: Options{Connection: "sim", Sleep: noSleep}})
			if err != nil || len(sum.Errors) != 0 {
				t.Fatalf("Export = %+v, %v", sum, err)
			}
			if got := proxy.kickoffs.Load(); got != tc.kickoffs || sum.Resumed != tc.resumed {
				t.Errorf("kick-offs = %d, resumed %v; want %d, %v", got, sum.Resumed, tc.kickoffs, tc.resumed)
			}
			// Deletes: the completed job's, plus the abandoned one's.
			wantDeletes := int64(1)
			if tc.oldDeleted {
				wantDeletes++
			}
			if got := sim.Stats().Deletes - deletesBefore; got != wantDeletes {
				t.Errorf("job deletes = %d, want %d", got, wantDeletes)
			}
			if tc.oldDeleted {
				if _, err := c.Wait(ctx, old); !errors.Is(err, fhir.ErrNotFound) {
					t.Errorf("abandoned job still there: %v", err)
				}
			}
			cur, vers, _ := total(t, st)
			if cur != want || vers != want {
				t.Errorf("store holds %d current / %d versions, want %d", cur, vers, want)
			}
			if _, u, _, _ := st.PendingExport(ctx, "sim", "system"); u != "" {
				t.Errorf("pending job %q still recorded after the export completed", u)
			}
		})
	}
}

func TestRequestFingerprint(t *testing.T) {
	since := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	base := bulk.Request{Types: []string{"Patient", "Observation"}, Since: since, TypeFilters: []string{"Observation?status=final", "Condition?category=x"}}
	tests := []struct {
		name string
		req  bulk.Request
		same bool
	}{
		{"identical", base, true},
		{"types in another order", bulk.Request{Types: []string{"Observation", "Patient"}, Since: since, TypeFilters: base.TypeFilters}, true},
		{"filters in another order", bulk.Request{Types: base.Types, Since: since, TypeFilters: []string{"Condition?category=x", "Observation?status=final"}}, true},
		{"same instant, other zone", bulk.Request{Types: base.Types, Since: since.In(time.FixedZone("x", 7200)), TypeFilters: base.TypeFilters}, true},
		{"other _since", bulk.Request{Types: base.Types, Since: since.Add(time.Second), TypeFilters: base.TypeFilters}, false},
		{"no _since", bulk.Request{Types: base.Types, TypeFilters: base.TypeFilters}, false},
		{"fewer types", bulk.Request{Types: []string{"Patient"}, Since: since, TypeFilters: base.TypeFilters}, false},
		{"other filter", bulk.Request{Types: base.Types, Since: since, TypeFilters: []string{"Observation?status=final"}}, false},
		{"patient level", bulk.Request{Patient: true, Types: base.Types, Since: since, TypeFilters: base.TypeFilters}, false},
		{"output format", bulk.Request{Types: base.Types, Since: since, TypeFilters: base.TypeFilters, OutputFormat: "ndjson"}, false},
	}
	for _, tc := range tests {
		if got := requestFingerprint(tc.req) == requestFingerprint(base); got != tc.same {
			t.Errorf("%s: same fingerprint = %v, want %v", tc.name, got, tc.same)
		}
	}
}

// A job that fails (or is lost) on the server right after kick-off is
// kicked off once more; when that one fails too, the export fails.
func TestExportFreshJobFailsOnce(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 5})
	want, _ := sourceTotal(gen)
	for _, tc := range []struct {
		failJobs int
		wantErr  bool
		kickoffs int64
	}{{1, false, 2}, {2, true, 2}} {
		t.Run(fmt.Sprintf("FailJobs=%d", tc.failJobs), func(t *testing.T) {
			sim := bulkexport.New(bulkexport.Options{Source: gen, Faults: bulkexport.Faults{FailJobs: tc.failJobs}})
			proxy := &countingSim{h: sim.Handler()}
			ts := httptest.NewServer(proxy)
			defer ts.Close()
			c, err := bulk.NewClient(ts.URL+"/fhir", bulk.Options{Sleep: noSleep, Retry: fhir.RetryPolicy{MaxAttempts: 3}})
			if err != nil {
				t.Fatal(err)
			}
			st := openStore(t, t.TempDir())
			sum, err := Export(context.Background(), c, st, bulk.Request{}, ExportOptions{Options: Options{Connection: "sim", Sleep: noSleep}})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Export = %+v, %v; want error %v", sum, err, tc.wantErr)
			}
			if got := proxy.kickoffs.Load(); got != tc.kickoffs {
				t.Errorf("kick-offs = %d, want %d", got, tc.kickoffs)
			}
			if !tc.wantErr && sum.New != want {
				t.Errorf("stored %d new, want %d", sum.New, want)
			}
		})
	}
}
