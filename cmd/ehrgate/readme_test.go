package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The README's shell blocks are executed by TestREADMECommands. The rules,
// written here once so that the README can follow them:
//
//   - Every line of a ```sh (bash, shell, console) block is an ehrgate command (`ehrgate ...` or
//     `go run ./cmd/ehrgate ...`, several joined by `&&`), a comment, or
//     blank. Anything else (make, scripts, export) needs the block to be
//     marked with `<!-- not run: REASON -->` on the line before its fence;
//     the test logs the reason.
//   - A comment right under a command is its claimed output: `"key":value`
//     pairs must appear in the command's JSON output with those values
//     (but for timings), and a claim that starts with `{` must be one JSON
//     object holding every key it shows. `...` elides.
//   - Commands run in-process with the README's paths replaced by temporary
//     ones (one data directory per block, so that a second run sees the
//     first one's store; also for a command that names none) and free ports; commands that run until stopped
//     (serve, sim, demo without --once) are started, checked at /healthz
//     once listening (demo: once its first sync printed), and stopped.
//   - A command must exit 0 (the README says when it exits otherwise).

// readmeTempPaths are the README's example locations; each is replaced by
// a temporary directory of the block (the config file by a minimal one:
// the README's example names hospitals).
var readmeTempPaths = []string{"/tmp/ehrgate-demo", "/var/lib/ehrgate"}

const readmeConfigPath = "/etc/ehrgate/ehrgate.yaml"

// readmeVolatile are claimed values that differ from run to run.
var readmeVolatile = []string{"duration_ms"}

type readmeCommand struct {
	line   int
	args   []string // after "ehrgate"
	claims []string
}

type readmeBlock struct {
	line     int
	notRun   string // the reason when marked
	commands []readmeCommand
	bad      []string // lines that are not ehrgate commands
}

// shellFences open the blocks whose lines are commands.
var shellFences = []string{"```sh", "```bash", "```shell", "```console"}

var (
	notRunMarker = regexp.MustCompile(`^<!--\s*not run:\s*(.+?)\s*-->$`)
	claimPair    = regexp.MustCompile(`"([A-Za-z_]+)":(-?[0-9]+)`)
	claimKey     = regexp.MustCompile(`[{,]"([A-Za-z_]+)":`)
)

