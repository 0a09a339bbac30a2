package ehr

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// fixturesDir returns the shared fixtures directory ($EHRGATE_FIXTURES,
// default ../shared/fixtures from the repository root), skipping the test
// when it is absent.
func fixturesDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures") // from ehr/ to the repo root's sibling
	}
	if _, err := os.Stat(filepath.Join(dir, "smart-config")); err != nil {
		t.Skipf("shared fixtures not found at %s (set EHRGATE_FIXTURES): %v", dir, err)
	}
	return dir
}

// TestDetectCaptures runs detection over the real vendor captures.
func TestDetectCaptures(t *testing.T) {
	dir := filepath.Join(fixturesDir(t), "smart-config")
	tests := []struct {
		capability, smart string
		vendor, version   string
		minConf           float64
	}{
		{"capability/epic-dstu2.Conformance.json", "", "epic", "May 2019 8.8.0.1", 0.6},
		{"capability/cerner-dstu2.Conformance.json", "", "oracle", "", 0.9},
		{"capability/meditech-dstu2.Conformance.json", "", "meditech", "", 0.9},
		{"capability/allscripts-dstu2.Conformance.json", "", "veradigm", "19.4.121.0", 0.9},
		{"", "well-known/cerner-r4-tenant-ec2458f2.smart-configuration.json", "oracle", "", 0.5},
		{"capability/cerner-dstu2.Conformance.json", "well-known/cerner-r4-tenant-ec2458f2.smart-configuration.json", "oracle", "", 1},
		{"capability/azure-api-for-fhir-r4.CapabilityStatement.json", "", Generic, "2.2.45", 0.5},
		{"capability/acme-r4-example.CapabilityStatement.json", "", Generic, "0.00.020.2134", 0.5},
		{"capability/inferno-r4-smart.CapabilityStatement.json", "", Generic, "0.00.020.2134", 0.5},
	}
	read := func(name string) []byte {
		if name == "" {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range tests {
		t.Run(tc.capability+tc.smart, func(t *testing.T) {
			v, ver, conf := Detect(context.Background(), read(tc.capability), read(tc.smart))
			if v != tc.vendor || ver != tc.version || conf < tc.minConf || conf > 1 {
				t.Errorf("Detect(%s, %s) = %q, %q, %.2f; want %q, %q, >= %.2f", tc.capability, tc.smart, v, ver, conf, tc.vendor, tc.version, tc.minConf)
			}
		})
	}
}

func TestDetectNothing(t *testing.T) {
	tests := []struct {
		name              string
		capability, smart string
		wantConf          float64
	}{
		{"nil", "", "", 0},
		{"malformed", "{", "", 0},
		{"plain", `{"resourceType":"CapabilityStatement","software":{"name":"ehrgate-sim","version":"0.1.0"}}`, "", 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c, s []byte
			if tc.capability != "" {
				c = []byte(tc.capability)
			}
			v, _, conf := Detect(context.Background(), c, s)
			if v != Generic || conf != tc.wantConf {
				t.Errorf("Detect(%q) = %q, %.2f; want generic, %.2f", tc.capability, v, conf, tc.wantConf)
			}
		})
	}
}

func FuzzDetect(f *testing.F) {
	f.Add([]byte(`{"publisher":"Cerner"}`), []byte(`{"token_endpoint":"https://authorization.cerner.com/x"}`))
	f.Add([]byte(`{`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, c, s []byte) {
		v, _, conf := Detect(context.Background(), c, s)
		if v == "" || conf < 0 || conf > 1 {
			t.Fatalf("Detect = %q, %.2f", v, conf)
		}
	})
}
