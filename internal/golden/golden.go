// Package golden compares test output with golden files under testdata/.
// Run a package's tests with -update to rewrite its golden files after an
// intended change. Import it from tests only.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/ instead of comparing with them")

// Updating reports whether the tests run with -update.
func Updating() bool { return *update }

// Check compares got with the golden file at path. With -update it first
// writes got to path (creating directories), so the comparison passes.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file %s (run go test -update to create it): %v", path, err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run go test -update if the change is intended) (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}
