package postgres

import (
	"context"
	"database/sql"
	"testing"

	"ehrgate/audit"
	"ehrgate/internal/pgtest"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

var _ store.AuditLog = (*Store)(nil)

// auditTamper changes the database at *dsn directly, dropping the
// append-only triggers first as its owner could.
func auditTamper(dsn *string) storetest.AuditTamper {
	do := func(t *testing.T, stmt string, seq int64) {
		t.Helper()
		db, err := sql.Open("pgx", *dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`DROP TRIGGER audit_events_no_change ON audit_events`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(stmt, seq); err != nil {
			t.Fatal(err)
		}
	}
	return storetest.AuditTamper{
		Rewrite: func(t *testing.T, seq int64) {
			do(t, `UPDATE audit_events SET event=convert_to('{"resourceType":"AuditEvent","n":"forged"}', 'UTF8') WHERE seq=$1`, seq)
		},
		Delete: func(t *testing.T, seq int64) { do(t, `DELETE FROM audit_events WHERE seq=$1`, seq) },
	}
}

func TestAuditConformance(t *testing.T) {
	var dsn string
	storetest.RunAuditTests(t, func(t *testing.T) store.AuditLog {
		dsn = pgtest.NewDatabase(t)
		return openLaunches(t, dsn)
	}, auditTamper(&dsn))
}

// TestAuditSharedByProcesses opens the database twice (two pools, as two
// gateway processes would) and appends from both: one chain.
func TestAuditSharedByProcesses(t *testing.T) {
	storetest.RunSharedAuditTests(t, func(t *testing.T) (a, b store.AuditLog) {
		dsn := pgtest.NewDatabase(t)
		return openLaunches(t, dsn), openLaunches(t, dsn)
	})
}

// TestAuditAppendOnly: the table refuses changes, removals and TRUNCATE.
func TestAuditAppendOnly(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := openLaunches(t, dsn)
	if _, err := s.AppendAudit(t.Context(), store.AuditEntry{Type: "rest", Event: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`UPDATE audit_events SET agent='x'`, `DELETE FROM audit_events`, `TRUNCATE audit_events`} {
		if _, err := db.Exec(q); err == nil {
			t.Errorf("%s succeeded on the audit trail", q)
		}
	}
}

func BenchmarkAuditAppend(b *testing.B) {
	s, err := Open(b.Context(), pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchAuditAppend(b, s)
}

// BenchmarkAuditRecord measures audit.Log.Record from 16 goroutines per
// core (as concurrent requests record their accesses, sharing commits).
func BenchmarkAuditRecord(b *testing.B) {
	s, err := Open(b.Context(), pgtest.NewDatabase(b))
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
