package storetest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"ehrgate/store"
)

// RunOpenTests checks a registered backend through store.Open: a store that
// must exist is not created, migrations are reported and applied, and a
// store migrated by a newer ehrgate is refused. newURL returns the store
// URL of a fresh, empty location (a directory that does not exist yet, an
// empty database); addFuture records a migration newer than any the binary
// knows in the store at url, as a newer ehrgate would.
func RunOpenTests(t *testing.T, newURL func(t *testing.T) string, addFuture func(t *testing.T, url string)) {
	ctx := context.Background()
	t.Run("MustExistCreatesNothing", func(t *testing.T) {
		url := newURL(t)
		if s, err := store.Open(ctx, url, store.OpenOptions{MustExist: true}); !errors.Is(err, store.ErrNoStore) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("Open(%s, MustExist) error = %v, want ErrNoStore", url, err)
		}
		s, err := store.Open(ctx, url, store.OpenOptions{MustExist: true})
		if err == nil {
			s.Close()
			t.Fatal("a second Open(MustExist) found a store: the first one created it")
		}
	})
	t.Run("MigrateStatus", func(t *testing.T) {
		url := newURL(t)
		s, err := store.Open(ctx, url, store.OpenOptions{NoMigrate: true})
		if err != nil {
			t.Fatalf("Open(NoMigrate): %v", err)
		}
		ms, err := s.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatal("Migrations() listed none")
		}
		for _, m := range ms {
			if m.Applied || m.Name == "" || m.Version <= 0 {
				t.Errorf("before Migrate: %+v, want a named pending migration", m)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		ms, err = s.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if !m.Applied || m.AppliedAt.IsZero() {
				t.Errorf("after Migrate: %+v, want applied with a time", m)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Errorf("a second Migrate: %v, want nothing to do", err)
		}
		if loc := s.Location(); loc == "" || strings.Contains(loc, "password") {
			t.Errorf("Location() = %q", loc)
		}
		s.Close()
		s, err = store.Open(ctx, url, store.OpenOptions{MustExist: true})
		if err != nil {
			t.Fatalf("Open(MustExist) after migrate: %v", err)
		}
		s.Close()
	})
	t.Run("NewerSchemaRefused", func(t *testing.T) {
		url := newURL(t)
		s, err := store.Open(ctx, url, store.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		addFuture(t, url)
		s, openErr := store.Open(ctx, url, store.OpenOptions{})
		if !errors.Is(openErr, store.ErrSchemaTooNew) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("Open(store with a newer schema) error = %v, want ErrSchemaTooNew", openErr)
		}
		s, err = store.Open(ctx, url, store.OpenOptions{NoMigrate: true})
		if err != nil {
			t.Fatalf("Open(NoMigrate) of a newer store: %v", err)
		}
		defer s.Close()
		ms, err := s.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := ms[len(ms)-1]
		if !last.Unknown || !last.Applied {
			t.Errorf("last migration %+v, want the unknown newer one", last)
		}
		// The message names both versions: the store's and the newest
		// this binary knows, so an operator knows what to upgrade to.
		var known int64
		for _, m := range ms {
			if !m.Unknown {
				known = max(known, m.Version)
			}
		}
		for _, v := range []int64{last.Version, known} {
			if !strings.Contains(openErr.Error(), strconv.FormatInt(v, 10)) {
				t.Errorf("Open(newer store) error = %q, want it to name versions %d (store) and %d (this binary)", openErr, last.Version, known)
			}
		}
		if err := s.Migrate(ctx); !errors.Is(err, store.ErrSchemaTooNew) {
			t.Errorf("Migrate on a newer store: %v, want ErrSchemaTooNew", err)
		}
	})
}
