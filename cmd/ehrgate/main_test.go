package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

// run executes the CLI in-process and returns stdout, stderr and the error.
func run(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut, nil)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func decodeSummary(t *testing.T, out string) refresh.Summary {
	t.Helper()
	var s refresh.Summary
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("output is not one summary JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("output has more than one JSON value:\n%s", out)
	}
	return s
}

func TestDemoOnceJSONIsCompleteAndIdempotent(t *testing.T) {
	data := t.TempDir()
	out, stderr, err := run(t, context.Background(), "demo", "--once", "--json", "--data", data, "--patients", "100", "--log-level", "warn")
	if err != nil {
		t.Fatalf("demo --once: %v\n%s", err, stderr)
	}
	first := decodeSummary(t, out)
	if first.Patients != 100 || first.Errors != 0 || first.Quarantined != 0 || first.New == 0 {
		t.Errorf("first run = %+v; want 100 patients, 0 errors, new resources", first)
	}
	want, err := synth.New(synth.Options{Patients: 100, Seed: 1}).WriteNDJSON(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range refresh.ChartTypes {
		if first.Resources[typ] == 0 || first.Resources[typ] != want[typ] {
			t.Errorf("first run pulled %d %s; the synthetic population has %d", first.Resources[typ], typ, want[typ])
		}
	}

	out, stderr, err = run(t, context.Background(), "demo", "--once", "--json", "--data", data, "--patients", "100", "--log-level", "warn")
	if err != nil {
		t.Fatalf("second demo --once: %v\n%s", err, stderr)
	}
	second := decodeSummary(t, out)
	if second.New != 0 || second.Updated != 0 || second.Unchanged != first.New {
		t.Errorf("second run = new %d updated %d unchanged %d; want 0, 0, %d", second.New, second.Updated, second.Unchanged, first.New)
	}

	out, _, err = run(t, context.Background(), "stats", "--data", data, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Connections map[string]struct {
			Resources map[string]int `json:"resources"`
			Total     int            `json:"total"`
		} `json:"connections"`
		Resources, Versions, Quarantined int
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	if st.Resources != first.New || st.Versions != first.New || st.Connections[demoConnection].Total != first.New {
		t.Errorf("stats = %+v; want %d resources and versions (no duplicate rows)", st, first.New)
	}
}

func TestDemoUnderFaultsStoresEverythingServed(t *testing.T) {
	data := t.TempDir()
	out, stderr, err := run(t, context.Background(), "demo", "--once", "--json", "--data", data, "--patients", "30",
		"--fault-rate", "0.05", "--fault-retry-after", "0s", "--log-level", "error")
	if err != nil {
		t.Fatalf("demo under faults: %v\n%s", err, stderr)
	}
	sum := decodeSummary(t, out)
	want, _ := synth.New(synth.Options{Patients: 30, Seed: 1}).WriteNDJSON(t.TempDir())
	st, err := sqlite.OpenDir(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tc := range stats.Resources {
		got[tc.Type] = tc.Count
	}
	for typ, n := range want {
		if got[typ] != n {
			t.Errorf("store holds %d %s under 5%% faults; the simulator serves %d", got[typ], typ, n)
		}
	}
	if sum.Errors != 0 {
		t.Errorf("errors = %d, want 0", sum.Errors)
	}
}

func TestSyncCommandAgainstASimulator(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{})
	gen := synth.New(synth.Options{Patients: 5, Seed: 9})
	if err := gen.Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	out, stderr, err := run(t, context.Background(), "sync", "--base-url", srv.URL+"/fhir", "--connection", "site-a",
		"--data", t.TempDir(), "--json", "--log-level", "error")
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, stderr)
	}
	if s := decodeSummary(t, out); s.Patients != 5 || s.Errors != 0 {
		t.Errorf("sync summary = %+v", s)
	}
}

func TestSyncCommandReportsFailuresWithExitCode(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{})
	gen := synth.New(synth.Options{Patients: 2, Seed: 9})
	if err := gen.Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Immunization") {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, _, err := run(t, context.Background(), "sync", "--base-url", srv.URL+"/fhir", "--data", t.TempDir(), "--json", "--log-level", "error")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Errorf("sync with failing fetches = %v, want exit code 3", err)
	}
}

