package writeback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"ehrgate/audit"
	"ehrgate/fhir"
)

// Target is the EHR a connection writes to; *fhir.Client is one. Create and
// Update send once and never retry (the Writer decides).
type Target interface {
	Read(ctx context.Context, typ, id string) (*fhir.Response, error)
	Search(ctx context.Context, typ string, q *fhir.Query) (*fhir.Bundle, error)
	Create(ctx context.Context, typ string, body []byte, ifNoneExist string) (*fhir.Response, error)
	Update(ctx context.Context, typ, id string, body []byte, ifMatch string) (*fhir.Response, error)
}

// Connection is one EHR the Writer may write to.
type Connection struct {
	Name   string
	Target Target
	Policy *Policy
}

// Reevaluator re-runs the rule behind rec against the EHR's current
// version of the target after a 412, returning the resource to write now,
// or nil when the rule no longer proposes a change.
type Reevaluator func(ctx context.Context, rec Record, current json.RawMessage) (json.RawMessage, error)

// Options configure a Writer.
type Options struct {
	Outbox *Outbox
	// Audit records an AuditEvent before every write sent; required.
	Audit audit.Recorder
	// Agent is ehrgate's identity in the audit trail (ClientID, for
	// example "ehrgate").
	Agent audit.Agent
	// Reevaluate, when set, re-proposes a write whose update met a newer
	// version (412); nil leaves such records conflicted for a person.
	Reevaluate Reevaluator
	// MaxAttempts bounds requests per write on 429, 5xx and lost answers
	// (default 5); BaseDelay is the first backoff (default 200ms, doubled
	// each time, full jitter).
	MaxAttempts int
	BaseDelay   time.Duration
	Sleep       func(ctx context.Context, d time.Duration) error // nil = a timer
	Clock       func() time.Time                                 // nil = time.Now
	Logger      *slog.Logger                                     // ids, types and states only; nil = discard
}

// Writer proposes writes into the Outbox and sends approved ones. It is
// safe for concurrent use: Sends of one record in this process run one
// after the other. Across processes (replicas on one store) a record must be
// sent by one worker at a time (the job queue's job per record); two at once
// write one resource (the create is conditional) but may write two
// Provenances.
type Writer struct {
	opts    Options
	conns   map[string]Connection
	log     *slog.Logger
	sending sync.Map // record id → *sync.Mutex: one Send of a record at a time in this process
}

// Provenance constants.
const (
	// SystemRecord is the URI prefix naming an outbox record in a
	// Provenance's policy: SystemRecord + record id.
	SystemRecord = "urn:ehrgate:writeback:"
	// AgentEhrgate is the Provenance agent who wrote the resource.
	AgentEhrgate = "ehrgate"
)

// NewWriter returns a writer over conns.
func NewWriter(opts Options, conns ...Connection) (*Writer, error) {
	if opts.Outbox == nil || opts.Audit == nil {
		return nil, errors.New("writeback: a writer needs an outbox and an audit recorder")
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = 200 * time.Millisecond
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{opts: opts, conns: make(map[string]Connection, len(conns)), log: log}
	for _, c := range conns {
		if c.Name == "" || c.Target == nil || c.Policy == nil {
			return nil, fmt.Errorf("writeback: connection %q needs a target and a policy", c.Name)
		}
		w.conns[c.Name] = c
	}
	return w, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Propose puts p in the outbox. A write the connection's policy refuses is
// recorded as rejected (by "policy", with the reason) and the error wraps
// ErrRefused; nothing is ever sent for it. Under auto approval the policy
// approves it. Proposing the same write again returns the existing record.
func (w *Writer) Propose(ctx context.Context, p Proposal) (Record, error) {
	conn, ok := w.conns[p.Connection]
	if !ok {
		return Record{}, fmt.Errorf("%w: no write-back connection %q", ErrRefused, p.Connection)
	}
	by := "rule:" + p.Rule.Name
	rec, created, err := w.opts.Outbox.Propose(ctx, p, by, "proposed by "+p.Rule.Name+" "+p.Rule.Version)
	if err != nil {
		return rec, err
	}
	if !created {
		if rec.State == StateRejected && rec.Last().By == "policy" {
			return rec, fmt.Errorf("%w: %s", ErrRefused, rec.Last().Why)
		}
		// A record still holding only its proposal never got the policy's
		// decision (the process died between the two): decide now.
		if rec.State != StateProposed || len(rec.Transitions) != 1 || rec.Last().By != by {
			return rec, nil
		}
	}
	perr := conn.Policy.Check(p.ResourceType, p.Operation)
	if perr == nil {
		perr = checkContent(p.ResourceType, p.Resource)
	}
	if perr != nil {
		rec, err := w.opts.Outbox.Transition(ctx, rec.ID, StateRejected, "policy", perr.Error(), nil)
		if err != nil {
			return rec, err
		}
		return rec, perr
	}
	if conn.Policy.AutoApprove() {
		return w.opts.Outbox.Transition(ctx, rec.ID, StateApproved, "policy", "auto-approved by the connection's write policy",
			func(r *Record) { r.ApprovedBy = "policy" })
	}
	return rec, nil
}

// SendApproved sends every approved (and every unanswered sent) record of
// connection ("" = all), each once, and returns the records as they ended.
// It stops at the first error that is not about one record (rate limit,
// dry run, audit, store).
func (w *Writer) SendApproved(ctx context.Context, connection string) ([]Record, error) {
	recs, err := w.opts.Outbox.List(ctx, connection, StateApproved, StateSent)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, r := range recs {
		got, err := w.Send(ctx, r.ID)
		if err != nil && !errors.Is(err, ErrRefused) && !errors.Is(err, errRecord) {
			return out, err
		}
		out = append(out, got)
	}
	return out, nil
}

// Retryable reports whether err, from Send, leaves the record to be sent
// again later with a chance of a different outcome: the rate limit was
// spent, the store, the audit trail or the EHR's read back failed (the
// record stays approved or sent). It is false for nil and for outcomes a
// retry would not change: the policy refused it, dry run, the record ended
// failed or conflicted (it says why), it is no longer approved, or it is
// unknown. A job that sends a record fails (and is retried with backoff)
// only on retryable errors.
func Retryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrRefused), errors.Is(err, ErrDryRun), errors.Is(err, errRecord),
		errors.Is(err, ErrTransition), errors.Is(err, ErrNotFound):
		return false
	}
	return true
}

