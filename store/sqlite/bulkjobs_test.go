package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"ehrgate/store/storetest"
)

func TestPendingExportConformance(t *testing.T) {
	storetest.RunPendingExportTests(t, func(t *testing.T) storetest.PendingExportStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}

// TestPendingExportSurvivesRestart: what resuming a killed export relies on.
func TestPendingExportSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 18, 0, 0, 123456789, time.FixedZone("x", 3600))
	if err := s.SetPendingExport(ctx, "a", "group/g", "fp3", "https://ehr/fhir/$bulk-status/3", at); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fp, url, kicked, err := s.PendingExport(ctx, "a", "group/g")
	if err != nil || fp != "fp3" || url != "https://ehr/fhir/$bulk-status/3" || !kicked.Equal(at) {
		t.Errorf("after reopening: %q %q %v %v, want fp3's job kicked off at %v", fp, url, kicked, err, at)
	}
}

// TestMigrationKeepsLegacyLastExport: the single per-scope transactionTime
// of a store made before migration 00008 survives the upgrade as the time
// of exports without _type only (it never said which types it covered), and
// the downgrade keeps each scope's oldest time.
func TestMigrationKeepsLegacyLastExport(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ehrgate.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := fs.Sub(migrationFiles, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	legacy := "2026-07-01T10:00:00.5Z"
	if _, err := db.ExecContext(ctx, `INSERT INTO bulk_exports (connection, scope, transaction_time) VALUES ('c', 'system', ?)`, legacy); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open migrating from 7: %v", err)
	}
	got, err := s.LastExports(ctx, "c", "system")
	want := time.Date(2026, 7, 1, 10, 0, 0, 500000000, time.UTC)
	if err != nil || len(got) != 1 || !got[""].Equal(want) {
		t.Errorf("LastExports after migration = %v, %v; want only {\"\": %v}", got, err, want)
	}
	if err := s.SetLastExport(ctx, "c", "system", want.Add(time.Hour), []string{"Patient"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err = sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p, err = goose.NewProvider(goose.DialectSQLite3, db, sub); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("migrating down to 7: %v", err)
	}
	var back string
	if err := db.QueryRowContext(ctx, `SELECT transaction_time FROM bulk_exports WHERE connection='c' AND scope='system'`).Scan(&back); err != nil || back != legacy {
		t.Errorf("bulk_exports after the downgrade = %q, %v; want the oldest time %q", back, err, legacy)
	}
}
