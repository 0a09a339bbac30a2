// Package bdtkit runs the SMART Bulk Data server test kit (bdt,
// github.com/smart-on-fhir/bdt, vendored at a pinned commit in interop/bdt)
// from Go tests against one of ehrgate's Bulk Data servers, and checks its
// results: every test must pass, except the kit's own defects (Defects),
// each accepted only with its exact message. Tests skip, saying what to
// install, when Node.js or the kit's dependencies are absent.
//
// interop/bdt/run.js prints one JSON object a line per test: path, name,
// status (succeeded, failed, warned, not-supported, not-implemented,
// skipped) and the messages saying why it failed or did not apply; never
// requests, responses or tokens.
package bdtkit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Result is one test's outcome.
type Result struct {
	Path     string   `json:"path"` // the kit's test path, e.g. "2.1.14"
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Messages []string `json:"messages"` // why it failed, did not apply or warned
}

// Report is a whole run's outcome.
type Report struct {
	Results []Result
	Output  string // the kit's stderr and any other output
}

// Counts returns passed (succeeded or warned), failed and not applicable
// (every other status) counts.
func (r Report) Counts() (passed, failed, na int) {
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

// dir finds interop/bdt from the test's working directory (a package
// directory of the module).
func dir(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "interop", "bdt")
		}
		if filepath.Dir(d) == d {
			t.Fatalf("bdtkit: no go.mod above %s", wd)
		}
	}
}

// Require skips the test unless node and the kit's dependencies are
// installed, and returns node and the kit's runner.
func Require(t testing.TB) (node, runner string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Bulk Data test kit (bdt) needs Node.js 14+; then run scripts/install-test-deps.sh")
	}
	d := dir(t)
	if _, err := os.Stat(filepath.Join(d, "node_modules", "got")); err != nil {
		t.Skip("the Bulk Data test kit's dependencies are not installed: run scripts/install-test-deps.sh (npm ci in interop/bdt)")
	}
	return node, filepath.Join(d, "run.js")
}

// Run writes cfg as the kit's configuration (see interop/bdt's
// config-examples/template.js upstream: baseURL, the export endpoints,
// fastestResource, authentication, requests) and runs the whole Bulk Data
// 2.0 suite.
func Run(t testing.TB, ctx context.Context, cfg map[string]any) Report {
	t.Helper()
	node, runner := Require(t)
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "bdt-config.json")
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, runner, cfgFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("bdt did not finish in time: %v\n%s", ctx.Err(), stderr.String())
	}
	rep := Parse(out)
	rep.Output += stderr.String()
	if err != nil && len(rep.Results) == 0 {
		t.Fatalf("bdt: %v\n%s", err, rep.Output)
	}
	return rep
}

// Parse reads run.js's output.
func Parse(out []byte) Report {
	var rep Report
	var other strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var r Result
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

// Known is a test result accepted although it is not a pass. It is
// accepted only with that status and a message containing Because.
type Known struct {
	Status  string
	Because string // a substring of the kit's message
	Reason  string // why it is accepted
}

// Check fails t for every failed test and every test not run (every
// status but succeeded and warned), except the known ones, keyed by test
// path.
func Check(t testing.TB, rep Report, known map[string]Known) {
	t.Helper()
	passed, failed, na := rep.Counts()
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
var v1Only = Known{"skipped", "requires API version <= 1.0", "a Bulk Data 1.0 test (the suite is run for 2.0)"}

// Defects are the kit's tests (commit 3a17211) that no server following
// the specifications can pass, plus its Bulk Data 1.0 tests, which a 2.0
// run skips. The same against every server.
var Defects = map[string]Known{
	"0.3.15": {"failed", "jti", "the kit sends one client assertion (one jti) with five token requests; " +
		"SMART Backend Services says the server SHALL refuse a jti seen before, so only the first grant can succeed"},
	"0.3.16":   {"failed", "jti", "as 0.3.15, with the v2 scopes"},
	"2.0.1.22": v1Only, "2.1.1.22": v1Only, "2.2.1.22": v1Only,
	"4.3": {"failed", "No OperationOutcome errors found in the errors array", "the kit looks for OperationOutcome resources " +
		"inline in the manifest's error array; the IG's error array lists files (type, url), and the warnings are in the " +
		"OperationOutcome file it names (ehrsim/bulkexport's TestKickoffLenientWarnings checks them)"},
}

// Key makes the P-384 key the kit signs its client assertions with
// (ES384, as SMART Backend Services recommends): the private JWK for the
// kit's configuration and the public JWK Set to register.
func Key(t testing.TB) (private map[string]any, publicSet json.RawMessage) {
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
