package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/ehrsim"
	"ehrgate/ehrsim/bulkexport"
	"ehrgate/gateway"
	"ehrgate/internal/pgtest"
	"ehrgate/jobs"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/synth"
)

// countingEHR is the simulated EHR (REST and Bulk Data over one synthetic
// population) counting each per-patient search it answers, slowed down so
// that a sync and an export take long enough to be killed in the middle.
type countingEHR struct {
	*httptest.Server
	mu       sync.Mutex
	searches map[string]int // "Type?patient" -> first pages answered
	bulk     *bulkexport.Server
}

func newCountingEHR(t *testing.T, patients int) *countingEHR {
	t.Helper()
	gen := synth.New(synth.Options{Patients: patients, Seed: 3})
	sim := ehrsim.New(ehrsim.Options{})
	if err := gen.Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) }); err != nil {
		t.Fatal(err)
	}
	e := &countingEHR{searches: map[string]int{}}
	e.bulk = bulkexport.New(bulkexport.Options{Source: gen, FileSize: 40, Polls: 3, RetryAfter: 500 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("/", sim.Handler())
	e.bulk.Register(mux)
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Query().Get("patient"); p != "" && !r.URL.Query().Has("_cursor") { // first pages only
			e.mu.Lock()
			e.searches[path.Base(r.URL.Path)+"?"+p]++
			e.mu.Unlock()
			time.Sleep(40 * time.Millisecond)
		}
		if strings.Contains(r.URL.Path, "$bulk-file") {
			time.Sleep(150 * time.Millisecond)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *countingEHR) counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.searches))
	for k, v := range e.searches {
		out[k] = v
	}
	return out
}

// replica is one `ehrgate serve` process.
type replica struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan error
	killed bool
}