func parseREADME(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks                []readmeBlock
		cur                   *readmeBlock
		prev                  string // the last non-blank line outside blocks
		fence                 bool   // inside a non-sh block
		lastWasCommandOrClaim bool
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case cur == nil && !fence && slices.Contains(shellFences, line):
			cur = &readmeBlock{line: n}
			if m := notRunMarker.FindStringSubmatch(prev); m != nil {
				cur.notRun = m[1]
			}
			lastWasCommandOrClaim = false
			continue
		case cur == nil && strings.HasPrefix(line, "```"):
			fence = !fence
			continue
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		if cur == nil {
			if line != "" && !fence {
				prev = line
			}
			continue
		}
		switch {
		case line == "":
			lastWasCommandOrClaim = false
		case strings.HasPrefix(line, "#"):
			if lastWasCommandOrClaim {
				c := &cur.commands[len(cur.commands)-1]
				c.claims = append(c.claims, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			}
		default:
			lastWasCommandOrClaim = true
			for _, part := range strings.Split(line, " && ") {
				args, ok := ehrgateArgs(part)
				if !ok {
					cur.bad = append(cur.bad, fmt.Sprintf("README.md:%d: %q", n, part))
					lastWasCommandOrClaim = false
					continue
				}
				cur.commands = append(cur.commands, readmeCommand{line: n, args: args})
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// ehrgateArgs returns the arguments of an ehrgate command line, false for
// anything else (or for shell syntax the test does not interpret).
func ehrgateArgs(s string) ([]string, bool) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if strings.ContainsAny(s, "$`'\"|;<>") {
		return nil, false
	}
	for _, p := range []string{"ehrgate ", "go run ./cmd/ehrgate "} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return strings.Fields(rest), true
		}
	}
	return nil, false
}

func TestREADMECommands(t *testing.T) {
	if raceEnabled {
		t.Skip("the README's commands run without -race (make test runs TestREADMECommands on its own; the race detector makes its three 120-patient syncs take minutes)")
	}
	blocks := parseREADME(t, filepath.Join("..", "..", "README.md"))
	ran := 0
	for _, b := range blocks {
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			if b.notRun != "" {
				t.Skipf("README.md:%d marked not run: %s", b.line, b.notRun)
			}
			for _, bad := range b.bad {
				t.Errorf("%s is not an ehrgate command the test can run; mark the block <!-- not run: REASON -->", bad)
			}
			dir := t.TempDir()
			cfg := filepath.Join(dir, "ehrgate.yaml")
			if err := os.WriteFile(cfg, []byte("http_addr: 127.0.0.1:0\nsync_every: 0\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range b.commands {
				args := make([]string, len(c.args))
				for i, a := range c.args {
					switch {
					case slices.Contains(readmeTempPaths, a):
						a = filepath.Join(dir, "data")
					case a == readmeConfigPath:
						a = cfg
					}
					args[i] = a
				}
				// The README's default data directory (./ehrgate-data)
				// becomes the block's too.
				if sub, _, err := newRootCmd(nil, nil, nil).Find(args); err == nil && sub.Flags().Lookup("data") != nil &&
					!slices.ContainsFunc(args, func(a string) bool { return a == "--data" || a == "--store" || strings.HasPrefix(a, "--data=") }) {
					args = append(args, "--data", filepath.Join(dir, "data"))
				}
				runREADMECommand(t, c, args)
				ran++
			}
		})
	}
	if ran == 0 {
		t.Error("no README command ran")
	}
}

// syncBuffer is an io.Writer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func runREADMECommand(t *testing.T, c readmeCommand, args []string) {
	t.Helper()
	where := fmt.Sprintf("README.md:%d: ehrgate %s", c.line, strings.Join(c.args, " "))
	has := func(flag string) bool {
		return slices.ContainsFunc(args, func(a string) bool { return a == flag || strings.HasPrefix(a, flag+"=") })
	}
	long := len(args) > 0 && (args[0] == "serve" || args[0] == "sim" || (args[0] == "demo" && !has("--once")))
	// Free ports, and quiet logs, whatever the README line says.
	if len(args) > 0 && (args[0] == "serve" || args[0] == "demo") && !has("--http-addr") {
		args = append(args, "--http-addr", "127.0.0.1:0")
	}
	if len(args) > 0 && args[0] == "demo" && !has("--mllp-addr") {
		args = append(args, "--mllp-addr", "127.0.0.1:0")
	}
	if len(args) > 0 && args[0] == "sim" && !has("--addr") {
		args = append(args, "--addr", "127.0.0.1:0")
	}
	if !has("--log-level") {
		args = append(args, "--log-level", "error")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // a loaded 2-core machine
	defer cancel()
	var out, errOut syncBuffer
	cmd := newRootCmd(&out, &errOut, nil)
	cmd.SetArgs(args)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- cmd.ExecuteContext(ctx) }()

	if long {
		ready := regexp.MustCompile(`dashboard: (http://[^/\s]+)/|FHIR base (http://\S+)`)
		var base string
		for base == "" {
			select {
			case err := <-done:
				t.Fatalf("%s: exited before it was ready: %v (exit %d)\n%s%s", where, err, exitStatus(err), out.String(), errOut.String())
			case <-time.After(50 * time.Millisecond):
			}
			s := out.String()
			if m := ready.FindStringSubmatch(s); m != nil && (args[0] != "demo" || strings.Contains(s, "synced ")) {
				base = m[1] + m[2]
			}
		}
		if args[0] != "sim" {
			resp, err := http.Get(base + "/healthz")
			if err != nil {
				t.Fatalf("%s: GET /healthz: %v", where, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: GET /healthz = %d, want 200", where, resp.StatusCode)
			}
		}
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: did not stop within 15 s of its context's end", where)
		}
		t.Logf("%s: started, answered, stopped (%v)", where, time.Since(start).Round(time.Millisecond))
		return
	}

	err := <-done
	if code := exitStatus(err); code != 0 {
		t.Fatalf("%s: exit status %d, want 0: %v\n%s", where, code, err, errOut.String())
	}
	t.Logf("%s: exit 0 (%v)", where, time.Since(start).Round(time.Millisecond))
	for _, p := range claimProblems(out.String(), c.claims) {
		t.Errorf("%s: %s\n%s", where, p, out.String())
	}
}

