package deploy

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// repoRoot is the module root: go test runs in the package directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// readText reads a file of this package's directory.
func readText(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lookPathOrSkip returns the path of an external tool, or skips the test
// saying which tool is missing and what therefore goes unchecked.
func lookPathOrSkip(t *testing.T, tool, unchecked string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not on PATH: %s is not checked (the Go checks still run)", tool, unchecked)
	}
	return p
}

// run runs a command with a deadline and returns its combined output and
// exit error. The deadline is generous: the Dockerfile's build of
// ./cmd/ehrgate (-trimpath and its own ldflags, so little of the build
// cache applies) took over 3 minutes on 2 cores beside the race suite.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// shellWords splits a POSIX shell command into words: blanks separate words,
// single quotes keep everything, double quotes keep everything but \" and
// \\, a backslash outside quotes escapes the next character. It knows no
// expansions, operators or globbing: callers split on && first.
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errUnterminated(s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			in = true
			for i++; ; i++ {
				if i >= len(s) {
					return nil, errUnterminated(s)
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

type errUnterminated string

func (e errUnterminated) Error() string { return "unterminated quote in " + string(e) }

func TestShellWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`CGO_ENABLED=0 go build -ldflags="-s -X main.version=v1" -o /x ./cmd`, []string{"CGO_ENABLED=0", "go", "build", "-ldflags=-s -X main.version=v1", "-o", "/x", "./cmd"}},
		{`'a b'"c\"d" e\ f`, []string{`a bc"d`, "e f"}},
	} {
		got, err := shellWords(tc.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("shellWords(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := shellWords(`a "b`); err == nil {
		t.Errorf("shellWords(%q) = nil error, want unterminated quote", `a "b`)
	}
}
