package store_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// historicGaps are the version numbers each backend skipped before this
// test existed. They cannot be renumbered: goose records applied versions
// by number in every existing store, so a renumbered file would be applied
// twice or seen as unknown. New migrations must follow the last one
// without a gap.
//
//   - sqlite 4: never used; 00005_hl7 (commit d29f012) followed 00003_bulk.
//   - postgres 4..9: never used; the pending-launches migration took
//     version 10 in both backends in one commit (c0dbc87).
var historicGaps = map[string][]int{
	"sqlite":   {4},
	"postgres": {4, 5, 6, 7, 8, 9},
}

var migrationName = regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)

// TestMigrationsNumberedWithoutGaps fails on a duplicate number, a badly
// named file, or a gap other than the historic ones listed above.
func TestMigrationsNumberedWithoutGaps(t *testing.T) {
	for backend, gaps := range historicGaps {
		t.Run(backend, func(t *testing.T) {
			dir := filepath.Join(backend, "migrations")
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int]string{}
			var versions []int
			for _, e := range entries {
				m := migrationName.FindStringSubmatch(e.Name())
				if m == nil {
					t.Errorf("%s/%s: want NNNNN_name.sql (five digits, lower-case name)", dir, e.Name())
					continue
				}
				v, _ := strconv.Atoi(m[1])
				if other, dup := seen[v]; dup {
					t.Errorf("%s: version %d is used twice: %s and %s", dir, v, other, e.Name())
					continue
				}
				seen[v] = e.Name()
				versions = append(versions, v)
			}
			slices.Sort(versions)
			if len(versions) == 0 || versions[0] != 1 {
				t.Fatalf("%s: versions %v, want them to start at 1", dir, versions)
			}
			var missing []int
			for v := 1; v < versions[len(versions)-1]; v++ {
				if _, ok := seen[v]; !ok {
					missing = append(missing, v)
				}
			}
			if !slices.Equal(missing, gaps) {
				t.Errorf("%s: missing versions %v, want only the historic gaps %v (number a new migration %d, after the last)",
					dir, missing, gaps, versions[len(versions)-1]+1)
			}
		})
	}
}
