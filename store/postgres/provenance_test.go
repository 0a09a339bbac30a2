package postgres

import (
	"context"
	"database/sql"
	"io/fs"
	"testing"

	"github.com/pressly/goose/v3"

	"ehrgate/internal/pgtest"
	"ehrgate/store/storetest"
)

func TestProvenanceConformance(t *testing.T) {
	storetest.RunProvenanceTests(t, func(t *testing.T) storetest.ProvenanceStore { return openTest(t) })
}

func TestProvenanceBackfill(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	storetest.RunProvenanceBackfillTest(t, storetest.ProvenanceBackfill{
		Open: func(t *testing.T) storetest.ProvenanceStore {
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Downgrade: func(t *testing.T) {
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			sub, _ := fs.Sub(migrationFiles, "migrations")
			p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(context.Background(), 19); err != nil {
				t.Fatal(err)
			}
		},
	})
}
