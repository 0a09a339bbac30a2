// Package pipeline is the population pipeline of issue 17: for each
// connection, refresh the store (a Bulk Data export with _since, supplied
// by the caller), read every patient's normalized chart, run the risk
// rules (package risk), and reconcile the Flags each rule calls for with
// the Flags written before, through the write-back outbox and its policy
// (package writeback), back into the same EHR.
//
// # One Flag per patient and gap
//
// Each (rule, patient) has a stable business identifier (SystemFlag,
// "rule/patient id") that every Flag of it carries. A first open gap is a
// conditional create (If-None-Exist on that identifier), so a retry, a
// lost answer or a second process never makes a second Flag. What ehrgate
// last wrote for an identifier is the newest confirmed outbox record of
// it; a run compares the Flag it wants with that record and:
//
//   - proposes nothing when they are the same (a second run with nothing
//     changed writes nothing);
//   - proposes an update (If-Match the version read back) when the gap's
//     text or status changed (a new score, a gap open again);
//   - withdraws a Flag whose gap closed: an update to status inactive, or
//     entered-in-error when the conditions that put the patient in the
//     cohort were entered in error (http://hl7.org/fhir/R4/valueset-flag-status.html).
//
// Only the elements the rule owns (identifier, status, category, code,
// subject) are compared and set; other elements of the EHR's version (a
// clinician's note) are kept on updates.
//
// # The score
//
// Each patient with atrial fibrillation whose CHA₂DS₂-VASc is computable
// also gets the score as a derived Observation (SystemScore identifier
// "cha2ds2-vasc/patient id", category survey, valueInteger, one component
// per item, the method naming the source and the inputs), created once and
// updated when the score or an item changes. It is never withdrawn: a
// score that is no longer computable keeps its last value.
//
// # Crashes and retries
//
// A run first finishes the pipeline's records left approved or sent by a
// run that died (the writes are conditional, so repeating them is safe),
// and a proposal that lost its policy decision gets it (writeback.Writer
// Propose). Proposals are content-addressed in the outbox, so proposing
// the same Flag again finds the same record. Reevaluate re-proposes an
// update that met a newer version (412) against it, unless a person
// withdrew the Flag meanwhile. A send that spent its attempts on 429s,
// 5xx or lost answers is sent again by the next run; one the EHR refused
// (409, 422) or that a 412 left conflicted waits for a person.
//
// # Limits
//
// A run compares with what ehrgate last wrote (the outbox), not with the
// EHR's current version: an edit made in the EHR since shows only as a
// 412 when the Flag next needs an update. Runs of one store must not
// overlap (the job queue runs one at a time).
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"ehrgate/fhir"
	"ehrgate/normalize"
	"ehrgate/risk"
	"ehrgate/store"
	"ehrgate/writeback"
)

// SystemFlag is the identifier system of the pipeline's Flags; the value is
// "rule/patient id".
const SystemFlag = "urn:ehrgate:pipeline:flag"

// SystemScore is the identifier system of the pipeline's derived score
// Observations; the value is "score/patient id".
const SystemScore = "urn:ehrgate:pipeline:score"

// SystemRule is the code system of the pipeline's Flag codes: the rule
// names of package risk.
const SystemRule = "urn:ehrgate:pipeline:rule"

// rulePrefix prefixes the outbox Rule.Name of the pipeline's proposals.
const rulePrefix = "pipeline/"

// Store is what the pipeline reads of the store.
type Store interface {
	store.PagedScanner
	ListByPatient(ctx context.Context, connection, patientID, typ string) ([]store.Record, error)
	FetchStates(ctx context.Context, connection, patientID string) ([]store.FetchState, error)
}