func startReplica(t *testing.T, env []string, args ...string) *replica {
	t.Helper()
	r := &replica{cmd: exec.Command(os.Args[0], args...), done: make(chan error, 1)}
	r.cmd.Env = append(append(os.Environ(), envRunMain+"=1"), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// pidOf returns the process id in a job worker's ID (host-pid-n).
func pidOf(workerID string) int {
	parts := strings.Split(workerID, "-")
	if len(parts) < 3 {
		return 0
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}

// TestReplicasShareTheWorkAndSurviveSIGKILL is the platform issue's "done
// when": three `serve` processes on one PostgreSQL, a schedule with a sync
// and a bulk export of the simulated EHR; the process running the sync is
// killed with SIGKILL in the middle of it, and the one running the export
// in the middle of that. The survivors finish both; the store ends equal
// to a single process's sync and export, each patient's chart was fetched
// once in the cycle (but for the fetches in flight when the process died),
// and no job is left running or lost.
func TestReplicasShareTheWorkAndSurviveSIGKILL(t *testing.T) {
	// Mostly waiting (on River's rescuer, on the Node test kit): runs beside
	// the other long waiter once the sequential tests are done.
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes and waits for River to rescue a killed one's jobs (about a minute)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url := pgtest.NewDatabaseURL(t)
	env := kekEnv(t)
	const patients = 30
	ehr := newCountingEHR(t, patients)

	cfg := filepath.Join(t.TempDir(), "ehrgate.yaml")
	yaml := fmt.Sprintf(`sync_every: 1h
log_level: warn
jobs:
  timeout: 12s
  rescue_after: 13s
  workers: 2
connections:
  - name: hosp
    base_url: %s/fhir
    vendor: generic
    workers: 2
    bulk_every: 1h
`, ehr.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var reps []*replica
	for range 3 {
		reps = append(reps, startReplica(t, env, "serve", "--config", cfg, "--store", url,
			"--http-addr", freeAddr(t), "--data", t.TempDir()))
	}
	byPID := func(pid int) *replica {
		for _, r := range reps {
			if r.cmd.Process.Pid == pid {
				return r
			}
		}
		return nil
	}

	st, err := store.Open(ctx, url, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q, closeQ, err := gateway.OpenQueue(ctx, st, jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ()

	// Kill whoever runs the sync once about a third of the charts are
	// fetched, and whoever runs the export once it downloads files.
	killRunner := func(kind string, ready func() bool) {
		t.Helper()
		for {
			if ctx.Err() != nil {
				t.Fatalf("no %s job ran; replicas said:\n%s", kind, reps[0].out.String())
			}
			list, err := q.List(ctx, jobs.Filter{Kinds: []string{kind}, States: []jobs.State{jobs.Running}})
			if err == nil && len(list) == 1 && ready() {
				by := list[0].AttemptedBy
				r := byPID(pidOf(by[len(by)-1]))
				if r == nil {
					t.Fatalf("job %s runs on %s, not one of the replicas", kind, by[len(by)-1])
				}
				if !r.killed {
					if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					r.killed = true
					<-r.done
					t.Logf("killed replica %d in the middle of its %s job", r.cmd.Process.Pid, kind)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	killRunner("sync", func() bool { return len(ehr.counts()) > patients*3 })
	killRunner("bulk_export", func() bool { return ehr.bulk.Stats().Downloads > 0 })

	// Wait until every job is final.
	for {
		if ctx.Err() != nil {
			list, _ := q.List(context.Background(), jobs.Filter{})
			t.Fatalf("jobs still active: %+v", list)
		}
		counts, err := q.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		active := counts[jobs.Running] + counts[jobs.Available] + counts[jobs.Retryable] + counts[jobs.Scheduled] + counts[jobs.Pending]
		if active == 0 && counts[jobs.Completed] >= 2 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	list, err := q.List(ctx, jobs.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, j := range list {
		kinds[j.Kind]++
		if j.State != jobs.Completed {
			t.Errorf("job %d %s ended %s (errors %v)", j.ID, j.Summary(), j.State, j.Errors)
		}
		// The sync and the export were killed mid-run; other jobs (the
		// identity matches their stores kicked) ran where they landed.
		if (j.Kind == "sync" || j.Kind == "bulk_export") && j.Attempt < 2 {
			t.Errorf("job %d %s completed on attempt %d; its first attempt was killed", j.ID, j.Kind, j.Attempt)
		}
	}
	if kinds["sync"] != 1 || kinds["bulk_export"] != 1 {
		t.Errorf("jobs by kind %v; want one sync and one bulk export for the cycle", kinds)
	}

	// Each chart type of each patient fetched once in the cycle; those in
	// flight when their process died, twice at most.
	counts := ehr.counts()
	twice := 0
	gen := synth.New(synth.Options{Patients: patients, Seed: 3})
	for i := range patients {
		id := gen.PatientID(i)
		for _, typ := range refresh.ChartTypes[1:] {
			switch n := counts[typ+"?"+id]; {
			case n == 0:
				t.Errorf("%s of patient %s was never fetched", typ, id)
			case n == 2:
				twice++
			case n > 2:
				t.Errorf("%s of patient %s was fetched %d times", typ, id, n)
			}
		}
	}
	// The killed process had two fetches in flight (workers: 2), each of
	// which may also have been stored without its fetch state.
	if twice > 6 {
		t.Errorf("%d chart types were fetched twice; only the few in flight at the kill may be", twice)
	}
	t.Logf("%d searches in the cycle, %d repeated after the kill", len(counts), twice)

	// The same sync and export by one process on a fresh database.
	ref := pgtest.NewDatabaseURL(t)
	if _, stderr, err := runEnv(t, ctx, env, "sync", "--config", cfg, "--store", ref, "--connection", "hosp", "--json"); err != nil {
		t.Fatalf("reference sync: %v\n%s", err, stderr)
	}
	if _, stderr, err := runEnv(t, ctx, env, "bulk", "export", "--config", cfg, "--store", ref, "--connection", "hosp", "--json"); err != nil {
		t.Fatalf("reference export: %v\n%s", err, stderr)
	}
	if diff := cmp.Diff(storeStats(t, env, "--store", ref), storeStats(t, env, "--store", url)); diff != "" {
		t.Errorf("the replicas' store differs from one process's (-single +replicas):\n%s", diff)
	}

	for _, r := range reps {
		if !r.killed {
			r.cmd.Process.Signal(syscall.SIGTERM)
			if err := <-r.done; err != nil {
				t.Errorf("replica %d on SIGTERM: %v\n%s", r.cmd.Process.Pid, err, r.out.String())
			}
		}
	}
}

// A sync killed with SIGKILL shows as interrupted in `status` (not as a
// clean last sync), and the next sync clears it.
func TestStatusShowsAKilledSyncAsInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ehr := newCountingEHR(t, 20)
	data := t.TempDir()
	args := []string{"sync", "--base-url", ehr.URL + "/fhir", "--connection", "hosp", "--data", data, "--log-level", "error"}
	r := startReplica(t, nil, args...)
	for len(ehr.counts()) < 20 {
		if ctx.Err() != nil {
			t.Fatalf("the sync did not start:\n%s", r.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	r.killed = true

	status := func() (runs []runReport, text string) {
		t.Helper()
		out, _, err := run(t, ctx, "status", "--data", data, "--json")
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		var got struct {
			Connections []connectionReport `json:"connections"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Connections) != 1 {
			t.Fatalf("status --json = %v\n%s", err, out)
		}
		text, _, _ = run(t, ctx, "status", "--data", data)
		return got.Connections[0].Runs, text
	}
	runs, text := status()
	if len(runs) != 1 || runs[0].What != "sync" || runs[0].State != "interrupted" || runs[0].PID != r.cmd.Process.Pid {
		t.Errorf("status after a killed sync: runs %+v; want the sync interrupted", runs)
	}
	if !strings.Contains(text, "sync INTERRUPTED") {
		t.Errorf("status text does not say the sync was interrupted:\n%s", text)
	}
	if _, stderr, err := run(t, ctx, args...); err != nil {
		t.Fatalf("second sync: %v\n%s", err, stderr)
	}
	if runs, text := status(); len(runs) != 0 || strings.Contains(text, "INTERRUPTED") {
		t.Errorf("after a complete sync, status still shows runs %+v:\n%s", runs, text)
	}
}
