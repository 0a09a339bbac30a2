package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/identity"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/summary"
)

var updateContext = flag.Bool("update", false, "rewrite the golden files in testdata")

// contextStore stores the hand-made charts of package summary's fixture
// (patient s1 on epic_a, s2 on cerner, which has no allergy endpoint) and,
// when link, a person holding both; it returns the data directory and the
// person id.
func contextStore(t *testing.T, link bool) (string, string) {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	st, err := sqlite.OpenDir(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	var states []store.FetchState
	for _, c := range []struct{ conn, pid string }{{"epic_a", "s1"}, {"cerner", "s2"}} {
		f, err := os.Open(filepath.Join("..", "..", "summary", "testdata", "fixture", c.conn+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		var recs []store.Record
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			rec, err := refresh.NewRecord(c.conn, bytes.Clone(sc.Bytes()), now, "fixture")
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		f.Close()
		if _, err := st.PutResources(ctx, recs); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"Condition", "MedicationRequest", "AllergyIntolerance", "Observation", "Encounter"} {
			a, detail := store.Available, ""
			if c.conn == "cerner" && typ == "AllergyIntolerance" {
				a, detail = store.NotAvailable, "the endpoint does not support AllergyIntolerance"
			}
			states = append(states, store.FetchState{Connection: c.conn, PatientID: c.pid, Type: typ, Availability: a, Detail: detail, FetchedAt: now})
		}
	}
	if err := st.PutFetchStates(ctx, states); err != nil {
		t.Fatal(err)
	}
	if !link {
		return data, ""
	}
	svc := &identity.Service{Docs: st, Now: func() time.Time { return now }}
	a, b := identity.Key{Source: "epic_a", ID: "s1"}, identity.Key{Source: "cerner", ID: "s2"}
	if err := svc.SetOverride(ctx, identity.Override{A: a, B: b, Action: identity.ActionLink, By: "test", Reason: "same person"}); err != nil {
		t.Fatal(err)
	}
	recs, err := identity.LoadPatients(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	persons, _, err := svc.Run(ctx, recs, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range persons {
		if len(p.Members) == 2 {
			return data, p.ID
		}
	}
	t.Fatalf("no person holds both records: %+v", persons)
	return "", ""
}

func goldenContext(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateContext {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (run with -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func auditEvents(t *testing.T, data string) int {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.QueryAudit(context.Background(), store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func TestContextPerson(t *testing.T) {
	ctx := context.Background()
	data, person := contextStore(t, true)
	out, stderr, err := run(t, ctx, "context", "--person", person, "--data", data, "--log-level", "warn")
	if err != nil {
		t.Fatalf("context --person: %v\n%s", err, stderr)
	}
	// the person id is derived from a record key, so stable; the As of
	// date is today's: both replaced for the golden file
	stable := strings.Replace(out, person, "PERSON", 1)
	stable = strings.Replace(stable, "As of "+time.Now().UTC().Format(time.DateOnly), "As of TODAY", 1)
	goldenContext(t, "context-person.md", stable)
	for _, want := range []string{
		// the same problem, order and result from both sources, once
		"onset 2019-03-01 [cerner Condition/s2-c1 2019-03-02; epic_a Condition/s1-c1 2019-03-01]",
		"[cerner MedicationRequest/s2-m1 2026-01-10; epic_a MedicationRequest/s1-m1 2026-01-10]",
		"7.1 % on 2026-05-20 [cerner Observation/s2-o1 2026-05-20; epic_a Observation/s1-o2 2026-05-20]; previous 7.4 %",
		"Source cerner: not available from this source",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("context --person lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Ada") || strings.Contains(stderr, "Ada") {
		t.Errorf("the output or log holds the patient's name")
	}
	if n := auditEvents(t, data); n != 1 {
		t.Errorf("audit events = %d, want 1", n)
	}
}

func TestContextBudgetAndJSON(t *testing.T) {
	ctx := context.Background()
	data, _ := contextStore(t, false)
	full, _, err := run(t, ctx, "context", "epic-a.s1", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	budget := summary.Tokens([]byte(full)) - 40
	out, _, err := run(t, ctx, "context", "epic-a.s1", "--data", data, "--max-tokens", itoa(budget))
	if err != nil {
		t.Fatal(err)
	}
	if summary.Tokens([]byte(out)) > budget || !strings.Contains(out, "left out for the token budget") || !strings.Contains(out, "Penicillin G") {
		t.Errorf("context --max-tokens %d: %d tokens:\n%s", budget, summary.Tokens([]byte(out)), out)
	}
	again, _, _ := run(t, ctx, "context", "epic-a.s1", "--data", data, "--max-tokens", itoa(budget))
	if again != out {
		t.Errorf("context --max-tokens is not deterministic")
	}
	js, _, err := run(t, ctx, "context", "epic_a.s1", "--data", data, "--json")
	var s summary.Summary
	if err != nil || json.Unmarshal([]byte(js), &s) != nil || len(s.Problems.Items) != 1 || s.Allergies.State != summary.StateData {
		t.Errorf("context --json: %v\n%s", err, js)
	}
	for _, args := range [][]string{
		{"context", "--data", data},
		{"context", "epic-a.s1", "--person", "psn-x", "--data", data},
		{"context", "epic-a.nobody", "--data", data},
		{"context", "--person", "psn-nobody", "--data", data},
		{"context", "nodot", "--data", data},
	} {
		if _, _, err := run(t, ctx, args...); err == nil {
			t.Errorf("%v succeeded, want an error", args)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
