package main

import (
	"context"
	"strings"
	"testing"
)

// TestVendorNamesAcceptedEverywhere: the simulator, a connection's vendor
// and the probe accept "cerner" as well as "oracle", and --help lists the
// accepted names.
func TestVendorNamesAcceptedEverywhere(t *testing.T) {
	for _, cmd := range [][]string{{"sim", "--help"}, {"demo", "--help"}, {"probe", "--help"}} {
		out, _, err := run(t, context.Background(), cmd...)
		if err != nil || !strings.Contains(out, "oracle (cerner)") {
			t.Errorf("%s: %v; help does not list oracle (cerner):\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	for _, vendor := range []string{"oracle", "cerner", "Cerner"} {
		t.Run(vendor, func(t *testing.T) {
			// demo runs the simulator with this personality and syncs a
			// connection configured with the same vendor name.
			data := t.TempDir()
			out, stderr, err := run(t, context.Background(), "demo", "--once", "--json", "--data", data,
				"--patients", "3", "--vendor", vendor, "--log-level", "error")
			if err != nil {
				t.Fatalf("demo --vendor %s: %v\n%s", vendor, err, stderr)
			}
			if s := decodeSummary(t, out); s.Patients != 3 || s.Errors != 0 {
				t.Errorf("demo --vendor %s = %+v, want 3 patients, no errors", vendor, s)
			}
		})
	}
	if _, _, err := run(t, context.Background(), "demo", "--once", "--json", "--data", t.TempDir(), "--patients", "1", "--vendor", "millennium"); err == nil || !strings.Contains(err.Error(), "cerner") {
		t.Errorf("demo --vendor millennium: %v, want an error listing the accepted names", err)
	}
}

// TestProbeVendorAlias: probe --vendor cerner probes the simulator's
// Cerner-named personality with the oracle adapter.
func TestProbeVendorAlias(t *testing.T) {
	base := personalityServer(t, "cerner")
	out, err := runProbe(t, "hospital-c", "--base-url", base, "--vendor", "cerner", "--data", t.TempDir())
	if err != nil {
		t.Fatalf("probe --vendor cerner: %v\n%s", err, out)
	}
	if !strings.Contains(out, "adapter oracle") {
		t.Errorf("probe --vendor cerner output lacks the oracle adapter:\n%s", out)
	}
}
