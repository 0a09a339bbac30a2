package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ehrgate/store/sqlite"
)

// TestDemoSyncsAfterTwoKeyRotations: the simulated EHR knows ehrgate's
// backend client by its JWKS URL, so the demo keeps syncing while `ehrgate
// keys rotate` replaces its signing key twice, each time past the grace
// period and with the replaced key retired from the JWKS (a copied key set
// would then refuse every new client assertion). Access tokens live one
// second, so each sync checked authenticates anew.
func TestDemoSyncsAfterTwoKeyRotations(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	d := startDemo(t, 3, "--sync-every", "300ms", "--access-token-ttl", "1s")
	first := publishedKIDs(t, d)
	if len(first) != 1 {
		t.Fatalf("the demo publishes %d keys before any rotation, want 1", len(first))
	}
	seen := slices.Clone(first)
	for round := 1; round <= 2; round++ {
		before := publishedKIDs(t, d)
		out, stderr, err := run(t, context.Background(), "keys", "rotate", "--data", d.data,
			"--grace", "1ms", "--retire-after", "1ms", "--log-level", "error")
		if err != nil {
			t.Fatalf("keys rotate (round %d): %v\n%s", round, err, stderr)
		}
		rotated := time.Now()
		if !strings.Contains(out, "created RS384 key") {
			t.Fatalf("keys rotate printed %q", out)
		}
		// Past the grace period the new key signs and the one it
		// replaced drops out of the JWKS.
		deadline := time.Now().Add(10 * time.Second)
		for {
			now := publishedKIDs(t, d)
			if len(now) == 1 && !slices.Contains(before, now[0]) {
				seen = append(seen, now[0])
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the JWKS still holds %v (before rotation: %v)", round, now, before)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// A sync that completed three seconds after the rotation began
		// after it, with a token the new key's assertion obtained.
		want := float64(rotated.Unix() + 3)
		deadline = time.Now().Add(45 * time.Second)
		for lastSyncSuccess(t, d) < want {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no sync completed after the key rotation (last success %.0f, want >= %.0f); logs:\n%s",
					round, lastSyncSuccess(t, d), want, tail(d.logs.String(), 3000))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if m := get(t, d.base+"/metrics"); !strings.Contains(m, `ehrgate_connection_needs_reauthorization{connection="demo"} 0`) {
			t.Errorf("round %d: the demo connection needs reauthorization", round)
		}
	}
	if len(seen) != 3 {
		t.Errorf("signing keys over the test = %v, want three distinct", seen)
	}
}

// publishedKIDs returns the key ids of the demo's JWKS.
func publishedKIDs(t *testing.T, d *demoRun) []string {
	t.Helper()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(get(t, d.base+"/.well-known/jwks.json")), &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	return out
}

var lastSuccessRE = regexp.MustCompile(`(?m)^ehrgate_sync_last_success_timestamp_seconds\{connection="demo"\} (\S+)$`)

// lastSyncSuccess returns the Unix time of the demo connection's last
// completed sync, from /metrics.
func lastSyncSuccess(t *testing.T, d *demoRun) float64 {
	t.Helper()
	m := lastSuccessRE.FindStringSubmatch(get(t, d.base+"/metrics"))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestDemoEpicExtensionsReachTheChart: through the whole pipeline (the
// simulator's Epic personality, SMART Backend Services, the sync, the
// normalizer with the Epic profile's extensions, the store, the dashboard)
// a synthetic patient's US Core race and ethnicity and Epic's legal-sex and
// sex-for-clinical-use extensions reach the normalized model and the
// chart's patient header.
func TestDemoEpicExtensionsReachTheChart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	d := startDemo(t, 2, "--vendor", "epic")
	page := get(t, d.base+"/patients/demo/p00000")
	header := page[:max(strings.Index(page, `<nav class="toc"`), 0)]
	for _, want := range []string{"<dt>Race</dt>", "<dt>Ethnicity</dt>", "<dt>Birth sex</dt>",
		`<dt>Legal sex</dt>`, `<dt>Sex for clinical use</dt>`, `<span class="muted">(Epic)</span>`} {
		if !strings.Contains(header, want) {
			t.Errorf("chart header lacks %s:\n%s", want, header)
		}
	}
	d.stop(t)

	st, err := sqlite.OpenDir(context.Background(), d.data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.Get(context.Background(), "demo", "Patient", "p00000")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Gender, Race, Ethnicity, BirthSex string
		Extensions                        []struct{ Name, Value, Source string }
		UnknownExtensions                 []string
	}
	if err := json.Unmarshal(rec.Normalized, &p); err != nil {
		t.Fatal(err)
	}
	if p.Race == "" || p.Ethnicity == "" || p.BirthSex == "" {
		t.Errorf("normalized patient lacks US Core race/ethnicity/birth sex: %s", rec.Normalized)
	}
	var got []string
	for _, e := range p.Extensions {
		got = append(got, e.Name+"="+e.Value+"/"+e.Source)
	}
	want := []string{"legalSex=" + p.Gender + "/Epic", "sexForClinicalUse=" + p.Gender + "/Epic"}
	if !slices.Equal(got, want) || len(p.UnknownExtensions) != 0 {
		t.Errorf("normalized extensions = %v, unknown %v; want %v and none unknown", got, p.UnknownExtensions, want)
	}
}
