package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Read-only commands over a missing or mistyped data directory fail and
// create nothing: no directory, no database, no key-encryption key.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	for _, args := range [][]string{{"stats"}, {"stats", "--json"}, {"quality"}, {"status"}, {"status", "--json"}, {"migrate", "--status"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			missing := filepath.Join(t.TempDir(), "mistyped", "path")
			_, _, err := run(t, context.Background(), append(args, "--data", missing)...)
			if err == nil || !strings.Contains(err.Error(), "no ehrgate store there") {
				t.Fatalf("%s over a missing store = %v, want a 'no ehrgate store' error", args[0], err)
			}
			if _, err := os.Stat(missing); !os.IsNotExist(err) {
				t.Errorf("%s created %s (stat: %v)", args[0], missing, err)
			}
			// An existing but empty directory: still no store, nothing created in it.
			empty := t.TempDir()
			if _, _, err := run(t, context.Background(), append(args, "--data", empty)...); err == nil {
				t.Errorf("%s over an empty directory succeeded", args[0])
			}
			if ents, _ := os.ReadDir(empty); len(ents) != 0 {
				t.Errorf("%s created %d files in an empty directory: %v", args[0], len(ents), ents)
			}
		})
	}
}
