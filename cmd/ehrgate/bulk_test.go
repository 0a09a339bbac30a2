package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/ehrsim/bulkexport"
	"ehrgate/ingest"
	"ehrgate/synth"
)

// runBulk executes the bulk and export commands in-process (they are
// wired into the root command separately).
func runBulk(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return runBulkCtx(t, context.Background(), args...)
}

func TestBulkExportCommandIsIncremental(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 4, Seed: 5})
	want := 0
	for i := 0; i < gen.Patients(); i++ {
		want += len(gen.Resources(i))
	}
	now := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 60, RetryAfter: -1, Clock: func() time.Time { return now }})
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()
	data := t.TempDir()

	out, stderr, err := runBulk(t, "bulk", "export", "--base-url", ts.URL+"/fhir", "--connection", "sim", "--data", data, "--json")
	if err != nil {
		t.Fatalf("bulk export: %v\n%s", err, stderr)
	}
	var sum ingest.ExportSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if sum.New != want || sum.Scope != "system" || !sum.TransactionTime.Equal(now) {
		t.Errorf("first export = new %d scope %s tx %v; want %d system %v", sum.New, sum.Scope, sum.TransactionTime, want, now)
	}
	// The same export again: only what changed since (nothing).
	args := []string{"bulk", "export", "--base-url", ts.URL + "/fhir", "--connection", "sim", "--data", data, "--json"}
	second := func(extra ...string) ingest.ExportSummary {
		t.Helper()
		out, stderr, err := runBulk(t, append(args, extra...)...)
		if err != nil {
			t.Fatalf("bulk export %v: %v\n%s", extra, err, stderr)
		}
		var sum ingest.ExportSummary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		return sum
	}
	if sum := second(); !sum.Since.Equal(now) || sum.Lines != 0 || !sum.Complete {
		t.Errorf("second export = since %v lines %d complete %v; want since %v and nothing", sum.Since, sum.Lines, sum.Complete, now)
	}
	// _since is kept per type: types never exported on their own start
	// from the beginning (an export without _type does not vouch for
	// them), then go on from their own transactionTime.
	if sum := second("--type", "Patient,Condition"); !sum.Since.IsZero() || sum.Lines == 0 || !sum.Complete {
		t.Errorf("first typed export = since %v lines %d complete %v; want everything of both types", sum.Since, sum.Lines, sum.Complete)
	}
	if sum := second("--type", "Patient,Condition"); !sum.Since.Equal(now) || sum.Lines != 0 || !sum.Complete {
		t.Errorf("second typed export = since %v lines %d; want since %v and nothing", sum.Since, sum.Lines, now)
	}
}

func TestBulkImportAndParquetCommands(t *testing.T) {
	dir := t.TempDir()
	counts, err := synth.New(synth.Options{Patients: 3, Seed: 5}).WriteNDJSON(filepath.Join(dir, "in"))
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, c := range counts {
		want += c
	}
	data := filepath.Join(dir, "data")
	out, stderr, err := runBulk(t, "bulk", "import", filepath.Join(dir, "in"), "--data", data, "--json")
	if err != nil {
		t.Fatalf("bulk import: %v\n%s", err, stderr)
	}
	var sum ingest.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.New != want || sum.Files != len(counts) {
		t.Fatalf("import = %+v, %v; want %d new from %d files\n%s", sum, err, want, len(counts), out)
	}
	out, _, err = runBulk(t, "bulk", "import", filepath.Join(dir, "in"), "--data", data)
	if err != nil || !strings.Contains(out, "new 0,") || !strings.Contains(out, "already done") {
		t.Errorf("second import = %v\n%s", err, out)
	}
	pq := filepath.Join(dir, "pq")
	out, stderr, err = runBulk(t, "export", "parquet", "--data", data, "--out", pq, "--json")
	if err != nil {
		t.Fatalf("export parquet: %v\n%s", err, stderr)
	}
	var ps struct {
		Rows  int `json:"rows"`
		Files int `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil || ps.Rows != want || ps.Files == 0 {
		t.Errorf("export parquet = %+v, %v; want %d rows", ps, err, want)
	}
	if _, _, err := runBulk(t, "export", "parquet", "--data", data); err == nil {
		t.Error("export parquet without --out succeeded")
	}
	// The export is in the audit trail, attributed to whoever ran it.
	out, _, err = run(t, context.Background(), "audit", "--data", data, "--json")
	if err != nil || strings.Count(out, `"resourceType":"AuditEvent"`) != 1 || !strings.Contains(out, "ehrgate-cli") {
		t.Errorf("audit after one Parquet export = %v\n%s", err, out)
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		p     ingest.Progress
		total int64
		want  string
	}{
		{ingest.Progress{FilesDone: 1, FilesTotal: 4, Resources: 5000, Bytes: 3 << 20}, 10000,
			"bulk: files 1/4, resources 5000, 3.0 MiB, 1000 resources/s, ETA 5s"},
		{ingest.Progress{FilesDone: 0, FilesTotal: 2, Resources: 0, Bytes: 10, BytesTotal: -1}, -1, "bulk: files 0/2, resources 0, 10 B, 0 resources/s"},
		{ingest.Progress{FilesDone: 1, FilesTotal: 2, Resources: 100, Bytes: 1 << 20, BytesTotal: 3 << 20}, -1,
			"bulk: files 1/2, resources 100, 1.0 MiB, 20 resources/s, ETA 10s"},
	}
	for _, tc := range tests {
		if got := progressLine(tc.p, tc.total, 5*time.Second); got != tc.want {
			t.Errorf("progressLine(%+v, %d) = %q, want %q", tc.p, tc.total, got, tc.want)
		}
	}
}

// TestBulkExportCommandResumesJob: a run interrupted after kick-off whose
// job could not be cancelled on the server (the DELETE failed, as when the
// process is killed) leaves the job recorded; the next run of the same
// export says it resumes it, kicks off nothing, and stores everything.
func TestBulkExportCommandResumesJob(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 11})
	want := 0
	for i := 0; i < gen.Patients(); i++ {
		want += len(gen.Resources(i))
	}
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 50, RetryAfter: -1})
	var kickoffs, polls atomic.Int32
	var failDeletes atomic.Bool
	failDeletes.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := sim.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/$export"):
			kickoffs.Add(1)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/$bulk-status/"):
			if polls.Add(1) == 1 {
				cancel() // interrupt the first run at its first status poll
			}
		case r.Method == http.MethodDelete && failDeletes.Load():
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	data := t.TempDir()
	args := []string{"bulk", "export", "--base-url", ts.URL + "/fhir", "--connection", "sim", "--data", data, "--json"}

	if _, _, err := runBulkCtx(t, ctx, args...); err == nil {
		t.Fatal("the interrupted export reported success")
	}
	if kickoffs.Load() != 1 {
		t.Fatalf("first run kicked off %d jobs, want 1", kickoffs.Load())
	}
	failDeletes.Store(false)
	out, stderr, err := runBulkCtx(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("resumed export: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "resuming export job "+ts.URL+"/fhir/$bulk-status/") {
		t.Errorf("stderr does not say the job is resumed:\n%s", stderr)
	}
	if kickoffs.Load() != 1 {
		t.Errorf("the resumed run kicked off again (%d kick-offs)", kickoffs.Load())
	}
	var sum ingest.ExportSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if sum.New != want {
		t.Errorf("resumed export stored %d new resources, want %d", sum.New, want)
	}
}

// runBulkCtx is runBulk with a context.
func runBulkCtx(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut}
	root := &cobra.Command{Use: "ehrgate", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.AddCommand(newBulkCmd(a), newExportCmd(a))
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}