// claimProblems compares a command's output with the README's claimed
// output and returns what disagrees.
func claimProblems(out string, claims []string) []string {
	if len(claims) == 0 {
		return nil
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		return []string{fmt.Sprintf("the README shows JSON output, got %v", err)}
	}
	numbers := map[string]float64{} // every key at any depth; objects as 0
	var walk func(map[string]any)
	walk = func(m map[string]any) {
		for k, v := range m {
			switch v := v.(type) {
			case float64:
				numbers[k] = v
			case map[string]any:
				numbers[k] = 0
				walk(v)
			}
		}
	}
	walk(obj)
	var problems []string
	for _, claim := range claims {
		if strings.HasPrefix(claim, "{") {
			for _, m := range claimKey.FindAllStringSubmatch(claim, -1) {
				if _, ok := numbers[m[1]]; !ok {
					problems = append(problems, fmt.Sprintf("the README shows key %q; the output has none", m[1]))
				}
			}
		}
		for _, m := range claimPair.FindAllStringSubmatch(claim, -1) {
			got, ok := numbers[m[1]]
			want, _ := strconv.ParseFloat(m[2], 64)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("the README shows %s; the output has no such key", m[0]))
			case !slices.Contains(readmeVolatile, m[1]) && got != want:
				problems = append(problems, fmt.Sprintf("the README shows %s; the output has %v", m[0], got))
			}
		}
	}
	return problems
}

// TestREADMEClaimsChecked: the claim checker catches a wrong number, a
// missing key and non-JSON output, and ignores timings.
func TestREADMEClaimsChecked(t *testing.T) {
	out := `{"patients":3,"resources":{"Patient":3},"new":9,"duration_ms":12}`
	for _, tc := range []struct {
		claims []string
		want   int
	}{
		{[]string{`{"patients":3,"resources":{"Patient":3,...},"new":9,"duration_ms":2100}`}, 0},
		{[]string{`... "new":9 ...`}, 0},
		{[]string{`{"patients":120,...}`}, 1},
		{[]string{`{"patients":3,"errors":0}`}, 2}, // key and pair both missing
		{[]string{`... "Patient":4 ...`}, 1},
	} {
		if got := claimProblems(out, tc.claims); len(got) != tc.want {
			t.Errorf("claimProblems(%q) = %q, want %d problems", tc.claims, got, tc.want)
		}
	}
	if got := claimProblems("synced demo: 3 patients", []string{`{"patients":3}`}); len(got) != 1 {
		t.Errorf("claimProblems(text output) = %q, want one problem", got)
	}
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"ehrgate migrate --data /x", true},
		{"go run ./cmd/ehrgate demo --once", true},
		{"make test", false},
		{"scripts/bdt.sh", false},
		{`export EHRGATE_STORE=postgres://x EHRGATE_KEK="$(cat k)"`, false},
	} {
		if _, ok := ehrgateArgs(tc.line); ok != tc.ok {
			t.Errorf("ehrgateArgs(%q) ok = %v, want %v", tc.line, ok, tc.ok)
		}
	}
}
