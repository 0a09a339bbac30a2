package deploy

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A Dockerfile instruction: continuation lines joined, comments dropped.
type instruction struct {
	Line  int      // line of the instruction's first line
	Cmd   string   // FROM, RUN, COPY, ... (upper case)
	Flags []string // leading --name=value options, as written
	Args  string   // the rest
}

// flag returns the value of the option --name.
func (in instruction) flag(name string) (string, bool) {
	for _, f := range in.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// A build stage.
type stage struct {
	Index int
	Image string // after expanding global ARGs
	Name  string // AS name, or ""
	Body  []instruction
}

// parseDockerfile reads instructions the way Docker's parser does for the
// subset used here: a line ending in a backslash continues on the next line,
// comment and empty lines inside a continuation are skipped, and options
// (--from=, --chown=, --mount=) come before the arguments. Heredocs are not
// supported and are reported as errors.
func parseDockerfile(r io.Reader) ([]instruction, error) {
	var (
		out  []instruction
		cur  strings.Builder
		from int
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // also inside a continuation, as Docker does
		}
		if cur.Len() == 0 {
			from = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		in, err := splitInstruction(from, cur.String())
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", from)
	}
	return out, nil
}

func splitInstruction(line int, s string) (instruction, error) {
	fields := strings.Fields(s)
	in := instruction{Line: line, Cmd: strings.ToUpper(fields[0])}
	rest := strings.TrimSpace(s[strings.Index(s, fields[0])+len(fields[0]):])
	for strings.HasPrefix(rest, "--") {
		f, r, _ := strings.Cut(rest, " ")
		in.Flags = append(in.Flags, f)
		rest = strings.TrimSpace(r)
	}
	in.Args = rest
	if strings.Contains(rest, "<<") && (in.Cmd == "RUN" || in.Cmd == "COPY") {
		return in, fmt.Errorf("line %d: heredocs are not supported by this test's parser", line)
	}
	return in, nil
}

// stages groups instructions by FROM, expanding the ARGs declared before the
// first FROM in each image reference.
func stages(ins []instruction) ([]stage, error) {
	global := map[string]string{}
	var out []stage
	for _, in := range ins {
		switch {
		case in.Cmd == "FROM":
			w := strings.Fields(in.Args)
			st := stage{Index: len(out), Image: os.Expand(w[0], func(k string) string { return global[k] })}
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				st.Name = w[2]
			} else if len(w) != 1 {
				return nil, fmt.Errorf("line %d: FROM %s: want IMAGE [AS NAME]", in.Line, in.Args)
			}
			out = append(out, st)
		case len(out) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			global[k] = v
		case len(out) == 0:
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
		default:
			out[len(out)-1].Body = append(out[len(out)-1].Body, in)
		}
	}
	return out, nil
}

// find returns the stage's instructions of one kind.
func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Body {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// args returns the stage's ARG defaults.
func (s stage) args() map[string]string {
	m := map[string]string{}
	for _, in := range s.find("ARG") {
		k, v, _ := strings.Cut(in.Args, "=")
		m[k] = v
	}
	return m
}

// execForm decodes a JSON-array (exec form) argument.
func execForm(in instruction) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(in.Args), &v); err != nil || len(v) == 0 {
		return nil, fmt.Errorf("line %d: %s %s is not in exec form (a JSON array of strings)", in.Line, in.Cmd, in.Args)
	}
	return v, nil
}

// goBuild is the `go build` command of a RUN instruction.
type goBuild struct {
	Line     int
	Env      []string          // VAR=value words before `go`
	Flags    map[string]string // -trimpath: "", -ldflags: "...", -o: "..."
	Packages []string
	Words    []string // the command as run, from `go` on
}

// Build flags that take a value when not written as -flag=value.
var valueFlags = map[string]bool{"o": true, "ldflags": true, "gcflags": true, "asmflags": true, "tags": true, "p": true,
	"mod": true, "modfile": true, "buildmode": true, "pkgdir": true, "installsuffix": true, "overlay": true, "pgo": true, "C": true}

