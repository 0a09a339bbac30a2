package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestDocumentConformance(t *testing.T) {
	storetest.RunDocumentTests(t, func(t *testing.T) store.Documents {
		return openLaunches(t, filepath.Join(t.TempDir(), FileName))
	})
}

func TestOpenConformance(t *testing.T) {
	storetest.RunOpenTests(t, func(t *testing.T) string {
		return "sqlite:" + filepath.Join(t.TempDir(), "data")
	}, func(t *testing.T, url string) {
		db, err := sql.Open("sqlite", filepath.Join(strings.TrimPrefix(url, "sqlite:"), FileName))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)`); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStoreFilesOwnerOnly: a new store's files are readable by their owner
// only, whatever the umask.
func TestStoreFilesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	s, err := OpenDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.PutResources(context.Background(), []store.Record{{Key: store.Key{Connection: "c", Type: "Patient", ID: "1"}, PatientID: "1", Raw: []byte(`{"resourceType":"Patient","id":"1"}`)}}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, want 0700", st.Mode().Perm())
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want owner-only", e.Name(), perm)
		}
	}
	if len(entries) < 2 {
		t.Errorf("found %d files in the store directory, want the database and its WAL", len(entries))
	}
}

func TestHL7SharedByProcesses(t *testing.T) {
	storetest.RunSharedHL7Tests(t, func(t *testing.T) (a, b storetest.HL7Store) {
		path := filepath.Join(t.TempDir(), FileName)
		return openLaunches(t, path), openLaunches(t, path)
	})
}
