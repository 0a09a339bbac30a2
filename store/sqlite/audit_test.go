package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"ehrgate/audit"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

var _ store.AuditLog = (*Store)(nil)

// auditTamper changes the database at *path directly, dropping the
// append-only triggers first as someone with the file could.
func auditTamper(path *string) storetest.AuditTamper {
	do := func(t *testing.T, stmt string, seq int64) {
		t.Helper()
		db, err := sql.Open("sqlite", *path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `DROP TRIGGER audit_events_no_delete`} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(stmt, seq); err != nil {
			t.Fatal(err)
		}
	}
	return storetest.AuditTamper{
		Rewrite: func(t *testing.T, seq int64) {
			do(t, `UPDATE audit_events SET event=CAST('{"resourceType":"AuditEvent","n":"forged"}' AS BLOB) WHERE seq=?`, seq)
		},
		Delete: func(t *testing.T, seq int64) { do(t, `DELETE FROM audit_events WHERE seq=?`, seq) },
	}
}

func TestAuditConformance(t *testing.T) {
	var path string
	storetest.RunAuditTests(t, func(t *testing.T) store.AuditLog {
		path = filepath.Join(t.TempDir(), FileName)
		return openLaunches(t, path)
	}, auditTamper(&path))
}

// TestAuditSharedByProcesses opens one database file twice (two writer
// connections, as two gateway processes would have) and appends from both.
func TestAuditSharedByProcesses(t *testing.T) {
	storetest.RunSharedAuditTests(t, func(t *testing.T) (a, b store.AuditLog) {
		path := filepath.Join(t.TempDir(), FileName)
		return openLaunches(t, path), openLaunches(t, path)
	})
}

// TestAuditAppendOnly: the table refuses changes and removals.
func TestAuditAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openLaunches(t, path)
	if _, err := s.AppendAudit(t.Context(), store.AuditEntry{Type: "rest", Event: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`UPDATE audit_events SET agent='x'`, `DELETE FROM audit_events`} {
		if _, err := db.Exec(q); err == nil {
			t.Errorf("%s succeeded on the audit trail", q)
		}
	}
}

func BenchmarkAuditAppend(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchAuditAppend(b, s)
}

// BenchmarkAuditRecord measures audit.Log.Record from 16 goroutines per
// core (as concurrent requests record their accesses, sharing commits).
func BenchmarkAuditRecord(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := audit.NewLog(s, audit.Source{InstanceID: "bench"}, nil)
	ev := audit.Read(audit.Agent{ClientID: "bench", Address: "10.0.0.1"}, audit.PatientRef{Connection: "c", ID: "p"},
		audit.ResourceRef{Connection: "c", Type: "Observation", ID: "o"})
	ev.Outcome = audit.OutcomeSuccess
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
