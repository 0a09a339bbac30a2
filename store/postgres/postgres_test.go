package postgres

import (
	"context"
	"os"
	"testing"

	"ehrgate/internal/pgtest"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestMigrationsAreIdempotent(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	for i := 0; i < 2; i++ {
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		s.Close()
	}
}
