package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"ehrgate/store"
	"ehrgate/store/storetest"
)

func openLaunches(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLaunchConformance(t *testing.T) {
	storetest.RunLaunchTests(t, func(t *testing.T) store.PendingLaunches {
		return openLaunches(t, filepath.Join(t.TempDir(), FileName))
	})
}

// TestLaunchesSharedByProcesses opens one database file twice (two writer
// connections and group commits, as two gateway processes would have) and
// checks single use and the limits across them.
func TestLaunchesSharedByProcesses(t *testing.T) {
	storetest.RunSharedLaunchTests(t, func(t *testing.T) (a, b store.PendingLaunches) {
		path := filepath.Join(t.TempDir(), FileName)
		return openLaunches(t, path), openLaunches(t, path)
	})
}

func TestLaunchRewrap(t *testing.T) {
	storetest.RunLaunchRewrapTests(t, func(t *testing.T) storetest.LaunchRewrapStore {
		return openLaunches(t, filepath.Join(t.TempDir(), FileName))
	})
}
