package writeback

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: writeback is a library; it depends on the store's
// interfaces, never on a store driver or on the packages that serve data.
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
		for _, banned := range []string{"ehrgate/store/sqlite", "ehrgate/store/postgres", "ehrgate/server", "ehrgate/dashboard", "ehrgate/gateway", "ehrgate/ehrsim"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("writeback depends on %s", dep)
			}
		}
	}
}
