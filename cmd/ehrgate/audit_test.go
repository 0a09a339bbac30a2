package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/audit"
	"ehrgate/store/sqlite"
)

// auditData makes a store in a new data directory holding n audit events:
// patients p0, p1, p2 in turn, by users u0 and u1 in turn, an hour apart
// from 2026-12-01T00:00Z.
func auditData(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	s, err := sqlite.OpenDir(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := audit.NewLog(s, audit.Source{InstanceID: "test"}, nil)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		who := audit.Agent{UserID: []string{"u0", "u1"}[i%2], ClientID: "app", Address: "10.0.0.9"}
		ev := audit.Read(who, audit.PatientRef{Connection: "epic", ID: []string{"p0", "p1", "p2"}[i%3]},
			audit.ResourceRef{Connection: "epic", Type: "Observation", ID: "o1"})
		ev.Outcome, ev.Recorded = audit.OutcomeSuccess, t0.Add(time.Duration(i)*time.Hour)
		if err := rec.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func TestAuditCommandJSON(t *testing.T) {
	data := auditData(t, 7)
	out, stderr, err := run(t, context.Background(), "audit", "--data", data, "--patient", "p1", "--json")
	if err != nil {
		t.Fatalf("audit --patient p1 --json: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("audit --patient p1 printed %d lines, want 2 (events 2 and 5):\n%s", len(lines), out)
	}
	for i, want := range []string{"2", "5"} {
		var ae struct {
			ResourceType string
			ID           string
			Entity       []struct{ What struct{ Reference string } }
		}
		if err := json.Unmarshal([]byte(lines[i]), &ae); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, lines[i])
		}
		if ae.ResourceType != "AuditEvent" || ae.ID != want || len(ae.Entity) == 0 || ae.Entity[0].What.Reference != "Patient/p1" {
			t.Errorf("line %d = %s; want AuditEvent %s about Patient/p1", i, lines[i], want)
		}
	}
}

func TestAuditCommandFilters(t *testing.T) {
	data := auditData(t, 7)
	for _, tc := range []struct {
		args []string
		want int // lines
	}{
		{nil, 7},
		{[]string{"--agent", "u1"}, 3},
		{[]string{"--agent", "u0", "--patient", "p0"}, 2}, // events 1 and 7
		{[]string{"--since", "2026-12-01T03:00:00Z"}, 4},
		{[]string{"--since", "2026-12-01", "--until", "2026-12-01T02:00:00Z"}, 2},
		{[]string{"--limit", "3"}, 3},
		{[]string{"--patient", "nobody"}, 0},
	} {
		args := append([]string{"audit", "--data", data}, tc.args...)
		out, stderr, err := run(t, context.Background(), args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		if got := strings.Count(out, "\n"); got != tc.want {
			t.Errorf("%v printed %d lines, want %d:\n%s", tc.args, got, tc.want, out)
		}
	}
	if _, _, err := run(t, context.Background(), "audit", "--data", data, "--since", "yesterday"); err == nil {
		t.Error("audit --since yesterday succeeded")
	}
}

func TestAuditVerifyCommand(t *testing.T) {
	data := auditData(t, 5)
	out, stderr, err := run(t, context.Background(), "audit", "verify", "--data", data)
	if err != nil || !strings.Contains(out, "intact: 5 events") {
		t.Fatalf("audit verify = %q, %v (%s); want intact with 5 events", out, err, stderr)
	}
	// Someone with the database file drops the append-only triggers and
	// changes an event.
	db, err := sql.Open("sqlite", filepath.Join(data, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_events_no_update`, `UPDATE audit_events SET patient='p9' WHERE seq=4`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	out, _, err = run(t, context.Background(), "audit", "verify", "--data", data)
	if code := exitCode(err); code != 3 || !strings.Contains(out, "broken at sequence 4") {
		t.Errorf("audit verify over a changed event = %q, exit %d; want exit 3 naming sequence 4", out, code)
	}
	out, _, err = run(t, context.Background(), "audit", "verify", "--json", "--data", data)
	var v struct {
		Intact  bool
		Entries int64
		Broken  int64
	}
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || exitCode(err) != 3 || v.Intact || v.Broken != 4 || v.Entries != 3 {
		t.Errorf("audit verify --json = %s, exit %d; want broken 4 after 3 entries", out, exitCode(err))
	}
}

// The audit commands only read: over a missing store they fail and create
// nothing.
func TestAuditCommandsCreateNothing(t *testing.T) {
	for _, args := range [][]string{{"audit"}, {"audit", "--json"}, {"audit", "verify"}} {
		missing := filepath.Join(t.TempDir(), "mistyped", "path")
		_, _, err := run(t, context.Background(), append(args, "--data", missing)...)
		if err == nil || !strings.Contains(err.Error(), "no ehrgate store there") {
			t.Errorf("%v over a missing store = %v, want a 'no ehrgate store' error", args, err)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Errorf("%v created %s (stat: %v)", args, missing, err)
		}
	}
}
