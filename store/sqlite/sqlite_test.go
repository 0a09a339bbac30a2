package sqlite

import (
	"context"
	"path/filepath"
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