func TestBadInputGetsAPlainMessage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sync", "--data", t.TempDir()}, "no connection"},
		{[]string{"sync", "--base-url", "ftp://x", "--data", t.TempDir()}, "base_url"},
		{[]string{"demo", "--once", "--http-addr", "nope", "--data", t.TempDir()}, "http_addr"},
		{[]string{"synth", "--patients", "0", "--out", t.TempDir()}, "--patients"},
		{[]string{"sim", "--fault-rate", "2"}, "rate"},
		{[]string{"stats", "--log-level", "loud"}, "log_level"},
	}
	for _, tc := range tests {
		_, _, err := run(t, context.Background(), tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ehrgate %v = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, sub := range []string{"demo", "serve", "sim", "synth", "sync", "stats", "version"} {
		out, _, err := run(t, context.Background(), sub, "--help")
		if err != nil || !strings.Contains(out, "Usage:") || !strings.Contains(out, sub) {
			t.Errorf("ehrgate %s --help = %v\n%s", sub, err, out)
		}
	}
}

func TestSynthCommandIsDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if _, _, err := run(t, context.Background(), "synth", "--patients", "4", "--seed", "5", "--out", dir); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(a, "*.ndjson"))
	if len(files) < 10 {
		t.Fatalf("synth wrote %d files, want one per type (10)", len(files))
	}
	for _, f := range files {
		x, _ := os.ReadFile(f)
		y, _ := os.ReadFile(filepath.Join(b, filepath.Base(f)))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same seed", filepath.Base(f))
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitFor(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", url)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	return string(b)
}

// demoRun is a demo started in-process for a test.
type demoRun struct {
	base, data string
	logs       *bytes.Buffer
	cancel     context.CancelFunc
	done       chan error
}

// startDemo runs `ehrgate demo` with extra args on a free port and waits
// until its first sync has completed.
func startDemo(t *testing.T, patients int, extra ...string) *demoRun {
	t.Helper()
	addr := freeAddr(t)
	d := &demoRun{base: "http://" + addr, data: t.TempDir(), logs: &bytes.Buffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	args := append([]string{"demo", "--data", d.data, "--http-addr", addr, "--patients", fmt.Sprint(patients),
		"--sync-every", "0", "--mllp-addr", "127.0.0.1:0"}, extra...)
	go func() {
		cmd := newRootCmd(io.Discard, d.logs, nil)
		cmd.SetArgs(args)
		d.done <- cmd.ExecuteContext(ctx)
	}()
	t.Cleanup(func() { d.stop(t) })
	waitFor(t, d.base+"/healthz")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(get(t, d.base+"/metrics"), "ehrgate_sync_last_success_timestamp_seconds") {
		if time.Now().After(deadline) {
			t.Fatal("the demo's first sync did not complete")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

// stop cancels the demo and waits for it to exit cleanly.
func (d *demoRun) stop(t *testing.T) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("demo returned %v after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
}

func TestDemoServesDashboardAndMetricsWithoutLeakingPHI(t *testing.T) {
	d := startDemo(t, 20, "--log-level", "debug")
	base, data := d.base, d.data
	deadline := time.Now()
	metrics := get(t, base+"/metrics")
	for _, m := range []string{`ehrgate_fhir_request_duration_seconds_bucket{code="200",connection="demo",interaction="search",resource_type="Observation"`,
		`ehrgate_sync_last_returned_resources{connection="demo",resource_type="Condition"}`,
		`ehrgate_sync_resources_total{change="new",connection="demo",resource_type="Observation"}`,
		`ehrgate_connection_needs_reauthorization{connection="demo"} 0`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if page := get(t, base+"/"); !strings.Contains(page, "demo") {
		t.Errorf("overview page does not mention the demo connection")
	}
	get(t, base+"/readyz")
	// After the first sync the demo probes its connection; the dashboard shows the matrix.
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(get(t, base+"/connections/demo/probe"), "Latest probe") {
		if time.Now().After(deadline) {
			t.Fatal("the compatibility matrix never appeared on the dashboard")
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.stop(t)

	// No patient name, MRN or birth date may appear in the logs.
	st, err := sqlite.OpenDir(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pats, err := st.SearchPatients(context.Background(), storePatientQuery())
	if err != nil || len(pats) != 20 {
		t.Fatalf("SearchPatients = %d, %v", len(pats), err)
	}
	logText := d.logs.String()
	if !strings.Contains(logText, "sync finished") {
		t.Fatalf("logs were not captured:\n%s", logText)
	}
	for _, p := range pats {
		var n struct {
			Name, MRN, BirthDate string
		}
		_ = json.Unmarshal(p.Normalized, &n)
		for _, phi := range []string{n.Name, n.MRN, n.BirthDate} {
			if phi != "" && strings.Contains(logText, phi) {
				t.Errorf("logs contain patient data %q", phi)
			}
		}
	}
}

func storePatientQuery() store.PatientQuery { return store.PatientQuery{Limit: 1000} }