// errRecord marks errors that ended one record (failed, conflicted): the
// record says why.
var errRecord = errors.New("writeback: the write did not succeed")

// Send sends an approved record (or repeats a sent one whose outcome is not
// known) and follows it to confirmed, failed, conflicted or re-proposed.
// It returns the record as it ended; an error wrapping ErrRefused,
// ErrDryRun or ErrRateLimited means nothing was sent.
func (w *Writer) Send(ctx context.Context, id string) (Record, error) {
	mu, _ := w.sending.LoadOrStore(id, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	rec, err := w.opts.Outbox.Get(ctx, id)
	if err != nil {
		return Record{}, err
	}
	if rec.State != StateApproved && rec.State != StateSent {
		return rec, fmt.Errorf("%w: record %s is %s, not approved", ErrTransition, rec.ID, rec.State)
	}
	conn, ok := w.conns[rec.Connection]
	if !ok {
		return rec, fmt.Errorf("%w: no write-back connection %q", ErrRefused, rec.Connection)
	}
	pol := conn.Policy
	perr := pol.Check(rec.ResourceType, rec.Operation)
	if perr == nil {
		perr = checkContent(rec.ResourceType, rec.Resource)
	}
	if perr == nil {
		perr = pol.checkProvenance()
	}
	if perr != nil {
		if rec.State == StateApproved {
			if r, err := w.opts.Outbox.Transition(ctx, rec.ID, StateRejected, "policy", perr.Error(), nil); err == nil {
				rec = r
			}
		}
		return rec, perr
	}
	if pol.DryRun() {
		w.log.Info("writeback: dry run, not sent", "record", rec.ID, "type", rec.ResourceType, "operation", string(rec.Operation))
		return rec, ErrDryRun
	}
	if !pol.take() {
		return rec, ErrRateLimited
	}
	body, err := w.prepare(rec, pol)
	if err != nil {
		return rec, err
	}
	// Fail closed: the access is recorded before anything leaves.
	if err := w.opts.Audit.Record(ctx, w.auditEvent(rec)); err != nil {
		return rec, fmt.Errorf("writeback: recording the audit event, nothing sent: %w", err)
	}
	// Write-ahead: from here the write may have happened.
	why := "sending"
	if rec.State == StateSent {
		why = "sending again: the last attempt's outcome is unknown"
	}
	if rec, err = w.opts.Outbox.Transition(ctx, rec.ID, StateSent, AgentEhrgate, why, nil); err != nil {
		return rec, err
	}
	resp, status, oo, err := w.send(ctx, conn, &rec, body)
	switch {
	case err != nil:
		return rec, err
	case status == http.StatusPreconditionFailed && rec.Operation == OpUpdate:
		return w.onStale(ctx, conn, rec, body)
	case status == http.StatusPreconditionFailed:
		return w.finish(ctx, rec, StateConflicted, "several resources in the EHR carry the business identifier", status, oo, nil)
	case status != 0:
		return w.finish(ctx, rec, StateFailed, fmt.Sprintf("the EHR refused the write (HTTP %d)", status), status, oo, nil)
	case resp == nil:
		return w.finish(ctx, rec, StateFailed, fmt.Sprintf("no success after %d attempts; sending again is safe", w.opts.MaxAttempts), 0, nil, nil)
	}
	return w.confirm(ctx, conn, rec, resp.Body, body)
}

// send sends the write with retries on 429, 5xx and lost answers. It
// returns the success response, or the refusing status and outcome, or
// (nil, 0) when the attempts were spent.
func (w *Writer) send(ctx context.Context, conn Connection, rec *Record, body []byte) (*fhir.Response, int, *fhir.OperationOutcome, error) {
	for attempt := 1; attempt <= w.opts.MaxAttempts; attempt++ {
		rec.Attempts++
		var resp *fhir.Response
		var err error
		if rec.Operation == OpCreate {
			resp, err = conn.Target.Create(ctx, rec.ResourceType, body, identifierQuery(rec.Identifier))
		} else {
			resp, err = conn.Target.Update(ctx, rec.ResourceType, rec.TargetID, body, `W/"`+rec.BaseVersion+`"`)
		}
		if err == nil {
			return resp, 0, nil, nil
		}
		var fe *fhir.Error
		retry := errors.Is(err, fhir.ErrNoAnswer)
		if errors.As(err, &fe) {
			retry = fe.StatusCode == http.StatusTooManyRequests || fe.StatusCode >= 500
			if !retry {
				return nil, fe.StatusCode, fe.Outcome, nil
			}
		} else if !retry {
			return nil, 0, nil, fmt.Errorf("writeback: sending %s: %w", rec.ID, err)
		}
		w.log.Warn("writeback: write not answered, retrying", "record", rec.ID, "type", rec.ResourceType, "attempt", attempt)
		if attempt == w.opts.MaxAttempts {
			break
		}
		if err := w.backoff(ctx, attempt); err != nil {
			return nil, 0, nil, err
		}
	}
	return nil, 0, nil, nil
}

func (w *Writer) backoff(ctx context.Context, attempt int) error {
	ceil := w.opts.BaseDelay << (attempt - 1)
	if ceil <= 0 || ceil > time.Minute {
		ceil = time.Minute
	}
	return w.opts.Sleep(ctx, time.Duration(rand.Int64N(int64(ceil))+1))
}

// onStale handles a 412 on an update: the EHR's version moved on. When the
// current version already is what was to be written (the previous attempt
// went through but its answer was lost), the write is confirmed; else the
// rule is re-evaluated against the current version and re-proposed, or the
// record is left conflicted for a person. It never overwrites.
func (w *Writer) onStale(ctx context.Context, conn Connection, rec Record, body []byte) (Record, error) {
	cur, err := conn.Target.Read(ctx, rec.ResourceType, rec.TargetID)
	if err != nil {
		return rec, fmt.Errorf("writeback: re-reading %s after 412: %w", rec.ID, err)
	}
	if sameContent(cur.Body, body) {
		return w.confirm(ctx, conn, rec, cur.Body, body)
	}
	h, _ := fhir.ParseHeader(cur.Body)
	if w.opts.Reevaluate == nil {
		return w.finish(ctx, rec, StateConflicted, "the EHR's version changed since it was read; a person decides", http.StatusPreconditionFailed, nil, cur.Body)
	}
	next, err := w.opts.Reevaluate(ctx, rec, cur.Body)
	if err != nil {
		return rec, fmt.Errorf("writeback: re-evaluating %s: %w", rec.ID, err)
	}
	if next == nil {
		return w.finish(ctx, rec, StateConflicted, "the EHR's version changed and the rule no longer proposes a change; a person closes it", http.StatusPreconditionFailed, nil, cur.Body)
	}
	rec, err = w.opts.Outbox.Transition(ctx, rec.ID, StateProposed, "rule:"+rec.Rule.Name,
		"re-proposed against version "+h.VersionID()+" after a 412", func(r *Record) {
			r.Resource, r.BaseVersion, r.Current = next, h.VersionID(), nil
			r.Status, r.ApprovedBy = http.StatusPreconditionFailed, ""
		})
	if err != nil {
		return rec, err
	}
	if conn.Policy.AutoApprove() {
		return w.opts.Outbox.Transition(ctx, rec.ID, StateApproved, "policy", "auto-approved by the connection's write policy",
			func(r *Record) { r.ApprovedBy = "policy" })
	}
	return rec, nil
}

// confirm reads the written resource back, writes its Provenance and marks
// the record confirmed. Failures leave it sent: a later Send repeats the
// (conditional) write and finishes.
func (w *Writer) confirm(ctx context.Context, conn Connection, rec Record, answer, sent []byte) (Record, error) {
	h, err := fhir.ParseHeader(answer)
	if err != nil || h.ID == "" {
		return rec, fmt.Errorf("writeback: %s: the EHR's answer names no resource", rec.ID)
	}
	back, err := conn.Target.Read(ctx, rec.ResourceType, h.ID)
	if err != nil {
		return rec, fmt.Errorf("writeback: reading %s back: %w", rec.ID, err)
	}
	bh, err := fhir.ParseHeader(back.Body)
	if err != nil {
		return rec, fmt.Errorf("writeback: reading %s back: %w", rec.ID, err)
	}
	if !carriesIdentifier(back.Body, rec.Identifier) {
		return w.finish(ctx, rec, StateConflicted, "the resource read back does not carry the business identifier", 0, nil, back.Body)
	}
	provID, err := w.provenance(ctx, conn, rec, rec.ResourceType+"/"+bh.ID+"/_history/"+bh.VersionID())
	if err != nil {
		return rec, err
	}
	return w.opts.Outbox.Transition(ctx, rec.ID, StateConfirmed, AgentEhrgate, "written and read back at version "+bh.VersionID(),
		func(r *Record) {
			r.Attempts = rec.Attempts
			r.ResultID, r.ResultVersion, r.ProvenanceID = bh.ID, bh.VersionID(), provID
			r.Status, r.Outcome = 0, nil
		})
}

// provenance finds or creates the Provenance of rec's write of target
// (Type/id/_history/v). Provenance has no business identifier in R4, so it
// is found by target and the record's URI in policy, then created.
func (w *Writer) provenance(ctx context.Context, conn Connection, rec Record, target string) (string, error) {
	uri := SystemRecord + rec.ID
	typeID := target[:strings.Index(target, "/_history/")]
	b, err := conn.Target.Search(ctx, "Provenance", fhir.NewQuery().Add("target", typeID))
	if err != nil {
		return "", fmt.Errorf("writeback: looking for the Provenance of %s: %w", rec.ID, err)
	}
	for _, e := range b.Entry {
		var p struct {
			ID     string   `json:"id"`
			Policy []string `json:"policy"`
		}
		if json.Unmarshal(e.Resource, &p) == nil && slices.Contains(p.Policy, uri) {
			return p.ID, nil
		}
	}
	body, err := json.Marshal(w.provenanceResource(rec, target, uri))
	if err != nil {
		return "", err
	}
	resp, err := conn.Target.Create(ctx, "Provenance", body, "")
	if err != nil {
		return "", fmt.Errorf("writeback: writing the Provenance of %s: %w", rec.ID, err)
	}
	ph, err := fhir.ParseHeader(resp.Body)
	if err != nil {
		return "", fmt.Errorf("writeback: the Provenance of %s: %w", rec.ID, err)
	}
	return ph.ID, nil
}

// provenanceResource is the Provenance of a write: ehrgate as the author
// (device agent), the approving person as verifier, the rule and its
// version as the policy and activity.
func (w *Writer) provenanceResource(rec Record, target, uri string) map[string]any {
	agents := []map[string]any{{
		"type": map[string]any{"coding": []map[string]string{{
			"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}}},
		"who": map[string]any{"display": AgentEhrgate, "identifier": map[string]string{"system": "urn:ehrgate:agent", "value": AgentEhrgate}},
	}}
	if rec.ApprovedBy != "" {
		agents = append(agents, map[string]any{
			"type": map[string]any{"coding": []map[string]string{{
				"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "verifier"}}},
			"who": map[string]any{"display": rec.ApprovedBy, "identifier": map[string]string{"system": "urn:ehrgate:user", "value": rec.ApprovedBy}},
		})
	}
	return map[string]any{
		"resourceType": "Provenance",
		"target":       []map[string]string{{"reference": target}},
		"recorded":     w.opts.Clock().UTC().Format(time.RFC3339),
		"policy":       []string{uri, "urn:ehrgate:rule:" + rec.Rule.Name + ":" + rec.Rule.Version},
		"activity":     map[string]any{"text": "derived by " + rec.Rule.Name + " " + rec.Rule.Version},
		"agent":        agents,
	}
}

// finish moves rec to a final state of this attempt, keeping the EHR's
// answer, and returns errRecord.
func (w *Writer) finish(ctx context.Context, rec Record, to State, why string, status int, oo *fhir.OperationOutcome, current []byte) (Record, error) {
	attempts := rec.Attempts
	r, err := w.opts.Outbox.Transition(ctx, rec.ID, to, AgentEhrgate, why, func(r *Record) {
		r.Attempts, r.Status, r.Outcome, r.Current = attempts, status, oo, current
	})
	if err != nil {
		return rec, err
	}
	w.log.Info("writeback: write did not succeed", "record", r.ID, "type", r.ResourceType, "state", string(r.State), "status", status)
	return r, fmt.Errorf("%w: %s: %s", errRecord, r.State, why)
}

// prepare returns the body to send: the resource with the business
// identifier (added when missing), the policy's tags, and without the
// server-owned meta.versionId and meta.lastUpdated.
func (w *Writer) prepare(rec Record, pol *Policy) ([]byte, error) {
	var res map[string]any
	if err := json.Unmarshal(rec.Resource, &res); err != nil {
		return nil, fmt.Errorf("writeback: record %s: the resource: %w", rec.ID, err)
	}
	if rec.Operation == OpUpdate {
		res["id"] = rec.TargetID
	} else {
		delete(res, "id")
	}
	if !carriesIdentifierMap(res, rec.Identifier) {
		ids, _ := res["identifier"].([]any)
		res["identifier"] = append(ids, map[string]any{"system": rec.Identifier.System, "value": rec.Identifier.Value})
	}
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	delete(meta, "versionId")
	delete(meta, "lastUpdated")
	tags, _ := meta["tag"].([]any)
	for _, t := range pol.Tags() {
		if !hasTag(tags, t.System, t.Code) {
			tag := map[string]any{"system": t.System, "code": t.Code}
			if t.Display != "" {
				tag["display"] = t.Display
			}
			tags = append(tags, tag)
		}
	}
	if len(tags) > 0 {
		meta["tag"] = tags
	}
	if len(meta) > 0 {
		res["meta"] = meta
	} else {
		delete(res, "meta")
	}
	return json.Marshal(res)
}

func hasTag(tags []any, system, code string) bool {
	for _, t := range tags {
		if m, ok := t.(map[string]any); ok && m["system"] == system && m["code"] == code {
			return true
		}
	}
	return false
}

func carriesIdentifier(raw []byte, id fhir.Identifier) bool {
	var res map[string]any
	return json.Unmarshal(raw, &res) == nil && carriesIdentifierMap(res, id)
}

func carriesIdentifierMap(res map[string]any, id fhir.Identifier) bool {
	ids, _ := res["identifier"].([]any)
	for _, v := range ids {
		if m, ok := v.(map[string]any); ok && m["system"] == id.System && m["value"] == id.Value {
			return true
		}
	}
	return false
}

// identifierQuery is the If-None-Exist search for a business identifier.
func identifierQuery(id fhir.Identifier) string {
	return fhir.NewQuery().Token("identifier", id.System, id.Value).Encode()
}

// sameContent reports whether two resources are equal apart from id and
// server-owned meta.versionId and meta.lastUpdated.
func sameContent(a, b []byte) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, m := range []map[string]any{x, y} {
		delete(m, "id")
		if meta, ok := m["meta"].(map[string]any); ok {
			delete(meta, "versionId")
			delete(meta, "lastUpdated")
			if len(meta) == 0 {
				delete(m, "meta")
			}
		}
	}
	return reflect.DeepEqual(x, y)
}

// auditEvent is the AuditEvent of sending rec: a RESTful create or update
// by ehrgate, on the patient's record.
func (w *Writer) auditEvent(rec Record) audit.Event {
	action, code := audit.ActionCreate, "create"
	var res []audit.ResourceRef
	if rec.Operation == OpUpdate {
		action, code = audit.ActionUpdate, "update"
		res = []audit.ResourceRef{{Connection: rec.Connection, Type: rec.ResourceType, ID: rec.TargetID, Version: rec.BaseVersion}}
	}
	ev := audit.Event{Type: audit.TypeRest, Subtype: []audit.Coding{audit.Interaction(code)}, Action: action,
		Outcome: audit.OutcomeSuccess, Agent: w.opts.Agent, Resources: res,
		RequestID: "writeback:" + rec.ID}
	if rec.Patient != "" {
		ev.Patient = audit.PatientRef{Connection: rec.Connection, ID: rec.Patient}
	}
	return ev
}

// Interface guards.
var _ Target = (*fhir.Client)(nil)
