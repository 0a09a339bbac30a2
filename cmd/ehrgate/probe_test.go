package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/ehrsim"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
	"ehrgate/gateway"
	"ehrgate/probe"
	"ehrgate/store"
	"ehrgate/synth"
)

// runProbe runs the probe command alone (it is wired into the root
// command separately).
func runProbe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut}
	cmd := newProbeCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func personalityServer(t *testing.T, vendor string) string {
	t.Helper()
	sim := ehrsim.New(ehrsim.Options{})
	if err := synth.New(synth.Options{Patients: 3, Seed: 2}).Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) }); err != nil {
		t.Fatal(err)
	}
	h, err := personality.Wrap(vendor, nil, sim.Handler())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/fhir"
}

func TestProbeCommand(t *testing.T) {
	data := t.TempDir()
	base := personalityServer(t, "epic")
	out, err := runProbe(t, "hospital-a", "--base-url", base, "--data", data)
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	for _, want := range []string{"vendor: epic", "search Observation", "fan-out of 10 searches", "paging Patient", "MS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	st, err := store.Open(context.Background(), "sqlite:"+data, store.OpenOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := gateway.LoadProbe(context.Background(), st, "hospital-a"); err != nil || rep.Vendor != "epic" {
		t.Fatalf("stored report: %v, %v", rep, err)
	}
	st.Close()

	// Same server, JSON, compared with the stored report: no differences.
	out, err = runProbe(t, "hospital-a", "--base-url", base, "--data", data, "--json", "--compare", "last", "--no-save")
	if err != nil {
		t.Fatalf("probe --compare: %v\n%s", err, out)
	}
	var res struct {
		Report  probe.Report   `json:"report"`
		Changes []probe.Change `json:"changes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json --compare output: %v\n%s", err, out)
	}
	if res.Report.Vendor != "epic" || len(res.Changes) != 0 {
		t.Errorf("report vendor %q, changes %v; want epic, none", res.Report.Vendor, res.Changes)
	}

	// A different server (the "upgrade"), compared with a report kept in a
	// file: differences, exit status 3.
	saved := filepath.Join(t.TempDir(), "before.json")
	if b, err := json.Marshal(res.Report); err != nil || os.WriteFile(saved, b, 0o600) != nil {
		t.Fatal(err)
	}
	other := personalityServer(t, "athena")
	out, err = runProbe(t, "hospital-a", "--base-url", other, "--data", data, "--compare", saved, "--vendor", "athena")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 || !strings.Contains(out, "vendor: epic -> athena") {
		t.Errorf("probe against another vendor: err %v, output:\n%s", err, out)
	}
}

func TestProbeCommandErrors(t *testing.T) {
	data := t.TempDir()
	if _, err := runProbe(t, "nope", "--data", data); err == nil || !strings.Contains(err.Error(), "no connection") {
		t.Errorf("unknown connection: %v", err)
	}
	base := personalityServer(t, "generic")
	if _, err := runProbe(t, "x", "--base-url", base, "--vendor", "cerner-classic", "--data", data); err == nil {
		t.Error("unknown vendor accepted")
	}
	bad := filepath.Join(data, "site.yaml")
	os.WriteFile(bad, []byte("page_size: -1\n"), 0o600)
	if _, err := runProbe(t, "x", "--base-url", base, "--site", bad, "--data", data); err == nil || !strings.Contains(err.Error(), "name is required") {
		t.Errorf("bad site profile: %v", err)
	}
}

func TestResolveAdapter(t *testing.T) {
	ctx := context.Background()
	base := personalityServer(t, "oracle")
	a, detected, err := gateway.ResolveAdapter(ctx, base, "", "", fhir.Options{})
	if err != nil || a.Vendor() != "oracle" || !strings.Contains(detected, "detected, confidence 1.00") {
		t.Errorf("gateway.ResolveAdapter(detect) = %v, %q, %v; want oracle detected with confidence 1", a, detected, err)
	}
	a, detected, err = gateway.ResolveAdapter(ctx, base, "epic", "", fhir.Options{})
	if err != nil || a.Vendor() != "epic" || detected != "epic (configured)" {
		t.Errorf("gateway.ResolveAdapter(epic) = %v, %q, %v", a, detected, err)
	}
	a, _, err = gateway.ResolveAdapter(ctx, "http://127.0.0.1:1/fhir", "", "", fhir.Options{Retry: fhir.RetryPolicy{MaxAttempts: 1}})
	if err != nil || a.Vendor() != "generic" {
		t.Errorf("gateway.ResolveAdapter(unreachable) = %v, %v; want generic", a, err)
	}
}