var (
	shellLists    = regexp.MustCompile(`&&|;|\|\|`)          // separators of a shell list
	envAssignment = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`) // VAR=value before a command
)

// findGoBuild finds the one `go build` among the RUN instructions of the
// build stages, with the stage's ARG defaults (overridden by vars) expanded.
func findGoBuild(sts []stage, vars map[string]string) (goBuild, error) {
	var found []goBuild
	for _, st := range sts[:len(sts)-1] {
		args := st.args()
		lookup := func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			return args[k]
		}
		for _, in := range st.find("RUN") {
			for _, seg := range shellLists.Split(in.Args, -1) {
				words, err := shellWords(seg)
				if err != nil {
					return goBuild{}, fmt.Errorf("line %d: %w", in.Line, err)
				}
				gb := goBuild{Line: in.Line, Flags: map[string]string{}}
				i := 0
				for ; i < len(words) && envAssignment.MatchString(words[i]); i++ {
					gb.Env = append(gb.Env, os.Expand(words[i], lookup))
				}
				if len(words) < i+2 || words[i] != "go" || words[i+1] != "build" {
					continue
				}
				for j := i; j < len(words); j++ {
					words[j] = os.Expand(words[j], lookup)
				}
				gb.Words = words[i:]
				for j := i + 2; j < len(words); j++ {
					w := words[j]
					if !strings.HasPrefix(w, "-") {
						gb.Packages = append(gb.Packages, w)
						continue
					}
					name, val, hasVal := strings.Cut(strings.TrimLeft(w, "-"), "=")
					if !hasVal && valueFlags[name] && j+1 < len(words) {
						j++
						val = words[j]
					}
					gb.Flags[name] = val
				}
				found = append(found, gb)
			}
		}
	}
	if len(found) != 1 {
		return goBuild{}, fmt.Errorf("found %d `go build` commands in the build stages, want 1", len(found))
	}
	return found[0], nil
}

func loadDockerfile(t *testing.T) []stage {
	t.Helper()
	ins, err := parseDockerfile(strings.NewReader(readText(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("parsing Dockerfile: %v", err)
	}
	sts, err := stages(ins)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(sts) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	return sts
}

// finalUser returns the final stage's last USER, or "" when it has none.
func finalUser(sts []stage) string {
	users := sts[len(sts)-1].find("USER")
	if len(users) == 0 {
		return ""
	}
	return users[len(users)-1].Args
}

func TestParseDockerfile(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nARG V=1\nFROM golang:${V} AS b\nRUN --mount=type=cache,target=/x \\\n    # a comment\n    echo a \\\n    && CGO_ENABLED=0 go build -o /y ./cmd\nFROM scratch\nCOPY --from=b /y /y\n"
	ins, err := parseDockerfile(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	sts, err := stages(ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[0].Image != "golang:1" || sts[0].Name != "b" || sts[1].Image != "scratch" {
		t.Fatalf("stages = %+v, want golang:1 AS b, scratch", sts)
	}
	run := sts[0].find("RUN")[0]
	if run.Line != 4 || !slices.Equal(run.Flags, []string{"--mount=type=cache,target=/x"}) || !strings.HasPrefix(run.Args, "echo a") {
		t.Errorf("RUN = %+v, want line 4, one --mount, args from echo", run)
	}
	gb, err := findGoBuild(sts, nil)
	if err != nil || gb.Flags["o"] != "/y" || !slices.Equal(gb.Env, []string{"CGO_ENABLED=0"}) || !slices.Equal(gb.Packages, []string{"./cmd"}) {
		t.Errorf("findGoBuild = %+v, %v", gb, err)
	}
	if _, err := parseDockerfile(strings.NewReader("FROM a\nRUN x \\\n")); err == nil {
		t.Error("a continuation at end of file parsed without error")
	}
}

// TestDockerfile checks the image's shape: a Go build stage, a distroless or
// scratch final stage running as a non-root user with an exec-form
// entrypoint, and copies only from earlier stages.
func TestDockerfile(t *testing.T) {
	sts := loadDockerfile(t)
	if len(sts) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final stage", len(sts))
	}
	final := sts[len(sts)-1]

	// Build stage: the Go of go.mod.
	goVer := goModVersion(t)
	if img := sts[0].Image; !strings.HasPrefix(img, "golang:"+goVer) {
		t.Errorf("build stage FROM %s, want golang:%s (go.mod says go %s)", img, goVer, goVer)
	}

	// Final stage: nothing but the binary.
	if !strings.HasPrefix(final.Image, "gcr.io/distroless/") && final.Image != "scratch" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/... or scratch", final.Image)
	}
	if runs := final.find("RUN"); len(runs) > 0 {
		t.Errorf("line %d: RUN in the final stage, which has no shell", runs[0].Line)
	}
	for _, hc := range final.find("HEALTHCHECK") {
		t.Errorf("line %d: HEALTHCHECK in a final stage without a shell or HTTP client; probe /healthz and /readyz from the orchestrator", hc.Line)
	}

	user := finalUser(sts)
	uid, _, _ := strings.Cut(user, ":")
	switch {
	case user == "":
		t.Error("final stage has no USER: the container would run as root")
	case uid == "root" || uid == "0":
		t.Errorf("final stage USER %s, want a non-root user", user)
	}
	if _, err := strconv.Atoi(uid); err != nil {
		t.Errorf("final stage USER %s: want a numeric UID, so that Kubernetes' runAsNonRoot can verify it", user)
	}

	// Entrypoint and command.
	eps := final.find("ENTRYPOINT")
	if len(eps) != 1 {
		t.Fatalf("final stage has %d ENTRYPOINTs, want 1", len(eps))
	}
	ep, err := execForm(eps[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ep, []string{"/ehrgate"}) {
		t.Errorf("ENTRYPOINT %q, want [\"/ehrgate\"]", ep)
	}
	if cmds := final.find("CMD"); len(cmds) != 1 {
		t.Errorf("final stage has %d CMDs, want 1 (serve)", len(cmds))
	} else if cmd, err := execForm(cmds[0]); err != nil {
		t.Error(err)
	} else if !slices.Equal(cmd, []string{"serve"}) {
		t.Errorf("CMD %q, want [\"serve\"]", cmd)
	}

	// Every COPY --from names an earlier stage.
	names := map[string]int{}
	for _, st := range sts {
		names[strconv.Itoa(st.Index)] = st.Index
		if st.Name != "" {
			names[st.Name] = st.Index
		}
	}
	for _, st := range sts {
		for _, c := range append(st.find("COPY"), st.find("ADD")...) {
			from, ok := c.flag("from")
			if !ok {
				continue
			}
			if i, ok := names[from]; !ok || i >= st.Index {
				t.Errorf("line %d: COPY --from=%s names no earlier stage", c.Line, from)
			}
		}
	}

	// The build: static, trimmed, of ./cmd/ehrgate, into the file the final
	// stage copies to the entrypoint.
	gb, err := findGoBuild(sts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(gb.Env, "CGO_ENABLED=0") {
		t.Errorf("line %d: go build without CGO_ENABLED=0: the binary would need a libc the final image lacks", gb.Line)
	}
	if !slices.Equal(gb.Packages, []string{"./cmd/ehrgate"}) {
		t.Errorf("line %d: go build %q, want ./cmd/ehrgate", gb.Line, gb.Packages)
	}
	if _, ok := gb.Flags["trimpath"]; !ok {
		t.Errorf("line %d: go build without -trimpath", gb.Line)
	}
	if !slices.Contains(strings.Fields(gb.Flags["ldflags"]), "-s") {
		t.Errorf("line %d: go build -ldflags %q, want -s", gb.Line, gb.Flags["ldflags"])
	}
	copied := false
	for _, c := range final.find("COPY") {
		w := strings.Fields(c.Args)
		if _, ok := c.flag("from"); ok && len(w) == 2 && w[0] == gb.Flags["o"] && w[1] == ep[0] {
			copied = true
		}
	}
	if !copied {
		t.Errorf("no COPY --from puts the build's output %s at the entrypoint %s", gb.Flags["o"], ep[0])
	}

	// Ports and the data volume, owned by the final user.
	var exposed []string
	for _, e := range final.find("EXPOSE") {
		for _, p := range strings.Fields(e.Args) {
			exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
		}
	}
	for _, p := range []string{"8080", "2575"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %q lacks %s", exposed, p)
		}
	}
	volume := false
	for _, v := range final.find("VOLUME") {
		if vs, err := execForm(v); err == nil && slices.Contains(vs, "/var/lib/ehrgate") {
			volume = true
		}
	}
	if !volume {
		t.Error(`no VOLUME ["/var/lib/ehrgate"] in the final stage`)
	}
	owned := false
	for _, c := range final.find("COPY") {
		w := strings.Fields(c.Args)
		if chown, ok := c.flag("chown"); ok && chown == user && len(w) == 2 && w[1] == "/var/lib/ehrgate" {
			owned = true
		}
	}
	if !owned {
		t.Errorf("/var/lib/ehrgate is not created by a COPY --chown=%s: a fresh volume would be owned by root", user)
	}
}

// goModVersion returns go.mod's language version as MAJOR.MINOR.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// TestDockerBuildCommand runs the Dockerfile's own `go build` here and
// checks that the result is a static executable that reports the version
// passed in ldflags, as the image's would.
func TestDockerBuildCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building ./cmd/ehrgate")
	}
	const version = "v0.0.0-deploytest"
	gb, err := findGoBuild(loadDockerfile(t), map[string]string{"VERSION": version})
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ehrgate")
	words := slices.Clone(gb.Words)
	for i, w := range words {
		if w == "-o" && i+1 < len(words) {
			words[i+1] = bin
		} else if strings.HasPrefix(w, "-o=") {
			words[i] = "-o=" + bin
		}
	}
	env := append(os.Environ(), gb.Env...)
	if out, err := run(t, repoRoot(t), env, words[0], words[1:]...); err != nil {
		t.Fatalf("%s (the Dockerfile's build, line %d): %v\n%s", strings.Join(words, " "), gb.Line, err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (it has an ELF interpreter): it cannot run on distroless/static or scratch")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -ldflags -s did not take effect")
	}
	out, err := run(t, "", nil, bin, "version")
	if err != nil || !strings.Contains(out, version) {
		t.Errorf("ehrgate version = %q, %v; want it to report %s (set by -ldflags -X main.version)", out, err, version)
	}
}

// dockerignore is a list of .dockerignore patterns with Docker's semantics:
// paths relative to the context root, * and ? within one path element, **
// across elements, ! re-including, the last matching pattern winning, and a
// pattern matching a directory excluding what it holds.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(src string) (dockerignore, error) {
	var d dockerignore
	for line := range strings.Lines(src) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		neg := strings.HasPrefix(p, "!")
		p = filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		r, err := regexp.Compile(re.String())
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", line, err)
		}
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{r, neg})
	}
	return d, nil
}

// excluded reports whether the slash-separated path (relative to the
// context root) is left out of the build context.
func (d dockerignore) excluded(path string) bool {
	excl := false
	for _, p := range d {
		for prefix := path; ; {
			if p.re.MatchString(prefix) {
				excl = !p.negate
				break
			}
			i := strings.LastIndexByte(prefix, '/')
			if i < 0 {
				break
			}
			prefix = prefix[:i]
		}
	}
	return excl
}

func TestParseDockerignore(t *testing.T) {
	d, err := parseDockerignore("# c\n.git\n**/node_modules\ndata\n*.md\n!README.md\n")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		".git/HEAD": true, "interop/node_modules/x/y.js": true, "node_modules/a": true,
		"data/x": true, "terminology/data/x.csv": false, "NOTES.md": true, "README.md": false, "a/b.md": false,
		"go.mod": false,
	} {
		if got := d.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestDockerignore checks that the build context leaves out the repository
// metadata and local data, and keeps every file the build reads: go.mod,
// go.sum and the Go and embedded files of every package of the module that
// ./cmd/ehrgate imports.
func TestDockerignore(t *testing.T) {
	d, err := parseDockerignore(readText(t, "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git/config", "ehrgate-data/ehrgate.db", "interop/node_modules/x/package.json"} {
		if !d.excluded(p) {
			t.Errorf("Dockerfile.dockerignore keeps %s in the build context", p)
		}
	}

	root := repoRoot(t)
	env := append(os.Environ(), "CGO_ENABLED=0")
	out, err := run(t, root, env, "go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Standard,Module", "./cmd/ehrgate")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	needed := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Standard            bool
			Module              *struct{ Main bool }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Standard || p.Module == nil || !p.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list named only %d files the build reads; want the module's packages", len(needed))
	}
	for _, f := range needed {
		if d.excluded(f) {
			t.Errorf("Dockerfile.dockerignore leaves out %s, which the build reads", f)
		}
	}
}
