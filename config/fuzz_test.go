package config

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParse: any bytes give a Config or an error, never a panic or a hang,
// and Validate of whatever decoded never panics either.
func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("data: /var/lib/ehrgate\nhttp_addr: 127.0.0.1:8080\nsync_every: 15m\n"))
	f.Add([]byte("connections:\n  - name: epic\n    fhir_base_url: https://fhir.example.org/R4\n    types: [Patient, Observation]\n"))
	f.Add([]byte("hl7:\n  mllp_addr: :2575\n  identifier_pattern: '^[0-9]+$'\n  unsupported: keep\n  time_zone: America/New_York\n"))
	f.Add([]byte("sync_every: -1s\nstale_after: not-a-duration\n"))
	f.Add([]byte("events:\n  webhooks:\n    - url: http://[::1\n      secret_env: X\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	if b, err := os.ReadFile("testdata/example.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		// Decoding is deterministic, and Validate copes with whatever decoded.
		again, err := Parse(b)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
		_ = cfg.Validate()
	})
}
