package writeback

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/audit"
	"ehrgate/config"
	"ehrgate/ehr"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/personality"
	"ehrgate/fhir"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

// fakeAudit is an audit.Recorder keeping events in memory; err makes
// Record fail (the trail is down).
type fakeAudit struct {
	mu     sync.Mutex
	events []audit.Event
	err    error
}

func (a *fakeAudit) Record(_ context.Context, e audit.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	a.events = append(a.events, e)
	return nil
}

func (a *fakeAudit) all() []audit.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Event(nil), a.events...)
}

var _ audit.Recorder = (*fakeAudit)(nil)

// env is one test's simulator, store, outbox and writer.
type env struct {
	sim    *ehrsim.Server
	outbox *Outbox
	writer *Writer
	audit  *fakeAudit
	policy *Policy
	store  *sqlite.Store
}

func fixedClock() time.Time { return time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) }

func allowAll() *config.Write {
	return &config.Write{Enabled: true, Types: []string{"Flag", "Observation", "Task", "Communication"},
		Operations: []string{"create", "update"}, Approval: config.ApprovalAuto,
		Tags: []config.WriteTag{{System: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", Code: "DERIVED"}}}
}

// newEnv starts a simulator with one patient and a writer on it under the
// policy w and the vendor's write rules.
func newEnv(t *testing.T, w *config.Write, vendor string, reeval Reevaluator) *env {
	t.Helper()
	ctx := context.Background()
	sim := ehrsim.New(ehrsim.Options{Clock: fixedClock})
	if err := sim.Load(json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"Test"}]}`)); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = sim.Handler()
	if vendor != "generic" {
		// Other vendors through their personality; the write log in front.
		ph, err := personality.Wrap(vendor, nil, h)
		if err != nil {
			t.Fatal(err)
		}
		h = sim.RecordWrites(ph)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	client, err := fhir.NewClient(ts.URL+"/fhir", fhir.Options{Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	a, err := ehr.Lookup(vendor)
	if err != nil {
		t.Fatal(err)
	}
	pol := NewPolicy("sim", w, a.Profile().Write, fixedClock)
	ob := NewOutbox(st, secrets.NewKeyring(kek), fixedClock)
	fa := &fakeAudit{}
	wr, err := NewWriter(Options{Outbox: ob, Audit: fa, Agent: audit.Agent{ClientID: "ehrgate"}, Reevaluate: reeval,
		Sleep: func(context.Context, time.Duration) error { return nil }, Clock: fixedClock},
		Connection{Name: "sim", Target: client, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, outbox: ob, writer: wr, audit: fa, policy: pol, store: st}
}

const gapSystem = "urn:ehrgate:gap"

func flagProposal(value, status string) Proposal {
	res := `{"resourceType":"Flag","status":"` + status + `","category":[{"text":"care gap"}],` +
		`"code":{"text":"AF: anticoagulation indicated, none active"},"subject":{"reference":"Patient/p1"}}`
	return Proposal{Connection: "sim", ResourceType: "Flag", Operation: OpCreate, Resource: json.RawMessage(res),
		Identifier: fhir.Identifier{System: gapSystem, Value: value}, Patient: "p1",
		Rule: Rule{Name: "af-anticoag-gap", Version: "1.0"}, Inputs: json.RawMessage(`{"cha2ds2vasc":3}`)}
}

// countWrites counts the simulator's write requests of a method and type.
func countWrites(sim *ehrsim.Server, method, typ string) int {
	n := 0
	for _, w := range sim.Writes() {
		if w.Method == method && w.Type == typ {
			n++
		}
	}
	return n
}

func (e *env) proposeAndSend(t *testing.T, p Proposal) (Record, error) {
	t.Helper()
	rec, err := e.writer.Propose(context.Background(), p)
	if err != nil {
		t.Fatalf("Propose = %v", err)
	}
	return e.writer.Send(context.Background(), rec.ID)
}

func TestCreateConfirmedWithProvenanceTagsAndAudit(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if err != nil || rec.State != StateConfirmed {
		t.Fatalf("Send = %v, %v; want confirmed", rec.State, err)
	}
	if got := e.sim.Counts(); got["Flag"] != 1 || got["Provenance"] != 1 {
		t.Fatalf("simulator holds %v, want one Flag and one Provenance", got)
	}
	if rec.ResultID == "" || rec.ResultVersion != "1" || rec.ProvenanceID == "" || rec.ApprovedBy != "policy" {
		t.Errorf("record = %+v, want result id, version 1, a Provenance, approved by policy", rec)
	}
	var states []State
	for _, tr := range rec.Transitions {
		states = append(states, tr.To)
	}
	if want := "proposed approved sent confirmed"; joinStates(states) != want {
		t.Errorf("transitions = %s, want %s", joinStates(states), want)
	}
	ctx := context.Background()
	client := e.writer.conns["sim"].Target
	flag, err := client.Read(ctx, "Flag", rec.ResultID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(flag.Body), `"code":"DERIVED"`) || !strings.Contains(string(flag.Body), gapSystem) {
		t.Errorf("Flag as written = %s, want the DERIVED tag and the business identifier", flag.Body)
	}
	prov, err := client.Read(ctx, "Provenance", rec.ProvenanceID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Flag/" + rec.ResultID + "/_history/1", SystemRecord + rec.ID, "af-anticoag-gap:1.0", `"value":"ehrgate"`} {
		if !strings.Contains(string(prov.Body), want) {
			t.Errorf("Provenance = %s, want it to contain %q", prov.Body, want)
		}
	}
	ev := e.audit.all()
	if len(ev) != 1 || ev[0].Action != audit.ActionCreate || ev[0].Patient.ID != "p1" || ev[0].Agent.ClientID != "ehrgate" {
		t.Errorf("audit events = %+v, want one create on p1 by ehrgate", ev)
	}

	// Proposing and sending the same write again changes nothing.
	again, err := e.writer.Propose(ctx, flagProposal("p1-af", "active"))
	if err != nil || again.ID != rec.ID || again.State != StateConfirmed {
		t.Errorf("Propose(same) = %s %v, %v; want the confirmed record %s", again.ID, again.State, err, rec.ID)
	}
	if n := countWrites(e.sim, "POST", "Flag"); n != 1 {
		t.Errorf("Flag POSTs = %d, want 1", n)
	}
}

func joinStates(s []State) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = string(x)
	}
	return strings.Join(parts, " ")
}

// TestVendorPersonalities writes through the epic and oracle personalities:
// the Flag, its read-back and the Provenance lookup go through the vendor's
// rules.
func TestVendorPersonalities(t *testing.T) {
	for _, vendor := range []string{"epic", "oracle"} {
		t.Run(vendor, func(t *testing.T) {
			e := newEnv(t, allowAll(), vendor, nil)
			e.sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 1)
			rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
			if err != nil || rec.State != StateConfirmed {
				t.Fatalf("Send on %s = %v, %v; want confirmed", vendor, rec.State, err)
			}
			if got := e.sim.Counts(); got["Flag"] != 1 || got["Provenance"] != 1 {
				t.Errorf("%s holds %v, want one Flag and one Provenance", vendor, got)
			}
		})
	}
}

func TestRetriesNeverDuplicate(t *testing.T) {
	tests := []struct {
		name      string
		fault     ehrsim.WriteFault
		n         int
		wantPOSTs int
	}{
		{"5xx twice", ehrsim.WriteFault500, 2, 3},
		{"429", ehrsim.WriteFault429, 1, 2},
		{"lost answer after commit", ehrsim.WriteFaultLostAnswer, 1, 2},
		{"lost answer twice", ehrsim.WriteFaultLostAnswer, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, allowAll(), "generic", nil)
			e.sim.InjectWriteFault(tt.fault, tt.n)
			rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
			if err != nil || rec.State != StateConfirmed {
				t.Fatalf("Send = %v, %v; want confirmed", rec.State, err)
			}
			if n := e.sim.Counts()["Flag"]; n != 1 {
				t.Errorf("Flags = %d, want exactly 1", n)
			}
			if n := countWrites(e.sim, "POST", "Flag"); n != tt.wantPOSTs {
				t.Errorf("Flag POSTs = %d, want %d", n, tt.wantPOSTs)
			}
			for _, w := range e.sim.Writes() {
				if w.Type == "Flag" && w.IfNoneExist == "" {
					t.Errorf("a Flag create went without If-None-Exist: %+v", w)
				}
			}
		})
	}
}

func TestLostAnswerThenManualResend(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	e.writer.opts.MaxAttempts = 1
	e.sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 1)
	rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if rec.State != StateFailed || err == nil {
		t.Fatalf("Send with one attempt and a lost answer = %v, %v; want failed", rec.State, err)
	}
	ctx := context.Background()
	if _, err := e.outbox.Approve(ctx, rec.ID, "dr.smith", "send again"); err != nil {
		t.Fatal(err)
	}
	rec, err = e.writer.Send(ctx, rec.ID)
	if err != nil || rec.State != StateConfirmed {
		t.Fatalf("Send again = %v, %v; want confirmed", rec.State, err)
	}
	if n := e.sim.Counts()["Flag"]; n != 1 {
		t.Errorf("Flags = %d, want exactly 1 (the first write had committed)", n)
	}
}

func TestStaleIfMatch(t *testing.T) {
	for _, withRule := range []bool{false, true} {
		name := "conflicted for a person"
		var reeval Reevaluator
		if withRule {
			name = "re-proposed by the rule"
			reeval = func(_ context.Context, rec Record, current json.RawMessage) (json.RawMessage, error) {
				var cur map[string]any
				if err := json.Unmarshal(current, &cur); err != nil {
					return nil, err
				}
				cur["status"] = "inactive" // the gap closed; keep the clinician's note
				return json.Marshal(cur)
			}
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, allowAll(), "generic", reeval)
			ctx := context.Background()
			created, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
			if err != nil {
				t.Fatal(err)
			}
			upd := flagProposal("p1-af", "inactive")
			upd.Operation, upd.TargetID, upd.BaseVersion = OpUpdate, created.ResultID, created.ResultVersion
			e.sim.InjectWriteFault(ehrsim.WriteFaultConcurrentEdit, 1)
			rec, err := e.proposeAndSend(t, upd)
			if !withRule {
				if rec.State != StateConflicted || err == nil || rec.Current == nil {
					t.Fatalf("Send after a concurrent edit = %v, %v; want conflicted with the current version kept", rec.State, err)
				}
				got, _ := e.writer.conns["sim"].Target.Read(ctx, "Flag", created.ResultID)
				if !strings.Contains(string(got.Body), "simulated clinician") || !strings.Contains(string(got.Body), `"status":"active"`) {
					t.Errorf("Flag after the conflict = %s, want the clinician's version untouched", got.Body)
				}
				if n := countWrites(e.sim, "PUT", "Flag"); n != 1 {
					t.Errorf("Flag PUTs = %d, want 1 (no blind overwrite)", n)
				}
				return
			}
			if err != nil || rec.State != StateApproved || rec.BaseVersion != "2" {
				t.Fatalf("Send after a concurrent edit = %v base %s, %v; want re-proposed and auto-approved on version 2", rec.State, rec.BaseVersion, err)
			}
			rec, err = e.writer.Send(ctx, rec.ID)
			if err != nil || rec.State != StateConfirmed || rec.ResultVersion != "3" {
				t.Fatalf("Send of the re-proposal = %v v%s, %v; want confirmed at version 3", rec.State, rec.ResultVersion, err)
			}
			got, _ := e.writer.conns["sim"].Target.Read(ctx, "Flag", created.ResultID)
			if !strings.Contains(string(got.Body), "simulated clinician") || !strings.Contains(string(got.Body), `"status":"inactive"`) {
				t.Errorf("Flag after re-proposal = %s, want inactive with the clinician's note kept", got.Body)
			}
			if ev := e.audit.all(); len(ev) != 3 || ev[2].Action != audit.ActionUpdate {
				t.Errorf("audit events = %d (last %v), want 3, the last an update", len(ev), ev[len(ev)-1].Action)
			}
		})
	}
}

func TestLostAnswerOnUpdateConfirms(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	created, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if err != nil {
		t.Fatal(err)
	}
	upd := flagProposal("p1-af", "inactive")
	upd.Operation, upd.TargetID, upd.BaseVersion = OpUpdate, created.ResultID, created.ResultVersion
	e.sim.InjectWriteFault(ehrsim.WriteFaultLostAnswer, 1)
	rec, err := e.proposeAndSend(t, upd)
	// The repeat meets 412 (its own write moved the version); the re-read
	// shows the intended content, so the write is confirmed, not repeated.
	if err != nil || rec.State != StateConfirmed || rec.ResultVersion != "2" {
		t.Fatalf("Send = %v v%s, %v; want confirmed at version 2", rec.State, rec.ResultVersion, err)
	}
}

func TestValidationErrorKept(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	e.sim.InjectWriteFault(ehrsim.WriteFault422, 1)
	rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if err == nil || rec.State != StateFailed || rec.Status != 422 || rec.Outcome == nil || rec.Outcome.Issue[0].Code != "business-rule" {
		t.Fatalf("Send = %+v, %v; want failed with the 422 OperationOutcome kept", rec, err)
	}
	if n := countWrites(e.sim, "POST", "Flag"); n != 1 {
		t.Errorf("Flag POSTs = %d, want 1 (422 is not retried)", n)
	}
	got, _ := e.outbox.Get(context.Background(), rec.ID)
	if got.Outcome == nil || got.Status != 422 {
		t.Errorf("stored record = %+v, want the outcome kept", got)
	}
}

func TestPolicyRefusalSendsNothing(t *testing.T) {
	tests := []struct {
		name   string
		policy func() *config.Write
		vendor string
		typ    string
	}{
		{"no write block", func() *config.Write { return nil }, "generic", "Flag"},
		{"kill switch", func() *config.Write { w := allowAll(); w.Enabled = false; return w }, "generic", "Flag"},
		{"type not allowed", func() *config.Write { w := allowAll(); w.Types = []string{"Observation"}; return w }, "generic", "Flag"},
		{"operation not allowed", func() *config.Write { w := allowAll(); w.Operations = []string{"update"}; return w }, "generic", "Flag"},
		{"vendor does not accept", allowAll, "oracle", "Communication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.policy(), tt.vendor, nil)
			p := flagProposal("p1-af", "active")
			if tt.typ == "Communication" {
				p.ResourceType = "Communication"
				p.Resource = json.RawMessage(`{"resourceType":"Communication","status":"completed","subject":{"reference":"Patient/p1"}}`)
			}
			ctx := context.Background()
			rec, err := e.writer.Propose(ctx, p)
			if !errors.Is(err, ErrRefused) || rec.State != StateRejected || rec.Last().By != "policy" {
				t.Fatalf("Propose = %v by %q, %v; want rejected by policy", rec.State, rec.Last().By, err)
			}
			if _, err := e.writer.Send(ctx, rec.ID); err == nil {
				t.Errorf("Send of a rejected record succeeded")
			}
			if _, err := e.writer.SendApproved(ctx, ""); err != nil {
				t.Errorf("SendApproved = %v", err)
			}
			if w := e.sim.Writes(); len(w) != 0 {
				t.Errorf("simulator received %d write requests, want none", len(w))
			}
			if ev := e.audit.all(); len(ev) != 0 {
				t.Errorf("audit events = %d, want none (nothing was written)", len(ev))
			}
		})
	}
}

func TestKillSwitchAfterApproval(t *testing.T) {
	w := allowAll()
	e := newEnv(t, w, "generic", nil)
	ctx := context.Background()
	rec, err := e.writer.Propose(ctx, flagProposal("p1-af", "active"))
	if err != nil || rec.State != StateApproved {
		t.Fatalf("Propose = %v, %v", rec.State, err)
	}
	e.policy.site.Enabled = false // the operator switches writing off
	rec, err = e.writer.Send(ctx, rec.ID)
	if !errors.Is(err, ErrRefused) || rec.State != StateRejected {
		t.Fatalf("Send after the kill switch = %v, %v; want rejected by policy", rec.State, err)
	}
	if n := len(e.sim.Writes()); n != 0 {
		t.Errorf("simulator received %d writes, want none", n)
	}
}

func TestHumanApprovalRequired(t *testing.T) {
	w := allowAll()
	w.Approval = config.ApprovalHuman
	e := newEnv(t, w, "generic", nil)
	ctx := context.Background()
	rec, err := e.writer.Propose(ctx, flagProposal("p1-af", "active"))
	if err != nil || rec.State != StateProposed {
		t.Fatalf("Propose = %v, %v; want proposed", rec.State, err)
	}
	if _, err := e.writer.Send(ctx, rec.ID); !errors.Is(err, ErrTransition) {
		t.Errorf("Send of an unapproved record = %v, want ErrTransition", err)
	}
	if sent, err := e.writer.SendApproved(ctx, "sim"); err != nil || len(sent) != 0 {
		t.Errorf("SendApproved = %d records, %v; want none", len(sent), err)
	}
	if n := len(e.sim.Writes()); n != 0 {
		t.Fatalf("simulator received %d writes before approval, want none", n)
	}
	if _, err := e.outbox.Approve(ctx, rec.ID, "dr.smith", "reviewed the chart"); err != nil {
		t.Fatal(err)
	}
	sent, err := e.writer.SendApproved(ctx, "sim")
	if err != nil || len(sent) != 1 || sent[0].State != StateConfirmed {
		t.Fatalf("SendApproved after approval = %+v, %v; want one confirmed", sent, err)
	}
	prov, _ := e.writer.conns["sim"].Target.Read(ctx, "Provenance", sent[0].ProvenanceID)
	if !strings.Contains(string(prov.Body), "dr.smith") || !strings.Contains(string(prov.Body), "verifier") {
		t.Errorf("Provenance = %s, want dr.smith as verifier", prov.Body)
	}
}

func TestAuditFailureSendsNothing(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	e.audit.err = errors.New("trail unavailable")
	rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if err == nil || rec.State != StateApproved {
		t.Fatalf("Send with the audit trail down = %v, %v; want an error and the record still approved", rec.State, err)
	}
	if n := len(e.sim.Writes()); n != 0 {
		t.Errorf("simulator received %d writes, want none", n)
	}
}

func TestDryRunAndRate(t *testing.T) {
	w := allowAll()
	w.DryRun = true
	e := newEnv(t, w, "generic", nil)
	rec, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if !errors.Is(err, ErrDryRun) || rec.State != StateApproved || len(e.sim.Writes()) != 0 {
		t.Fatalf("dry run Send = %v, %v, %d writes; want ErrDryRun, approved, none", rec.State, err, len(e.sim.Writes()))
	}

	w = allowAll()
	w.Rate = 1
	e = newEnv(t, w, "generic", nil)
	if _, err := e.proposeAndSend(t, flagProposal("a", "active")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.proposeAndSend(t, flagProposal("b", "active")); !errors.Is(err, ErrRateLimited) {
		t.Errorf("second write in the minute = %v, want ErrRateLimited", err)
	}
}

func TestOutboxSealsPatientData(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	ctx := context.Background()
	rec, err := e.writer.Propose(ctx, flagProposal("p1-af", "active"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.outbox.docs.GetDocument(ctx, DocKind, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"Patient/p1", "anticoagulation", "p1-af", "cha2ds2vasc"} {
		if strings.Contains(string(d.Body), secret) {
			t.Errorf("stored document contains %q in the clear", secret)
		}
	}
	got, err := e.outbox.Get(ctx, rec.ID)
	if err != nil || got.Patient != "p1" || got.Identifier.Value != "p1-af" {
		t.Errorf("Get = %+v, %v; want the record opened", got, err)
	}
}

func TestCanTransition(t *testing.T) {
	all := []State{StateProposed, StateApproved, StateSent, StateConfirmed, StateRejected, StateConflicted, StateFailed}
	allowed := map[[2]State]bool{
		{StateProposed, StateApproved}: true, {StateProposed, StateRejected}: true,
		{StateApproved, StateSent}: true, {StateApproved, StateRejected}: true,
		{StateSent, StateSent}: true, {StateSent, StateConfirmed}: true, {StateSent, StateFailed}: true,
		{StateSent, StateConflicted}: true, {StateSent, StateProposed}: true,
		{StateConflicted, StateProposed}: true, {StateConflicted, StateRejected}: true,
		{StateFailed, StateApproved}: true, {StateFailed, StateRejected}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := CanTransition(from, to), allowed[[2]State{from, to}]; got != want {
				t.Errorf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, s := range all {
		if got, want := s.Terminal(), s == StateConfirmed || s == StateRejected; got != want {
			t.Errorf("%q.Terminal() = %v, want %v", s, got, want)
		}
	}
}

func TestOutboxRefusesTransitions(t *testing.T) {
	w := allowAll()
	w.Approval = config.ApprovalHuman
	e := newEnv(t, w, "generic", nil)
	ctx := context.Background()
	rec, err := e.writer.Propose(ctx, flagProposal("p1-af", "active"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.outbox.Transition(ctx, rec.ID, StateConfirmed, "x", "skip", nil); !errors.Is(err, ErrTransition) {
		t.Errorf("proposed → confirmed = %v, want ErrTransition", err)
	}
	if _, err := e.outbox.Reject(ctx, rec.ID, "dr.smith", ""); err == nil {
		t.Errorf("Reject without a reason succeeded")
	}
	r, err := e.outbox.Reject(ctx, rec.ID, "dr.smith", "not clinically relevant")
	if err != nil || r.State != StateRejected || r.Last().By != "dr.smith" {
		t.Fatalf("Reject = %+v, %v", r.Last(), err)
	}
	if _, err := e.outbox.Approve(ctx, rec.ID, "dr.smith", "changed my mind"); !errors.Is(err, ErrTransition) {
		t.Errorf("rejected → approved = %v, want ErrTransition", err)
	}
	if _, err := e.outbox.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope) = %v, want ErrNotFound", err)
	}
}

// TestAuditTrailPerWrite records into the real audit trail: one AuditEvent
// per write sent, create then update, on the patient, by ehrgate.
func TestAuditTrailPerWrite(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	ctx := context.Background()
	e.writer.opts.Audit = audit.NewLog(e.store, audit.Source{InstanceID: "test"}, fixedClock)
	created, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if err != nil {
		t.Fatal(err)
	}
	upd := flagProposal("p1-af", "inactive")
	upd.Operation, upd.TargetID, upd.BaseVersion = OpUpdate, created.ResultID, created.ResultVersion
	if _, err := e.proposeAndSend(t, upd); err != nil {
		t.Fatal(err)
	}
	entries, err := e.store.QueryAudit(ctx, store.AuditQuery{Connection: "sim", Patient: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range entries {
		got = append(got, en.Action+":"+en.Subtype+":"+en.Agent+":"+en.Outcome)
	}
	if want := []string{"C:create:ehrgate:0", "U:update:ehrgate:0"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audit trail = %v, want %v", got, want)
	}
	if v, err := e.store.VerifyAudit(ctx); err != nil || !v.Intact() {
		t.Errorf("VerifyAudit = %+v, %v; want intact", v, err)
	}
}

// TestResumeAfterCrash: ehrgate was killed after marking a record sent,
// once before the request left and once after the EHR committed it. The
// next SendApproved finishes both with exactly one Flag each.
func TestResumeAfterCrash(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	ctx := context.Background()
	before, err := e.writer.Propose(ctx, flagProposal("before-send", "active"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := e.writer.Propose(ctx, flagProposal("after-commit", "active"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{before.ID, after.ID} {
		if _, err := e.outbox.Transition(ctx, id, StateSent, AgentEhrgate, "sending", nil); err != nil {
			t.Fatal(err)
		}
	}
	// The EHR committed the second write before the crash.
	body, _ := e.writer.prepare(after, e.policy)
	if _, err := e.writer.conns["sim"].Target.Create(ctx, "Flag", body, identifierQuery(after.Identifier)); err != nil {
		t.Fatal(err)
	}
	recs, err := e.writer.SendApproved(ctx, "")
	if err != nil || len(recs) != 2 {
		t.Fatalf("SendApproved = %d records, %v; want 2", len(recs), err)
	}
	for _, r := range recs {
		if r.State != StateConfirmed {
			t.Errorf("record %s = %s, want confirmed", r.Identifier.Value, r.State)
		}
	}
	if n := e.sim.Counts()["Flag"]; n != 2 {
		t.Errorf("Flags = %d, want 2 (one per record)", n)
	}
}

func TestConcurrentSendsOfOneRecord(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	ctx := context.Background()
	rec, err := e.writer.Propose(ctx, flagProposal("p1-af", "active"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = e.writer.Send(ctx, rec.ID) // all but one find it no longer approved
		}()
	}
	wg.Wait()
	got, err := e.outbox.Get(ctx, rec.ID)
	if err != nil || got.State != StateConfirmed {
		t.Fatalf("record = %v, %v; want confirmed", got.State, err)
	}
	if c := e.sim.Counts(); c["Flag"] != 1 || c["Provenance"] != 1 {
		t.Errorf("simulator holds %v, want one Flag and one Provenance", c)
	}
}

func TestContentRefusals(t *testing.T) {
	tests := []struct {
		name, typ, resource string
		refused             bool
	}{
		{"final note", "DocumentReference", `{"resourceType":"DocumentReference","status":"current","docStatus":"final","content":[{}]}`, true},
		{"draft note", "DocumentReference", `{"resourceType":"DocumentReference","status":"current","docStatus":"preliminary","content":[{}]}`, false},
		{"task to no one", "Task", `{"resourceType":"Task","status":"requested","intent":"order"}`, true},
		{"task to a nurse", "Task", `{"resourceType":"Task","status":"requested","intent":"order","owner":{"reference":"Practitioner/n1"}}`, false},
		{"communication to no one", "Communication", `{"resourceType":"Communication","status":"completed"}`, true},
		{"communication to a doctor", "Communication", `{"resourceType":"Communication","status":"completed","recipient":[{"reference":"Practitioner/d1"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := allowAll()
			w.Types = append(w.Types, "DocumentReference")
			e := newEnv(t, w, "generic", nil)
			p := flagProposal("x", "active")
			p.ResourceType, p.Resource = tt.typ, json.RawMessage(tt.resource)
			if tt.refused {
				rec, err := e.writer.Propose(context.Background(), p)
				if !errors.Is(err, ErrRefused) || rec.State != StateRejected || len(e.sim.Writes()) != 0 {
					t.Errorf("%s: %v, %v, %d writes; want refused, nothing sent", tt.name, rec.State, err, len(e.sim.Writes()))
				}
				return
			}
			rec, err := e.proposeAndSend(t, p)
			if err != nil || rec.State != StateConfirmed {
				t.Errorf("%s: %v, %v; want confirmed", tt.name, rec.State, err)
			}
		})
	}
}

// TestPersonSettlesConflict: a conflicted update is re-proposed by a person
// against the EHR's current version, approved and sent.
func TestPersonSettlesConflict(t *testing.T) {
	e := newEnv(t, allowAll(), "generic", nil)
	ctx := context.Background()
	created, err := e.proposeAndSend(t, flagProposal("p1-af", "active"))
	if err != nil {
		t.Fatal(err)
	}
	upd := flagProposal("p1-af", "inactive")
	upd.Operation, upd.TargetID, upd.BaseVersion = OpUpdate, created.ResultID, created.ResultVersion
	e.sim.InjectWriteFault(ehrsim.WriteFaultConcurrentEdit, 1)
	rec, _ := e.proposeAndSend(t, upd)
	if rec.State != StateConflicted {
		t.Fatalf("state = %v, want conflicted", rec.State)
	}
	var cur map[string]any
	if err := json.Unmarshal(rec.Current, &cur); err != nil {
		t.Fatal(err)
	}
	cur["status"] = "inactive"
	settled, _ := json.Marshal(cur)
	h, _ := fhir.ParseHeader(rec.Current)
	if _, err := e.outbox.Repropose(ctx, rec.ID, "dr.smith", "keep the note, close the flag", settled, h.VersionID()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.outbox.Approve(ctx, rec.ID, "dr.smith", "ok"); err != nil {
		t.Fatal(err)
	}
	rec, err = e.writer.Send(ctx, rec.ID)
	if err != nil || rec.State != StateConfirmed || rec.ResultVersion != "3" {
		t.Fatalf("Send = %v v%s, %v; want confirmed at version 3", rec.State, rec.ResultVersion, err)
	}
}
