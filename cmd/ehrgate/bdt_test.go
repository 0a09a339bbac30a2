package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"ehrgate/ehrsim/smartauth"
)

// The SMART Bulk Data server test kit (bdt, github.com/smart-on-fhir/bdt),
// vendored at a pinned commit under interop/bdt (see its README) and run
// against ehrgate's Bulk Data servers: `bdt test --reporter json` prints one
// JSON event a line; every testEnd carries the test's status.

// bdtDir is the kit's install directory, relative to this package.
const bdtDir = "../../interop/bdt"

// bdtKit returns the node binary and the kit's entry point, or skips the
// test saying what is missing.
func bdtKit(t *testing.T) (node, bin string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Bulk Data test kit (bdt) needs Node.js 14+; then run scripts/install-test-deps.sh")
	}
	dir, err := filepath.Abs(bdtDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "got")); err != nil {
		t.Skip("the Bulk Data test kit's dependencies are not installed: run scripts/install-test-deps.sh (npm ci in interop/bdt)")
	}
	return node, filepath.Join(dir, "run.js")
}

// bdtResult is one test's outcome.
type bdtResult struct {
	Path     string   `json:"path"` // the kit's test path, e.g. "2.1.14"
	Name     string   `json:"name"`
	Status   string   `json:"status"`   // succeeded, failed, warned, not-supported, not-implemented, skipped
	Messages []string `json:"messages"` // why it failed, did not apply or warned
}

// bdtReport is a whole run's outcome.
type bdtReport struct {
	Results []bdtResult
	Output  string // the kit's stderr and any non-JSON output
}

// counts returns passed (succeeded or warned), failed and not applicable
// (every other status) counts.
func (r bdtReport) counts() (passed, failed, na int) {
	for _, x := range r.Results {
		switch x.Status {
		case "succeeded", "warned":
			passed++
		case "failed":
			failed++
		default:
			na++
		}
	}
	return passed, failed, na
}

// runBDT writes cfg as the kit's configuration and runs the whole suite
// (Bulk Data API 2.0).
func runBDT(t *testing.T, ctx context.Context, cfg map[string]any) bdtReport {
	t.Helper()
	node, bin := bdtKit(t)
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "bdt-config.json")
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, bin, cfgFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("bdt did not finish in time: %v\n%s", ctx.Err(), stderr.String())
	}
	rep := parseBDT(out)
	rep.Output += stderr.String()
	if err != nil && len(rep.Results) == 0 {
		t.Fatalf("bdt: %v\n%s", err, rep.Output)
	}
	return rep
}

// parseBDT reads run.js's output: one JSON object a line per test.
func parseBDT(out []byte) bdtReport {
	var rep bdtReport
	var other strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var r bdtResult
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Status == "" {
			other.Write(sc.Bytes())
			other.WriteByte('\n')
			continue
		}
		rep.Results = append(rep.Results, r)
	}
	rep.Output = other.String()
	return rep
}

// bdtKnown is a test result accepted although it is not a pass: the kit
// contradicts the specification there (or cannot apply by design). It is
// accepted only with that status and a message containing Because.
type bdtKnown struct {
	Status  string
	Because string // a substring of the kit's message
	Reason  string // why it is accepted
}

// checkBDT fails t for every failed test and for every test not run for
// lack of a feature (every status but succeeded and warned), except the
// known ones, keyed by test path.
func checkBDT(t *testing.T, rep bdtReport, known map[string]bdtKnown) {
	t.Helper()
	passed, failed, na := rep.counts()
	t.Logf("bdt: %d passed, %d failed, %d not applicable (of %d)", passed, failed, na, len(rep.Results))
	for _, r := range rep.Results {
		msg := strings.Join(r.Messages, "; ")
		k, isKnown := known[r.Path]
		isKnown = isKnown && k.Status == r.Status && strings.Contains(msg, k.Because)
		switch {
		case r.Status == "succeeded":
		case r.Status == "warned":
			t.Logf("bdt %s %q warned: %s", r.Path, r.Name, msg)
		case isKnown:
			t.Logf("bdt %s %q %s, accepted: %s", r.Path, r.Name, r.Status, k.Reason)
		default:
			t.Errorf("bdt %s %q %s: %s", r.Path, r.Name, r.Status, msg)
		}
	}
	if len(rep.Results) == 0 {
		t.Errorf("bdt ran no tests:\n%s", rep.Output)
	}
	if t.Failed() && strings.TrimSpace(rep.Output) != "" {
		t.Logf("bdt output:\n%s", rep.Output)
	}
}

