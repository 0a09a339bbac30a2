package gateway_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/fhir"
	"ehrgate/gateway"
	"ehrgate/login"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/writeback"
)

func flagProposal(conn, patient string) writeback.Proposal {
	return writeback.Proposal{Connection: conn, ResourceType: "Flag", Operation: writeback.OpCreate,
		Resource:   json.RawMessage(`{"resourceType":"Flag","status":"active","code":{"text":"care gap"},"subject":{"reference":"Patient/` + patient + `"}}`),
		Identifier: fhir.Identifier{System: "urn:ehrgate:test-gap", Value: conn + "-" + patient}, Patient: patient,
		Rule: writeback.Rule{Name: "test-gaps", Version: "1"}}
}

// waitState polls the outbox until record id is in state want.
func waitState(t *testing.T, ctx context.Context, ob *writeback.Outbox, id string, want writeback.State) writeback.Record {
	t.Helper()
	for {
		rec, err := ob.Get(ctx, id)
		if err == nil && rec.State == want {
			return rec
		}
		if ctx.Err() != nil {
			t.Fatalf("record %s is %s (%v), want %s", id, rec.State, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWritesThroughJobs runs the gateway (`serve`) against the simulated
// EHR: an auto-approved write is sent by its job and ends confirmed; a
// record left "sent" by a dead process is resumed by the sweep; a write
// needing a person waits, proposed, until a clinician approves it on the
// dashboard (a POST without the session's CSRF token is refused), then is
// sent, with the clinician as its approver; a record of a connection whose
// writing is switched off is held, not sent nor rejected.
func TestWritesThroughJobs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sim := ehrsim.New(ehrsim.Options{})
	for _, p := range []string{"p1", "p2", "p3"} {
		if err := sim.Load(json.RawMessage(`{"resourceType":"Patient","id":"` + p + `"}`)); err != nil {
			t.Fatal(err)
		}
	}
	ehr := httptest.NewServer(sim.Handler())
	defer ehr.Close()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	write := func(approval string) *config.Write {
		return &config.Write{Enabled: true, Types: []string{"Flag"}, Operations: []string{"create"}, Approval: approval}
	}
	conns := []config.Connection{
		{Name: "auto", BaseURL: ehr.URL + "/fhir", Vendor: "generic", Write: write(config.ApprovalAuto)},
		{Name: "clinic", BaseURL: ehr.URL + "/fhir", Vendor: "generic", Write: write(config.ApprovalHuman)},
		{Name: "off", BaseURL: ehr.URL + "/fhir", Vendor: "generic", Write: &config.Write{Types: []string{"Flag"}, Operations: []string{"create"}}},
	}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: conns, Login: config.Login{Mode: config.LoginLocal}},
		Store: st, Keyring: secrets.NewKeyring(kek), LoginParams: cheapHash})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login().Accounts().Add(ctx, "alice", "Dr Alice", []login.Role{login.RoleClinician}, []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	w, err := g.WriteBack(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ob := g.Outbox()

	// A record a dead process left "sent": approved and marked sent through
	// an outbox that enqueues nothing; only the sweep finds it.
	bare := writeback.NewOutbox(st, secrets.NewKeyring(kek), nil)
	left, _, err := bare.Propose(ctx, flagProposal("clinic", "p3"), "rule:test-gaps", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bare.Approve(ctx, left.ID, "bob", "checked"); err != nil {
		t.Fatal(err)
	}
	if _, err := bare.Transition(ctx, left.ID, writeback.StateSent, writeback.AgentEhrgate, "sending", nil); err != nil {
		t.Fatal(err)
	}

	// A record approved for a connection whose writing is switched off: its
	// job (enqueued by the approval) holds it approved, neither sent nor
	// rejected.
	held, _, err := ob.Propose(ctx, flagProposal("off", "p1"), "rule:test-gaps", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Approve(ctx, held.ID, "bob", "checked"); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	listening := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- g.Run(runCtx, gateway.RunOptions{HTTPAddr: "127.0.0.1:0",
			OnListen: func(what string, a net.Addr) {
				if what == "http" {
					listening <- a
				}
			}})
	}()
	var base string
	select {
	case a := <-listening:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	}

	auto, err := w.Propose(ctx, flagProposal("auto", "p1"))
	if err != nil || auto.State != writeback.StateApproved {
		t.Fatalf("Propose(auto) = %s, %v; want approved", auto.State, err)
	}
	got := waitState(t, ctx, ob, auto.ID, writeback.StateConfirmed)
	if got.ResultID == "" || got.ProvenanceID == "" || got.ApprovedBy != "policy" {
		t.Errorf("auto record confirmed as %+v; want a result, a Provenance and approval by the policy", got)
	}
	waitState(t, ctx, ob, left.ID, writeback.StateConfirmed)

	human, err := w.Propose(ctx, flagProposal("clinic", "p2"))
	if err != nil || human.State != writeback.StateProposed {
		t.Fatalf("Propose(clinic) = %s, %v; want proposed", human.State, err)
	}
	time.Sleep(300 * time.Millisecond)
	if rec, _ := ob.Get(ctx, human.ID); rec.State != writeback.StateProposed {
		t.Fatalf("a write needing a person is %s before anyone approved it", rec.State)
	}

	c := noRedirects()
	localSignIn(t, c, base, "alice")
	res, page := fetch(t, c, "GET", base+"/writes/"+human.ID, nil)
	m := csrfRE.FindStringSubmatch(page)
	if res.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET /writes/{id} = %d, CSRF token found %v", res.StatusCode, m != nil)
	}
	approve := base + "/writes/" + human.ID + "/approve"
	if res, _ := fetch(t, c, "POST", approve, url.Values{"reason": {"reviewed"}}); res.StatusCode != http.StatusForbidden {
		t.Errorf("POST approve without the CSRF token = %d, want 403", res.StatusCode)
	}
	if rec, _ := ob.Get(ctx, human.ID); rec.State != writeback.StateProposed {
		t.Fatalf("after a refused POST the record is %s", rec.State)
	}
	if res, _ := fetch(t, c, "POST", approve, url.Values{"reason": {"reviewed the gap"}, "csrf": {m[1]}}); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST approve with the token = %d, want 303", res.StatusCode)
	}
	got = waitState(t, ctx, ob, human.ID, writeback.StateConfirmed)
	if got.ApprovedBy != "alice" {
		t.Errorf("approved by %q, want alice", got.ApprovedBy)
	}
	if res, _ := fetch(t, http.DefaultClient, "GET", ehr.URL+"/fhir/Flag/"+got.ResultID, nil); res.StatusCode != http.StatusOK {
		t.Errorf("the simulated EHR has no Flag/%s: %d", got.ResultID, res.StatusCode)
	}

	if rec, _ := ob.Get(ctx, held.ID); rec.State != writeback.StateApproved {
		t.Errorf("a record of a switched-off connection is %s, want held approved", rec.State)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
