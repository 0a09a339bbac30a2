package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/ehrsim/bulkexport"
	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
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
			last, _ := st.LastExport(context.Background(), "sim", "system")
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
	if last, _ := st.LastExport(context.Background(), "sim", "group/all"); !last.IsZero() {
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
	if last, _ := st.LastExport(context.Background(), "sim", "system"); !last.IsZero() {
		t.Errorf("a cancelled export stored transactionTime %v", last)
	}
	_ = strings.TrimSpace
}
