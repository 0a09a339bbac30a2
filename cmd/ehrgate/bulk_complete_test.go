package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/dashboard"
	"ehrgate/ehrsim/bulkexport"
	"ehrgate/ingest"
	"ehrgate/synth"
)

// exitCode is the exit status an error from a command maps to (0 for nil).
func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func decodeExport(t *testing.T, out string) ingest.ExportSummary {
	t.Helper()
	var sum ingest.ExportSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("output is not an export summary: %v\n%s", err, out)
	}
	return sum
}

// statusOf runs `ehrgate status --json` and returns a connection's report.
func statusOf(t *testing.T, data, cfgFile, name string) connectionReport {
	t.Helper()
	args := []string{"status", "--data", data, "--json"}
	if cfgFile != "" {
		args = append(args, "--config", cfgFile)
	}
	out, stderr, err := run(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	var got struct{ Connections []connectionReport }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, c := range got.Connections {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("status lists no connection %s:\n%s", name, out)
	return connectionReport{}
}

// connectionPage renders the dashboard's page of a connection through the
// gateway's own status wiring.
func connectionPage(t *testing.T, data, cfgFile, name string) string {
	t.Helper()
	cfg, err := config.Load(cfgFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = data
	a := &app{stdout: io.Discard, stderr: io.Discard, cfg: cfg, log: slog.New(slog.DiscardHandler)}
	g, err := a.openGateway(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(dashboard.New(g.Store(), dashboard.Options{Status: g.ConnectionStatus}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/connections/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("connection page = %d", resp.StatusCode)
	}
	return string(b)
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBulkExportPartialExitsThree: a manifest whose error array lists a
// file the server could not generate makes `bulk export` exit 3, say which
// type and file on stdout and stderr, and show it on `ehrgate status` and
// the dashboard's connection page; the next run fetches what is missing and
// exits 0.
func TestBulkExportPartialExitsThree(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 4, Seed: 5})
	types := []string{"Patient", "Condition", "Observation"}
	want := 0
	for i := 0; i < gen.Patients(); i++ {
		for _, r := range gen.Resources(i) {
			if slices.Contains(types, r.Type) {
				want++
			}
		}
	}
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 100000, RetryAfter: -1,
		Faults: bulkexport.Faults{UngeneratedFile: 2}})
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()
	data := t.TempDir()
	cfgFile := filepath.Join(t.TempDir(), "ehrgate.yaml")
	writeConfig(t, cfgFile, "connections:\n  - name: sim\n    base_url: "+ts.URL+"/fhir\n    types: [Patient, Condition, Observation]\n")
	args := []string{"bulk", "export", "--config", cfgFile, "--connection", "sim", "--data", data, "--json"}

	out, stderr, err := run(t, context.Background(), args...)
	if code := exitCode(err); code != 3 {
		t.Fatalf("bulk export with a manifest error exited %d (%v), want 3\n%s", code, err, stderr)
	}
	sum := decodeExport(t, out)
	if sum.Complete || len(sum.Incomplete) != 1 {
		t.Fatalf("summary: complete %v, incomplete %+v; want one incomplete type", sum.Complete, sum.Incomplete)
	}
	missing := sum.Incomplete[0].Type
	if !slices.Contains(types, missing) || !strings.Contains(err.Error(), missing) {
		t.Errorf("incomplete type %q, exit message %q; want a requested type, named", missing, err)
	}
	if !strings.Contains(stderr, "bulk export incomplete") || !strings.Contains(stderr, "failed-2.ndjson") {
		t.Errorf("the log does not say the export is incomplete and which file:\n%s", stderr)
	}
	st := statusOf(t, data, cfgFile, "sim")
	b := st.BulkExports["system"]
	if b == nil || b.Complete || len(b.Incomplete) != 1 || b.Incomplete[0].Type != missing || len(b.Incomplete[0].Files) != 1 {
		t.Errorf("status bulk_exports = %+v, want system incomplete for %s with its file", st.BulkExports, missing)
	}
	text, _, _ := run(t, context.Background(), "status", "--data", data, "--config", cfgFile)
	if !strings.Contains(text, "INCOMPLETE") || !strings.Contains(text, missing+": the server could not generate") {
		t.Errorf("status text does not show the incomplete export:\n%s", text)
	}
	if page := connectionPage(t, data, cfgFile, "sim"); !strings.Contains(page, "incomplete") || !strings.Contains(page, "failed-2.ndjson") {
		t.Errorf("the dashboard's connection page does not show the incomplete export")
	}

	out, stderr, err = run(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("second bulk export: %v\n%s", err, stderr)
	}
	sum = decodeExport(t, out)
	if !sum.Complete || sum.Resources[missing] == 0 {
		t.Errorf("second export: complete %v, %d %s; want it to fetch what was missing", sum.Complete, sum.Resources[missing], missing)
	}
	if st := statusOf(t, data, cfgFile, "sim"); st.Resources != want || !st.BulkExports["system"].Complete {
		t.Errorf("status after the second export: %d resources (want %d), bulk %+v", st.Resources, want, st.BulkExports["system"])
	}
}

// TestBulkExportGoneFileCommand: a file answering 410 Gone is exported
// again within bulk.max_reexports (default 1); with 0 the export is
// incomplete (exit 3).
func TestBulkExportGoneFileCommand(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 5})
	tests := []struct {
		name  string
		extra string // config
		flags []string
		code  int
	}{
		{"default limit", "", nil, 0},
		{"bulk.max_reexports: 0", "bulk:\n  max_reexports: 0\n", nil, 3},
		{"--max-reexports 0 over the config", "bulk:\n  max_reexports: 2\n", []string{"--max-reexports", "0"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 40, RetryAfter: -1, Faults: bulkexport.Faults{ExpireFile: 2}})
			ts := httptest.NewServer(sim.Handler())
			defer ts.Close()
			cfgFile := filepath.Join(t.TempDir(), "ehrgate.yaml")
			writeConfig(t, cfgFile, tc.extra+"connections:\n  - name: sim\n    base_url: "+ts.URL+"/fhir\n")
			args := append([]string{"bulk", "export", "--config", cfgFile, "--connection", "sim", "--data", t.TempDir(), "--json"}, tc.flags...)
			out, stderr, err := run(t, context.Background(), args...)
			if code := exitCode(err); code != tc.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, tc.code, stderr)
			}
			sum := decodeExport(t, out)
			if wantKicks := int64(2 - tc.code/3); sim.Stats().Kickoffs != wantKicks {
				t.Errorf("kick-offs = %d, want %d", sim.Stats().Kickoffs, wantKicks)
			}
			if tc.code == 3 && (len(sum.Errors) != 1 || !sum.Errors[0].Gone) {
				t.Errorf("errors %+v, want the gone file", sum.Errors)
			}
		})
	}
}

