package deploy

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"ehrgate/config"
)

// unitFile is a systemd unit: section -> directive -> every assignment in
// order (list directives accumulate; an empty assignment resets them).
type unitFile map[string]map[string][]string

// parseUnit reads a unit file: [Section] headers, Key=Value lines, # and ;
// comments, and lines continued by a trailing backslash.
func parseUnit(r io.Reader) (unitFile, error) {
	u := unitFile{}
	section := ""
	var cont strings.Builder
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cont.WriteString(strings.TrimSpace(body) + " ")
			continue
		}
		line = cont.String() + line
		cont.Reset()
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: malformed section header %q", n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not Key=Value in a section", n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u, sc.Err()
}

// last returns the directive's effective value for single-valued
// directives: its last assignment.
func (u unitFile) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// list returns a list directive's effective items: those assigned after the
// last empty assignment, split on blanks.
func (u unitFile) list(section, key string) []string {
	var items []string
	for _, v := range u[section][key] {
		if v == "" {
			items = nil
			continue
		}
		items = append(items, strings.Fields(v)...)
	}
	return items
}

func unitBool(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

func loadUnit(t *testing.T) unitFile {
	t.Helper()
	u, err := parseUnit(strings.NewReader(readText(t, "ehrgate.service")))
	if err != nil {
		t.Fatalf("ehrgate.service: %v", err)
	}
	return u
}

func TestParseUnit(t *testing.T) {
	u, err := parseUnit(strings.NewReader("# c\n[Service]\nA=1\n; c\nB=x \\\n  y\nC=a\nC=\nC=b c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := u.last("Service", "B"); v != "x y" {
		t.Errorf("B = %q, want %q", v, "x y")
	}
	if got := u.list("Service", "C"); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("list(C) = %q, want [b c] (the empty assignment resets)", got)
	}
	if _, err := parseUnit(strings.NewReader("A=1\n")); err == nil {
		t.Error("a directive outside any section parsed without error")
	}
}

// TestSystemdUnit checks the unit's command and its hardening directives.
func TestSystemdUnit(t *testing.T) {
	u := loadUnit(t)
	const svc = "Service"

	for _, d := range []struct{ key, want string }{
		{"Type", "exec"},
		{"Restart", "on-failure"},
		{"StateDirectory", "ehrgate"},
		{"EnvironmentFile", "-/etc/ehrgate/ehrgate.env"},
		{"ProtectSystem", "strict"},
		{"UMask", "0077"},
	} {
		if got, _ := u.last(svc, d.key); got != d.want {
			t.Errorf("%s=%s, want %s", d.key, got, d.want)
		}
	}
	for _, key := range []string{
		"NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
		"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "RestrictNamespaces",
		"RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
	} {
		if v, _ := u.last(svc, key); !unitBool(v) {
			t.Errorf("%s=%s, want yes", key, v)
		}
	}

	// Who it runs as.
	user, _ := u.last(svc, "User")
	if dyn, _ := u.last(svc, "DynamicUser"); !unitBool(dyn) && (user == "" || user == "root" || user == "0") {
		t.Errorf("DynamicUser=%s User=%s: the service would run as root; want DynamicUser=yes or a dedicated User=", dyn, user)
	}
	if caps := u.list(svc, "CapabilityBoundingSet"); len(caps) > 0 || len(u[svc]["CapabilityBoundingSet"]) == 0 {
		t.Errorf("CapabilityBoundingSet = %q, want an empty assignment (no capabilities)", caps)
	}
	if caps := u.list(svc, "AmbientCapabilities"); len(caps) > 0 {
		t.Errorf("AmbientCapabilities = %q, want none", caps)
	}
	af := u.list(svc, "RestrictAddressFamilies")
	slices.Sort(af)
	if want := []string{"AF_INET", "AF_INET6", "AF_UNIX"}; !slices.Equal(af, want) {
		t.Errorf("RestrictAddressFamilies = %q, want %q", af, want)
	}
	allow := false
	for _, v := range u[svc]["SystemCallFilter"] {
		if !strings.HasPrefix(v, "~") && slices.Contains(strings.Fields(v), "@system-service") {
			allow = true
		}
	}
	if !allow {
		t.Errorf("SystemCallFilter = %q, want an allow list of @system-service", u[svc]["SystemCallFilter"])
	}
	if v, _ := u.last("Install", "WantedBy"); v != "multi-user.target" {
		t.Errorf("WantedBy=%s, want multi-user.target", v)
	}

	// The command: serve on the state directory, dashboard on loopback.
	execs := u[svc]["ExecStart"]
	if len(execs) != 1 {
		t.Fatalf("%d ExecStart lines, want 1", len(execs))
	}
	if prefix := execs[0][:len(execs[0])-len(strings.TrimLeft(execs[0], "-:@+!"))]; strings.ContainsAny(prefix, "+!") {
		t.Errorf("ExecStart=%s: a + or ! prefix would run it with full privileges", execs[0])
	}
	words, err := shellWords(strings.TrimLeft(execs[0], "-:@+!"))
	if err != nil {
		t.Fatal(err)
	}
	if len(words) < 2 || words[0] != "/usr/local/bin/ehrgate" || words[1] != "serve" {
		t.Fatalf("ExecStart=%s, want /usr/local/bin/ehrgate serve ...", execs[0])
	}
	flags := map[string]string{}
	for i := 2; i < len(words); i++ {
		k, v, ok := strings.Cut(words[i], "=")
		if !ok && i+1 < len(words) {
			i++
			v = words[i]
		}
		flags[k] = v
	}
	state, _ := u.last(svc, "StateDirectory")
	if want := "/var/lib/" + state; flags["--data"] != want {
		t.Errorf("ExecStart --data %q, want the state directory %s", flags["--data"], want)
	}
	cfg := config.Default()
	cfg.Data, cfg.HTTPAddr = flags["--data"], flags["--http-addr"]
	if err := cfg.Validate(); err != nil {
		t.Errorf("ExecStart --data %s --http-addr %s: config.Validate: %v", cfg.Data, cfg.HTTPAddr, err)
	}
}

// unitForVerify writes a copy of ehrgate.service into a temporary directory
// with ExecStart's binary replaced by one that exists (this test binary):
// systemd-analyze checks that the binary is there and executable.
func unitForVerify(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src := readText(t, "ehrgate.service")
	re := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/ehrgate `)
	if !re.MatchString(src) {
		t.Fatal("ehrgate.service: no ExecStart=/usr/local/bin/ehrgate line to point at an existing binary")
	}
	path := filepath.Join(t.TempDir(), "ehrgate.service")
	if err := os.WriteFile(path, []byte(re.ReplaceAllLiteralString(src, "ExecStart="+self+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSystemdAnalyzeVerify runs systemd's own unit checker; it reports
// unknown directives and bad values as messages but still exits 0, so any
// message naming the unit fails the test.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa := lookPathOrSkip(t, "systemd-analyze", "systemd-analyze verify of ehrgate.service")
	path := unitForVerify(t)
	out, err := run(t, filepath.Dir(path), nil, sa, "verify", "--man=no", "--recursive-errors=no", path)
	if err != nil {
		t.Errorf("systemd-analyze verify: %v", err)
	}
	for line := range strings.Lines(out) {
		if strings.Contains(line, "ehrgate.service") {
			t.Errorf("systemd-analyze verify: %s", strings.TrimSpace(line))
		}
	}
	if t.Failed() {
		t.Logf("full output:\n%s", out)
	}
}

// TestSystemdAnalyzeSecurity has systemd rate the unit's exposure offline
// (0 is best, 10 worst; the unit scores about 1.1) and fails above 2.0.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	sa := lookPathOrSkip(t, "systemd-analyze", "the exposure level of ehrgate.service")
	if help, _ := run(t, "", nil, sa, "security", "--help"); !strings.Contains(help, "--offline") || !strings.Contains(help, "--threshold") {
		t.Skip("this systemd-analyze has no security --offline/--threshold (systemd < 250)")
	}
	path := unitForVerify(t)
	// --threshold is on a 0..100 scale: 20 is an overall exposure of 2.0.
	out, err := run(t, filepath.Dir(path), nil, sa, "security", "--offline=true", "--threshold=20", "--no-pager", path)
	if err != nil {
		t.Errorf("systemd-analyze security --offline=true --threshold=20: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Overall exposure level") {
		t.Errorf("systemd-analyze security printed no overall exposure level:\n%s", out)
	}
}
