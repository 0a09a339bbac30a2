package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
)

func TestPendingExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 18, 0, 0, 123456789, time.FixedZone("x", 3600))
	type pending struct {
		fp, url string
		at      time.Time
	}
	steps := []struct {
		name  string
		do    func() error
		conn  string
		scope string
		want  pending // url "" = none
	}{
		{"none yet", func() error { return nil }, "a", "system", pending{}},
		{"set", func() error {
			return s.SetPendingExport(ctx, "a", "system", "fp1", "https://ehr/fhir/$bulk-status/1?sig=x", at)
		},
			"a", "system", pending{"fp1", "https://ehr/fhir/$bulk-status/1?sig=x", at}},
		{"other scope untouched", func() error { return nil }, "a", "group/g", pending{}},
		{"other connection untouched", func() error { return nil }, "b", "system", pending{}},
		{"replace", func() error {
			return s.SetPendingExport(ctx, "a", "system", "fp2", "https://ehr/fhir/$bulk-status/2", at.Add(time.Hour))
		}, "a", "system", pending{"fp2", "https://ehr/fhir/$bulk-status/2", at.Add(time.Hour)}},
		{"second scope", func() error {
			return s.SetPendingExport(ctx, "a", "group/g", "fp3", "https://ehr/fhir/$bulk-status/3", at)
		},
			"a", "group/g", pending{"fp3", "https://ehr/fhir/$bulk-status/3", at}},
		{"clear", func() error { return s.ClearPendingExport(ctx, "a", "system") }, "a", "system", pending{}},
		{"clear leaves the other scope", func() error { return nil }, "a", "group/g", pending{"fp3", "https://ehr/fhir/$bulk-status/3", at}},
		{"clear again is fine", func() error { return s.ClearPendingExport(ctx, "a", "system") }, "a", "system", pending{}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		fp, url, kicked, err := s.PendingExport(ctx, st.conn, st.scope)
		if err != nil {
			t.Fatalf("%s: PendingExport: %v", st.name, err)
		}
		if fp != st.want.fp || url != st.want.url || !kicked.Equal(st.want.at) {
			t.Errorf("%s: PendingExport(%s, %s) = %q %q %v, want %+v", st.name, st.conn, st.scope, fp, url, kicked, st.want)
		}
	}
	if err := s.SetPendingExport(ctx, "a", "system", "fp", "", at); err == nil {
		t.Error("SetPendingExport accepted an empty status URL")
	}
	// The row survives a restart (what resuming a killed export relies on).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fp, url, _, err := s.PendingExport(ctx, "a", "group/g"); err != nil || fp != "fp3" || url != "https://ehr/fhir/$bulk-status/3" {
		t.Errorf("after reopening: %q %q %v, want fp3's job", fp, url, err)
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
	sub, _ := fs.Sub(migrations, "migrations")
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