// v1Only: the kit runs the Bulk Data 2.0 suite; this test is for 1.0.
var v1Only = bdtKnown{"skipped", "requires API version <= 1.0", "a Bulk Data 1.0 test (the suite is run for 2.0)"}

// bdtKitDefects are the kit's tests (commit 3a17211) that no server
// following the specifications can pass, the same against every server.
var bdtKitDefects = map[string]bdtKnown{
	"0.3.15": {"failed", "jti was already used", "the kit sends one client assertion (one jti) with five token requests; " +
		"SMART Backend Services says the server SHALL refuse a jti seen before, so only the first grant can succeed"},
	"0.3.16":   {"failed", "jti was already used", "as 0.3.15, with the v2 scopes"},
	"2.0.1.22": v1Only, "2.1.1.22": v1Only, "2.2.1.22": v1Only,
	"4.3": {"failed", "No OperationOutcome errors found in the errors array", "the kit looks for OperationOutcome resources " +
		"inline in the manifest's error array; the IG's error array lists files (type, url), and the warnings are in the " +
		"OperationOutcome file it names (checked by TestKickoffLenientWarnings in ehrsim/bulkexport)"},
}

// bdtKey makes the P-384 key the kit signs its client assertions with
// (ES384, as the Backend Services profile recommends): the private JWK for
// the kit's configuration and the public JWK Set to register.
func bdtKey(t *testing.T) (private map[string]any, publicSet json.RawMessage) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv := jose.JSONWebKey{Key: k, KeyID: "bdt-1", Algorithm: "ES384", Use: "sig"}
	raw, err := priv.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &private); err != nil {
		t.Fatal(err)
	}
	publicSet, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{priv.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	return private, publicSet
}

// TestBulkDataTestKitAgainstTheSimulator runs the SMART Bulk Data server
// test kit against `ehrgate sim` with SMART Backend Services on: every
// test must pass (or apply: none is skipped for lack of a feature).
func TestBulkDataTestKitAgainstTheSimulator(t *testing.T) {
	bdtKit(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	private, public := bdtKey(t)
	// The kit's public keys, served where a registered JWKS URL points
	// (the kit then also checks the jku header).
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(public)
	}))
	defer jwks.Close()
	clients := []smartauth.Client{{ID: "bdt", Name: "SMART Bulk Data test kit", JWKSURL: jwks.URL + "/jwks.json",
		TokenEndpointAuth: "private_key_jwt", Scopes: []string{"system/*.read", "system/*.rs"}}}
	f := simFlags{patients: 5, seed: 3, vendor: "generic", bulkFileSize: 5000, accessTTL: time.Hour, pageSize: 50, bulkScopeFilter: true}
	sim, err := f.newSim(log)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := f.start(ctx, sim, "127.0.0.1:0", clients, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.stop()
	rep := runBDT(t, ctx, map[string]any{
		"baseURL":             ep.base,
		"groupExportEndpoint": "Group/all/$export",
		"fastestResource":     "Patient",
		"authentication": map[string]any{
			"type":               "backend-services",
			"clientId":           "bdt",
			"privateKey":         private,
			"scope":              "system/*.read",
			"tokenSignAlgorithm": "ES384",
			"tokenExpiresIn":     "5m",
			"jwksUrl":            jwks.URL + "/jwks.json",
		},
		"requests": map[string]any{"timeout": 30000},
	})
	checkBDT(t, rep, bdtKitDefects)
}
