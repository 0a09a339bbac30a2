package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"ehrgate/fhir"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/writeback"
)

// TestWritesCommands: list, show (with the diff of an update against the
// stored version the rule read), approve and reject with who and why.
func TestWritesCommands(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	src, err := secrets.Load(func(string) string { return "" }, data)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite:"+data, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := `{"resourceType":"Flag","id":"f1","meta":{"versionId":"2"},"status":"active","code":{"text":"gap"},"subject":{"reference":"Patient/p1"}}`
	if _, err := st.PutResources(ctx, []store.Record{{Key: store.Key{Connection: "epic", Type: "Flag", ID: "f1", VersionID: "2"}, PatientID: "p1", Raw: []byte(base), Normalized: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	ob := writeback.NewOutbox(st, src.Ring, nil)
	upd, _, err := ob.Propose(ctx, writeback.Proposal{Connection: "epic", ResourceType: "Flag", Operation: writeback.OpUpdate,
		Resource:   json.RawMessage(`{"resourceType":"Flag","id":"f1","status":"inactive","code":{"text":"gap"},"subject":{"reference":"Patient/p1"}}`),
		Identifier: fhir.Identifier{System: "urn:gap", Value: "p1"}, TargetID: "f1", BaseVersion: "2", Patient: "p1",
		Rule: writeback.Rule{Name: "gaps", Version: "1"}}, "rule:gaps", "proposed")
	if err != nil {
		t.Fatal(err)
	}
	cre, _, err := ob.Propose(ctx, writeback.Proposal{Connection: "epic", ResourceType: "Flag", Operation: writeback.OpCreate,
		Resource:   json.RawMessage(`{"resourceType":"Flag","status":"active","code":{"text":"other"},"subject":{"reference":"Patient/p2"}}`),
		Identifier: fhir.Identifier{System: "urn:gap", Value: "p2"}, Patient: "p2", Rule: writeback.Rule{Name: "gaps", Version: "1"}}, "rule:gaps", "proposed")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, stderr, err := run(t, ctx, "writes", "list", "--state", "proposed", "--json", "--data", data)
	var rows []struct{ ID, State string }
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 {
		t.Fatalf("writes list --json = %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = run(t, ctx, "writes", "show", upd.ID, "--data", data)
	for _, want := range []string{"~ status: \"active\" → \"inactive\"", "against version 2 (the version the rule read)", "proposed resource:", "rule:gaps"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("writes show lacks %q (%v):\n%s%s", want, err, out, stderr)
		}
	}
	if _, _, err := run(t, ctx, "writes", "approve", upd.ID, "--data", data); err == nil || !strings.Contains(err.Error(), "--by") {
		t.Errorf("writes approve without --by = %v, want an error naming --by", err)
	}
	out, stderr, err = run(t, ctx, "writes", "approve", upd.ID, "--by", "dr.smith", "--reason", "reviewed", "--data", data)
	if err != nil || !strings.Contains(out, "approved by dr.smith") {
		t.Fatalf("writes approve = %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = run(t, ctx, "writes", "reject", cre.ID, "--by", "dr.smith", "--reason", "wrong patient", "--data", data)
	if err != nil || !strings.Contains(out, "rejected by dr.smith") {
		t.Fatalf("writes reject = %v\n%s%s", err, out, stderr)
	}
	if _, _, err := run(t, ctx, "writes", "approve", cre.ID, "--by", "x", "--reason", "y", "--data", data); err == nil || !strings.Contains(err.Error(), "is rejected") {
		t.Errorf("approving a rejected record = %v, want an error saying it is rejected", err)
	}
	out, _, err = run(t, ctx, "writes", "show", upd.ID, "--data", data)
	if err != nil || !strings.Contains(out, "proposed → approved  by dr.smith: reviewed") {
		t.Errorf("writes show after approval lacks the history line:\n%s", out)
	}
	out, _, err = run(t, ctx, "writes", "list", "--state", "rejected", "--data", data)
	if err != nil || !strings.Contains(out, cre.ID) || strings.Contains(out, upd.ID) {
		t.Errorf("writes list --state rejected:\n%s", out)
	}
}
