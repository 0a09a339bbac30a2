package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"ehrgate/store/storetest"
)

func TestProvenanceConformance(t *testing.T) {
	storetest.RunProvenanceTests(t, func(t *testing.T) storetest.ProvenanceStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestProvenanceBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	storetest.RunProvenanceBackfillTest(t, storetest.ProvenanceBackfill{
		Open: func(t *testing.T) storetest.ProvenanceStore {
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Downgrade: func(t *testing.T) {
			db, err := sql.Open("sqlite", fileDSN(path))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			sub, _ := fs.Sub(migrationFiles, "migrations")
			p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(context.Background(), 16); err != nil {
				t.Fatal(err)
			}
		},
	})
}
