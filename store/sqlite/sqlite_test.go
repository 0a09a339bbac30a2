package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunTests(t, func(t *testing.T) store.Store {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutResources(ctx, []store.Record{{Key: store.Key{Connection: "c", Type: "Patient", ID: "p", VersionID: "1"}, Raw: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, filepath.Join(dir, FileName))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	if err != nil || v < 1 {
		t.Errorf("SchemaVersion() = %d, %v; want >= 1", v, err)
	}
	if _, err := s.Get(ctx, "c", "Patient", "p"); err != nil {
		t.Errorf("Get after reopen: %v", err)
	}
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	s, err := OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO quarantine (connection, reason, raw, received_at) VALUES (?, 'r', x'00', '')`,
					fmt.Sprintf("c%d", i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return errBoom // its insert must be rolled back, the others kept
				}
				return nil
			})
		}(i)
	}
	wg.Wait()
	for i, err := range results {
		if (i%3 == 0) != errors.Is(err, errBoom) {
			t.Errorf("write %d = %v", i, err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := 40 - 14; st.Quarantined != want {
		t.Errorf("rows = %d, want %d (failed writes rolled back alone)", st.Quarantined, want)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	s, err := OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.PutResources(context.Background(), []store.Record{{Key: store.Key{Connection: "c", Type: "T", ID: "i"}, Raw: []byte("{}")}}); err == nil {
		t.Error("PutResources after Close succeeded")
	}
}

func TestVersionConformance(t *testing.T) {
	storetest.RunVersionTests(t, func(t *testing.T) storetest.VersionStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}

func TestEventLogConformance(t *testing.T) {
	storetest.RunEventLogTests(t, func(t *testing.T) store.EventLog {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