// TestBulkExportOut: --out writes the files as received and manifest.json,
// and stores nothing.
func TestBulkExportOut(t *testing.T) {
	gen := synth.New(synth.Options{Patients: 3, Seed: 5})
	sim := bulkexport.New(bulkexport.Options{Source: gen, FileSize: 30, RetryAfter: -1})
	ts := httptest.NewServer(sim.Handler())
	defer ts.Close()
	data, dir := t.TempDir(), filepath.Join(t.TempDir(), "files")
	out, stderr, err := runBulk(t, "bulk", "export", "--base-url", ts.URL+"/fhir", "--connection", "sim", "--data", data,
		"--type", "Patient,Observation", "--out", dir)
	if err != nil {
		t.Fatalf("bulk export --out: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "exported sim to "+dir) || !strings.Contains(out, "complete") {
		t.Errorf("summary:\n%s", out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Output []struct{ Type string } `json:"output"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for i, f := range m.Output {
		n := 0
		for _, prev := range m.Output[:i+1] {
			if prev.Type == f.Type {
				n++
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, f.Type+"."+strconv.Itoa(n)+".ndjson"))
		if err != nil {
			t.Fatalf("output file %d (%s): %v", i+1, f.Type, err)
		}
		lines += strings.Count(string(b), "\n")
	}
	want := 0
	for i := 0; i < gen.Patients(); i++ {
		for _, r := range gen.Resources(i) {
			if r.Type == "Patient" || r.Type == "Observation" {
				want++
			}
		}
	}
	if lines != want {
		t.Errorf("the files hold %d lines, want %d", lines, want)
	}
	// Nothing stored: no resources, no _since, no recorded export.
	out, _, err = run(t, context.Background(), "status", "--data", data, "--json")
	if err != nil || strings.Contains(out, `"sim"`) {
		t.Errorf("status after --out = %v:\n%s\nwant no trace of the connection", err, out)
	}
}

// TestBulkExportWidenedTypes: after a connection's types are widened, a
// still-valid token granted for the old list is renewed before kick-off, so
// a server that filters the export by granted scope returns the new type
// too. A type the EHR will not grant makes the export incomplete (exit 3),
// and `ehrgate status` and the dashboard show the narrower grant.
func TestBulkExportWidenedTypes(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	a := &app{stdout: io.Discard, stderr: io.Discard, cfg: config.Default(), log: log}
	a.cfg.Data = data
	g, err := a.openGateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := inlineKeyClients(ctx, g)
	g.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The EHR registered ehrgate for these types only.
	clients[0].Scopes = []string{"system/Patient.rs", "system/Observation.rs", "system/Condition.rs"}
	f := simFlags{patients: 5, seed: 3, vendor: "generic", bulkFileSize: 40, accessTTL: time.Hour, pageSize: 50, bulkScopeFilter: true}
	sim, err := f.newSim(log)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := f.start(ctx, sim, "127.0.0.1:0", clients, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.stop()
	count := map[string]int{}
	gen := synth.New(synth.Options{Patients: 5, Seed: 3})
	for i := 0; i < gen.Patients(); i++ {
		for _, r := range gen.Resources(i) {
			count[r.Type]++
		}
	}
	cfgFile := filepath.Join(t.TempDir(), "ehrgate.yaml")
	export := func(types string) (ingest.ExportSummary, error, string) {
		t.Helper()
		writeConfig(t, cfgFile, "connections:\n  - name: hosp\n    base_url: "+ep.base+"\n    types: ["+types+"]\n"+
			"    auth: {type: backend-services, client_id: "+demoBackendClient+"}\n")
		out, stderr, err := run(t, ctx, "bulk", "export", "--config", cfgFile, "--connection", "hosp", "--data", data, "--json")
		if exitCode(err) == 1 {
			t.Fatalf("bulk export (%s): %v\n%s", types, err, stderr)
		}
		return decodeExport(t, out), err, stderr
	}

	sum, err, stderr := export("Patient, Observation")
	if err != nil || !sum.Complete || sum.New != count["Patient"]+count["Observation"] {
		t.Fatalf("first export: %v, complete %v, new %d\n%s", err, sum.Complete, sum.New, stderr)
	}
	// types: widened. The token stored by the first run is valid for an
	// hour and was granted Patient and Observation only.
	sum, err, stderr = export("Patient, Observation, Condition")
	if err != nil || !sum.Complete || sum.Resources["Condition"] != count["Condition"] {
		t.Fatalf("export after widening types: %v, complete %v, %d Conditions (want %d), incomplete %+v\n%s",
			err, sum.Complete, sum.Resources["Condition"], count["Condition"], sum.Incomplete, stderr)
	}
	// A type the EHR does not grant ehrgate.
	sum, err, _ = export("Patient, Observation, Condition, Encounter")
	if exitCode(err) != 3 || !slices.Equal(sum.NotGranted, []string{"Encounter"}) || !slices.Equal(sum.IncompleteTypes(), []string{"Encounter"}) {
		t.Errorf("export with a type not granted: exit %d (%v), not granted %v, incomplete %v; want 3, [Encounter], [Encounter]",
			exitCode(err), err, sum.NotGranted, sum.IncompleteTypes())
	}
	if sum.Resources["Encounter"] != 0 {
		t.Errorf("%d Encounters exported; the server should have filtered them out", sum.Resources["Encounter"])
	}
	st := statusOf(t, data, cfgFile, "hosp")
	if !slices.Equal(st.NotGranted, []string{"Encounter"}) || st.BulkExports["system"] == nil || st.BulkExports["system"].Complete {
		t.Errorf("status: not granted %v, bulk %+v; want [Encounter] and an incomplete export", st.NotGranted, st.BulkExports["system"])
	}
	if page := connectionPage(t, data, cfgFile, "hosp"); !strings.Contains(page, "did not grant reading Encounter") {
		t.Error("the dashboard's connection page does not show the narrower grant")
	}
}
