package postgres

import (
	"context"
	"testing"

	"ehrgate/internal/pgtest"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

func openLaunches(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLaunchConformance(t *testing.T) {
	storetest.RunLaunchTests(t, func(t *testing.T) store.PendingLaunches {
		return openLaunches(t, pgtest.NewDatabase(t))
	})
}

// TestLaunchesSharedByProcesses opens the database twice (two pools, as two
// gateway processes would) and checks single use and the limits across them.
func TestLaunchesSharedByProcesses(t *testing.T) {
	storetest.RunSharedLaunchTests(t, func(t *testing.T) (a, b store.PendingLaunches) {
		dsn := pgtest.NewDatabase(t)
		return openLaunches(t, dsn), openLaunches(t, dsn)
	})
}

func TestLaunchRewrap(t *testing.T) {
	storetest.RunLaunchRewrapTests(t, func(t *testing.T) storetest.LaunchRewrapStore {
		return openLaunches(t, pgtest.NewDatabase(t))
	})
}
