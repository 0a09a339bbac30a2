package postgres

import (
	"database/sql"
	"ehrgate/internal/pgtest"
	"testing"

	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestDocumentConformance(t *testing.T) {
	storetest.RunDocumentTests(t, func(t *testing.T) store.Documents {
		return openLaunches(t, pgtest.NewDatabase(t))
	})
}

func TestOpenConformance(t *testing.T) {
	storetest.RunOpenTests(t, func(t *testing.T) string {
		return pgtest.NewDatabaseURL(t)
	}, func(t *testing.T, url string) {
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHL7SharedByProcesses(t *testing.T) {
	storetest.RunSharedHL7Tests(t, func(t *testing.T) (a, b storetest.HL7Store) {
		dsn := pgtest.NewDatabase(t)
		return openLaunches(t, dsn), openLaunches(t, dsn)
	})
}
