package smart

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the library one-way: no store driver, server or
// dashboard.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"ehrgate/store/sqlite", "ehrgate/server", "ehrgate/dashboard", "modernc.org/sqlite"} {
			if dep == banned {
				t.Errorf("package smart depends on %s", banned)
			}
		}
	}
}