// Options configure Run.
type Options struct {
	Store  Store
	Outbox *writeback.Outbox
	// Writer proposes and sends the Flags; its outbox must be Outbox. Build
	// it with Reevaluate as its writeback.Options.Reevaluate.
	Writer *writeback.Writer
	// Connections are the sources, each also the target of its Flags.
	Connections []string
	// Refresh, when set, brings a connection's data into the store first
	// (an incremental Bulk Data export). A refresh error ends the run.
	Refresh func(ctx context.Context, connection string) error
	// Clock gives the evaluation date; nil = time.Now.
	Clock func() time.Time
	// MaxResends bounds how often one Flag is sent again after a 412 made
	// it re-proposed against a newer version (default 3).
	MaxResends int
	Logger     *slog.Logger // ids and counts only; nil = discard
}

// Writes counts what a run did with the Flags.
type Writes struct {
	Created   int `json:"created"`   // new Flags written and read back
	Updated   int `json:"updated"`   // Flags whose text or status changed
	Withdrawn int `json:"withdrawn"` // Flags set inactive or entered-in-error
	Unchanged int `json:"unchanged"` // Flags already as wanted: nothing sent
	Refused   int `json:"refused"`   // refused by the write policy: nothing sent
	Failed    int `json:"failed"`    // refused by the EHR, conflicted or not finished (a later run resumes)
	Pending   int `json:"pending"`   // waiting for a person's approval, the rate limit or dry run
}

// Patient is one patient's results in a run (for the dashboard and JSON
// output): each rule's finding, with the score and its inputs.
type Patient struct {
	Connection string         `json:"connection"`
	ID         string         `json:"id"`
	Findings   []risk.Finding `json:"findings"`
}

// Summary is what a run did.
type Summary struct {
	Connections   []string  `json:"connections"`
	Cohort        int       `json:"cohort"`         // patients in some rule's cohort
	NotComputable int       `json:"not_computable"` // of those, with some result not computable
	Writes        Writes    `json:"writes"`
	DurationMS    int64     `json:"duration_ms"`
	Patients      []Patient `json:"-"`
}

