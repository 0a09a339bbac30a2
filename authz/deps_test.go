package authz

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: authz reaches the store through its interfaces only,
// and is wired by the gateway, never the other way round.
func TestDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"ehrgate/store/sqlite", "ehrgate/store/postgres", "ehrgate/dashboard", "ehrgate/gateway", "ehrgate/cmd"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("authz depends on %s", dep)
			}
		}
	}
}