// Run runs the pipeline once over every connection and returns what it
// did. It stops at the first error that is not about one Flag (the store,
// the refresh, the outbox); what was done until then stays done and the
// next run continues from there.
func Run(ctx context.Context, o Options) (Summary, error) {
	start := time.Now()
	if o.Store == nil || o.Outbox == nil || o.Writer == nil {
		return Summary{}, errors.New("pipeline: a store, an outbox and a writer are required")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MaxResends <= 0 {
		o.MaxResends = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sum := Summary{Connections: slices.Clone(o.Connections)}
	for _, conn := range o.Connections {
		if o.Refresh != nil {
			if err := o.Refresh(ctx, conn); err != nil {
				return sum, fmt.Errorf("pipeline: refreshing %s: %w", conn, err)
			}
		}
		if err := runConnection(ctx, o, conn, &sum); err != nil {
			sum.DurationMS = time.Since(start).Milliseconds()
			return sum, err
		}
	}
	sum.DurationMS = time.Since(start).Milliseconds()
	return sum, nil
}

// runConnection evaluates and reconciles one connection.
func runConnection(ctx context.Context, o Options, conn string, sum *Summary) error {
	if err := resume(ctx, o, conn, &sum.Writes); err != nil {
		return err
	}
	last, err := lastWritten(ctx, o.Outbox, conn)
	if err != nil {
		return err
	}
	missing, err := missingTypes(ctx, o.Store, conn)
	if err != nil {
		return err
	}
	asOf := o.Clock().UTC()
	seen := map[string]bool{}
	var after store.Key
	for {
		page, err := o.Store.ScanCurrentPage(ctx, store.ScanQuery{Connection: conn, Type: "Patient", After: after, Limit: 200})
		if err != nil {
			return fmt.Errorf("pipeline: listing the patients of %s: %w", conn, err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Key
		for _, rec := range page {
			chart, err := loadChart(ctx, o.Store, rec, missing)
			if err != nil {
				return err
			}
			findings := risk.Evaluate(chart, asOf)
			if len(findings) > 0 {
				sum.Cohort++
				sum.Patients = append(sum.Patients, Patient{Connection: conn, ID: rec.ID, Findings: findings})
				for _, f := range findings {
					if !f.Computable {
						sum.NotComputable++
						break
					}
				}
			}
			for _, rule := range risk.Rules {
				key := identifier(rule.Name, rec.ID)
				seen[key] = true
				want := wanted(findings, rule, rec.ID, chart, last[key])
				if want == nil {
					continue
				}
				if err := reconcile(ctx, o, conn, rec.ID, key, rule, want, last[key], &sum.Writes); err != nil {
					return err
				}
			}
			// The score as a derived Observation, for each computable
			// score; a score no longer computable keeps its last value.
			for _, f := range findings {
				if f.Score == nil || !f.Score.Computable {
					continue
				}
				rule := risk.ScoreCHA2DS2VASc
				key := identifier(rule.Name, rec.ID)
				if err := reconcile(ctx, o, conn, rec.ID, key, rule, scoreObservation(rec.ID, *f.Score), last[key], &sum.Writes); err != nil {
					return err
				}
			}
		}
	}
	// Flags of patients no longer in the store: withdrawn.
	for key, l := range last {
		if seen[key] || l.rec.ResourceType != "Flag" || l.status() != "active" {
			continue
		}
		rule, patient, _ := strings.Cut(key, "/")
		r, ok := ruleByName(rule)
		if !ok {
			continue
		}
		want := flag(r, patient, "inactive", l.text())
		if err := reconcile(ctx, o, conn, patient, key, r, want, l, &sum.Writes); err != nil {
			return err
		}
	}
	return nil
}

func ruleByName(name string) (risk.Rule, bool) {
	for _, r := range risk.Rules {
		if r.Name == name {
			return r, true
		}
	}
	return risk.Rule{}, false
}

func identifier(rule, patient string) string { return rule + "/" + patient }

// wanted returns the Flag rule calls for now, or nil when there is none
// and none was written before.
func wanted(findings []risk.Finding, rule risk.Rule, patient string, chart risk.Chart, prev *written) map[string]any {
	for _, f := range findings {
		if f.Rule.Name == rule.Name && f.Open {
			return flag(rule, patient, "active", f.Summary)
		}
	}
	if prev == nil || prev.status() != "active" {
		return nil
	}
	// The gap closed (or the patient left the cohort, or the result is
	// not computable now): withdraw, keeping the text.
	return flag(rule, patient, risk.WithdrawalStatus(chart, rule.Name), prev.text())
}

// flag is the Flag of rule for patient: the elements the pipeline owns.
func flag(rule risk.Rule, patient, status, text string) map[string]any {
	return map[string]any{
		"resourceType": "Flag",
		"identifier":   []any{map[string]any{"system": SystemFlag, "value": identifier(rule.Name, patient)}},
		"status":       status,
		// http://hl7.org/fhir/R4/codesystem-flag-category.html
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical"}}}},
		"code": map[string]any{
			"coding": []any{map[string]any{"system": SystemRule, "code": rule.Name, "display": rule.Title}},
			"text":   text,
		},
		"subject": map[string]any{"reference": "Patient/" + patient},
	}
}

// scoreObservation is the derived Observation of a computable score: the
// value, each item as a component (its points, 0 when absent), the method
// citing the score's source. It carries no effective date, so that it
// changes only when the score or its items do.
func scoreObservation(patient string, s risk.Score) map[string]any {
	rule := risk.ScoreCHA2DS2VASc
	var comps []any
	for _, it := range s.Items {
		points := 0
		if it.Present {
			points = it.Points
		}
		comps = append(comps, map[string]any{"code": map[string]any{"text": it.Name}, "valueInteger": points})
	}
	return map[string]any{
		"resourceType": "Observation",
		"identifier":   []any{map[string]any{"system": SystemScore, "value": identifier(rule.Name, patient)}},
		"status":       "final",
		// http://hl7.org/fhir/R4/codesystem-observation-category.html:
		// "survey" covers assessment scores.
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey", "display": "Survey"}}}},
		"code": map[string]any{
			"coding": []any{map[string]any{"system": SystemRule, "code": rule.Name, "display": rule.Title}},
			"text":   rule.Title,
		},
		"subject":      map[string]any{"reference": "Patient/" + patient},
		"valueInteger": s.Value,
		"component":    comps,
		"method":       map[string]any{"text": "derived by ehrgate: " + rule.Title + " (" + rule.Source + ") from the chart's conditions, birth date and sex: " + s.Explain()},
	}
}

// owned are the elements of a Flag or score Observation the pipeline sets
// and compares.
var owned = map[string][]string{
	"Flag":        {"resourceType", "identifier", "status", "category", "code", "subject"},
	"Observation": {"resourceType", "identifier", "status", "category", "code", "subject", "valueInteger", "component", "method"},
}

// systemOf is the identifier system of the pipeline's resources of a type.
func systemOf(typ string) string {
	if typ == "Observation" {
		return SystemScore
	}
	return SystemFlag
}

// ownedPart returns the owned elements of a resource.
func ownedPart(res map[string]any) map[string]any {
	typ, _ := res["resourceType"].(string)
	out := make(map[string]any, len(owned[typ]))
	for _, k := range owned[typ] {
		if v, ok := res[k]; ok {
			out[k] = v
		}
	}
	return out
}

// sameOwned reports whether two Flags agree on every owned element.
func sameOwned(a, b map[string]any) bool {
	// Round-trip both so that types agree ([]any vs []map, numbers).
	return reflect.DeepEqual(roundTrip(ownedPart(a)), roundTrip(ownedPart(b)))
}

func roundTrip(v any) any {
	raw, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// written is the newest confirmed write of one Flag.
type written struct {
	rec writeback.Record
	res map[string]any
	at  time.Time
}

func (w *written) status() string {
	s, _ := w.res["status"].(string)
	return s
}

func (w *written) text() string {
	c, _ := w.res["code"].(map[string]any)
	s, _ := c["text"].(string)
	return s
}

// lastWritten returns, per identifier value, the newest confirmed pipeline
// record of conn.
func lastWritten(ctx context.Context, ob *writeback.Outbox, conn string) (map[string]*written, error) {
	recs, err := ob.List(ctx, conn, writeback.StateConfirmed)
	if err != nil {
		return nil, fmt.Errorf("pipeline: reading the outbox: %w", err)
	}
	out := map[string]*written{}
	for _, r := range recs {
		if !strings.HasPrefix(r.Rule.Name, rulePrefix) || r.Identifier.System != systemOf(r.ResourceType) {
			continue
		}
		var res map[string]any
		if json.Unmarshal(r.Resource, &res) != nil {
			continue
		}
		at := r.Last().At
		if prev, ok := out[r.Identifier.Value]; ok && !at.After(prev.at) {
			continue
		}
		out[r.Identifier.Value] = &written{rec: r, res: res, at: at}
	}
	return out, nil
}

// resume sends the pipeline's records of conn left approved or sent (a
// run or process that died before finishing them), and rejects proposals
// no one approved that a newer run replaces later (superseded ones are
// found by reconcile).
func resume(ctx context.Context, o Options, conn string, n *Writes) error {
	recs, err := o.Outbox.List(ctx, conn, writeback.StateApproved, writeback.StateSent)
	if err != nil {
		return fmt.Errorf("pipeline: reading the outbox: %w", err)
	}
	for _, r := range recs {
		if !strings.HasPrefix(r.Rule.Name, rulePrefix) {
			continue
		}
		o.Logger.Info("pipeline: finishing a write left by an earlier run", "record", r.ID, "state", string(r.State))
		if err := send(ctx, o, r, n); err != nil {
			return err
		}
	}
	return nil
}

// reconcile proposes want for key unless the last confirmed write already
// says the same, and sends it.
func reconcile(ctx context.Context, o Options, conn, patient, key string, rule risk.Rule, want map[string]any, prev *written, n *Writes) error {
	if prev != nil && sameOwned(prev.res, want) {
		n.Unchanged++
		return nil
	}
	typ, _ := want["resourceType"].(string)
	p := writeback.Proposal{Connection: conn, ResourceType: typ, Operation: writeback.OpCreate,
		Identifier: fhir.Identifier{System: systemOf(typ), Value: key}, Patient: patient,
		Rule: writeback.Rule{Name: rulePrefix + rule.Name, Version: rule.Version}}
	body := want
	if prev != nil {
		// An update of the Flag read back, against its version: the
		// EHR's other elements are kept.
		body = map[string]any{}
		for k, v := range prev.res {
			body[k] = v
		}
		for k, v := range want {
			body[k] = v
		}
		p.Operation, p.TargetID, p.BaseVersion = writeback.OpUpdate, prev.rec.ResultID, prev.rec.ResultVersion
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	p.Resource = raw
	in := map[string]any{"rule": rule, "status": want["status"]}
	if prev != nil {
		in["base_status"] = prev.status()
	}
	inputs, _ := json.Marshal(in)
	p.Inputs = inputs
	if err := supersede(ctx, o, conn, key, writeback.RecordID(p)); err != nil {
		return err
	}
	rec, err := o.Writer.Propose(ctx, p)
	switch {
	case errors.Is(err, writeback.ErrRefused):
		n.Refused++
		return nil
	case err != nil:
		return fmt.Errorf("pipeline: proposing %s: %w", rec.ID, err)
	}
	return send(ctx, o, rec, n)
}

// supersede rejects the pipeline's proposals of key awaiting approval
// other than keep: a newer result replaces them.
func supersede(ctx context.Context, o Options, conn, key, keep string) error {
	recs, err := o.Outbox.List(ctx, conn, writeback.StateProposed)
	if err != nil {
		return fmt.Errorf("pipeline: reading the outbox: %w", err)
	}
	for _, r := range recs {
		if r.ID == keep || r.Identifier.System != systemOf(r.ResourceType) || r.Identifier.Value != key || !strings.HasPrefix(r.Rule.Name, rulePrefix) {
			continue
		}
		if _, err := o.Outbox.Reject(ctx, r.ID, "rule:"+r.Rule.Name, "superseded by a newer result of the rule"); err != nil && !errors.Is(err, writeback.ErrTransition) {
			return err
		}
	}
	return nil
}

// send sends an approved (or unfinished sent) record, again after a 412
// re-proposal approved by the policy, and counts how it ended.
func send(ctx context.Context, o Options, rec writeback.Record, n *Writes) error {
	var err error
	if rec.State == writeback.StateFailed && rec.Status == 0 && rec.Outcome == nil {
		// The last send spent its attempts on 429s, 5xx or lost answers
		// (the EHR refused nothing): sending the same approved write again
		// is safe and may succeed now. A refusal (409, 422) waits for a
		// person.
		rec, err = o.Outbox.Transition(ctx, rec.ID, writeback.StateApproved, "rule:"+rec.Rule.Name,
			"sent again: the last send ran out of attempts on errors a retry may fix", nil)
		if err != nil {
			return fmt.Errorf("pipeline: %w", err)
		}
	}
	for range o.MaxResends + 1 {
		if rec.State != writeback.StateApproved && rec.State != writeback.StateSent {
			break
		}
		rec, err = o.Writer.Send(ctx, rec.ID)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, writeback.ErrRateLimited) || errors.Is(err, writeback.ErrDryRun) {
			n.Pending++
			return nil
		}
		if errors.Is(err, writeback.ErrRefused) {
			n.Refused++
			return nil
		}
		if err != nil && writeback.Retryable(err) {
			o.Logger.Warn("pipeline: write not finished; the next run resumes it", "record", rec.ID, "error", err)
			n.Failed++
			return nil
		}
	}
	switch rec.State {
	case writeback.StateConfirmed:
		var res map[string]any
		_ = json.Unmarshal(rec.Resource, &res)
		switch {
		case rec.Operation == writeback.OpCreate:
			n.Created++
		case rec.ResourceType == "Flag" && res["status"] != "active":
			n.Withdrawn++
		default:
			n.Updated++
		}
	case writeback.StateProposed:
		n.Pending++
	case writeback.StateRejected:
		n.Refused++
	default:
		n.Failed++
	}
	return nil
}

// Reevaluate is the pipeline's writeback.Reevaluator: after a 412 on an
// update of one of its Flags, it re-proposes the Flag it wanted against the
// EHR's current version (keeping that version's other elements), unless a
// person set the Flag to another status meanwhile (inactive or
// entered-in-error where the pipeline wanted it active, or the reverse):
// then a person decides (nil). Records of other rules get nil.
func Reevaluate(_ context.Context, rec writeback.Record, current json.RawMessage) (json.RawMessage, error) {
	if !strings.HasPrefix(rec.Rule.Name, rulePrefix) {
		return nil, nil
	}
	var want, cur map[string]any
	if err := json.Unmarshal(rec.Resource, &want); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(current, &cur); err != nil {
		return nil, fmt.Errorf("the EHR's version: %w", err)
	}
	// The status the pipeline last saw is the one it based the update on;
	// a different current status is a person's decision.
	var in struct {
		Base string `json:"base_status"`
	}
	_ = json.Unmarshal(rec.Inputs, &in)
	if in.Base != "" && cur["status"] != in.Base {
		return nil, nil
	}
	next := map[string]any{}
	for k, v := range cur {
		next[k] = v
	}
	for k, v := range ownedPart(want) {
		next[k] = v
	}
	delete(next, "meta")
	return json.Marshal(next)
}

// missingTypes returns the chart types of which the store holds nothing
// from conn: unknown for every patient, never "none".
func missingTypes(ctx context.Context, st Store, conn string) (map[string]string, error) {
	out := map[string]string{}
	for _, typ := range []string{"Condition", "Observation", "MedicationRequest"} {
		page, err := st.ScanCurrentPage(ctx, store.ScanQuery{Connection: conn, Type: typ, Limit: 1, RawOnly: true})
		if err != nil {
			return nil, fmt.Errorf("pipeline: reading %s: %w", conn, err)
		}
		if len(page) == 0 {
			out[typ] = "the store holds no " + typ + " from " + conn
		}
	}
	return out, nil
}

// loadChart reads a patient's normalized chart.
func loadChart(ctx context.Context, st Store, pat store.Record, missing map[string]string) (risk.Chart, error) {
	var c risk.Chart
	if err := json.Unmarshal(pat.Normalized, &c.Patient); err != nil {
		return c, fmt.Errorf("pipeline: patient %s: %w", pat.ID, err)
	}
	c.Patient.Source = normalize.Ref{Connection: pat.Connection, Type: "Patient", ID: pat.ID, VersionID: pat.VersionID}
	c.Unavailable = map[string]string{}
	for k, v := range missing {
		c.Unavailable[k] = v
	}
	states, err := st.FetchStates(ctx, pat.Connection, pat.ID)
	if err != nil {
		return c, fmt.Errorf("pipeline: fetch states: %w", err)
	}
	for _, s := range states {
		if s.Availability == store.NotAvailable || s.Availability == store.Failed {
			c.Unavailable[s.Type] = string(s.Availability) + ": " + s.Detail
		}
	}
	if err := loadType(ctx, st, pat, "Condition", &c.Conditions); err != nil {
		return c, err
	}
	if err := loadType(ctx, st, pat, "Observation", &c.Observations); err != nil {
		return c, err
	}
	if err := loadType(ctx, st, pat, "MedicationRequest", &c.MedicationRequests); err != nil {
		return c, err
	}
	return c, nil
}

// loadType decodes the normalized records of one type of a patient.
func loadType[T any](ctx context.Context, st Store, pat store.Record, typ string, out *[]T) error {
	recs, err := st.ListByPatient(ctx, pat.Connection, pat.ID, typ)
	if err != nil {
		return fmt.Errorf("pipeline: reading the %s of patient %s: %w", typ, pat.ID, err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	for _, r := range recs {
		var v T
		if err := json.Unmarshal(r.Normalized, &v); err != nil {
			return fmt.Errorf("pipeline: %s/%s: %w", typ, r.ID, err)
		}
		*out = append(*out, v)
	}
	return nil
}
