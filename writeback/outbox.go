package writeback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ehrgate/secrets"
	"ehrgate/store"
)

// DocKind is the store.Documents kind of outbox records.
const DocKind = "writeback-outbox"

// Sealer encrypts records at rest; *secrets.Keyring is one. aad binds a
// sealed record to its document.
type Sealer interface {
	Seal(plaintext, aad []byte) (secrets.Sealed, error)
	Open(s secrets.Sealed, aad []byte) ([]byte, error)
}

// ErrNotFound is returned for an unknown record id.
var ErrNotFound = errors.New("writeback: no such record")

// ErrTransition is returned (wrapped) for a state change the state machine
// does not allow (see CanTransition).
var ErrTransition = errors.New("writeback: transition not allowed")

// Outbox keeps write Records in a store.Documents, sealed. It is safe for
// concurrent use, also by several processes on one store: every change runs
// in Documents.UpdateDocument, atomically.
type Outbox struct {
	docs     store.Documents
	seal     Sealer
	clock    func() time.Time
	approved func(ctx context.Context, r Record) // OnApproved; nil = none
}

// OnApproved sets fn to be called, in the caller's goroutine, after each
// move of a record to approved is stored: a person's approval, the
// policy's auto-approval, a re-proposal auto-approved after a 412, a
// failed write approved again. The gateway enqueues the record's send job
// there. fn must not block for long and handles its own errors (a missed
// call is made up by the gateway's periodic sweep of approved records).
// Call it before the outbox is shared.
func (o *Outbox) OnApproved(fn func(ctx context.Context, r Record)) { o.approved = fn }

// NewOutbox returns an outbox over docs; clock nil = time.Now.
func NewOutbox(docs store.Documents, seal Sealer, clock func() time.Time) *Outbox {
	if clock == nil {
		clock = time.Now
	}
	return &Outbox{docs: docs, seal: seal, clock: clock}
}

// document is a record as stored: index fields in the clear, the record
// sealed.
type document struct {
	ID         string         `json:"id"`
	Connection string         `json:"connection"`
	Type       string         `json:"type"`
	Operation  Operation      `json:"operation"`
	State      State          `json:"state"`
	Sealed     secrets.Sealed `json:"sealed"`
}

// RecordID is the id a proposal gets: a hash of its connection, type,
// operation, identifier, target and resource, so that proposing the same
// write twice finds the first record instead of adding one.
func RecordID(p Proposal) string {
	h := sha256.New()
	for _, s := range []string{p.Connection, p.ResourceType, string(p.Operation), p.Identifier.System,
		p.Identifier.Value, p.TargetID, p.BaseVersion} {
		fmt.Fprintf(h, "%d:%s|", len(s), s)
	}
	h.Write(p.Resource)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Propose adds p as a proposed record, by who, and returns it with
// created true; when the same proposal is already in the outbox it returns
// that record, unchanged, with created false.
func (o *Outbox) Propose(ctx context.Context, p Proposal, by, why string) (rec Record, created bool, err error) {
	if err := p.Validate(); err != nil {
		return Record{}, false, err
	}
	id := RecordID(p)
	err = o.docs.UpdateDocument(ctx, DocKind, id, func(old []byte) ([]byte, error) {
		if old != nil {
			r, err := o.decode(id, old)
			if err != nil {
				return nil, err
			}
			rec, created = r, false
			return old, nil
		}
		rec = Record{ID: id, Proposal: p, State: StateProposed,
			Transitions: []Transition{{To: StateProposed, At: o.clock().UTC(), By: by, Why: why}}}
		created = true
		return o.encode(rec)
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("writeback: proposing: %w", err)
	}
	return rec, created, nil
}

// Get returns one record.
func (o *Outbox) Get(ctx context.Context, id string) (Record, error) {
	d, err := o.docs.GetDocument(ctx, DocKind, id)
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("writeback: reading record: %w", err)
	}
	return o.decode(id, d.Body)
}

// List returns the records of connection ("" = all) in the given states
// (none = all), by id.
func (o *Outbox) List(ctx context.Context, connection string, states ...State) ([]Record, error) {
	names, err := o.docs.ListDocuments(ctx, DocKind)
	if err != nil {
		return nil, fmt.Errorf("writeback: listing records: %w", err)
	}
	var out []Record
	for _, id := range names {
		d, err := o.docs.GetDocument(ctx, DocKind, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("writeback: reading record: %w", err)
		}
		var doc document
		if err := json.Unmarshal(d.Body, &doc); err != nil {
			return nil, fmt.Errorf("writeback: record %s: %w", id, err)
		}
		if connection != "" && doc.Connection != connection {
			continue
		}
		if len(states) > 0 && !containsState(states, doc.State) {
			continue
		}
		r, err := o.decode(id, d.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func containsState(list []State, s State) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Approve moves a proposed (or failed) record to approved, by a person.
func (o *Outbox) Approve(ctx context.Context, id, by, why string) (Record, error) {
	if by == "" {
		return Record{}, errors.New("writeback: approval needs the approver")
	}
	return o.Transition(ctx, id, StateApproved, by, why, func(r *Record) { r.ApprovedBy = by })
}

// Reject moves a record to rejected, by a person, with a reason.
func (o *Outbox) Reject(ctx context.Context, id, by, why string) (Record, error) {
	if by == "" || why == "" {
		return Record{}, errors.New("writeback: a rejection needs who and why")
	}
	return o.Transition(ctx, id, StateRejected, by, why, nil)
}

// Repropose puts a conflicted record back to proposed with the resource
// a person (by) settled on against the EHR's version baseVersion; it then
// needs approval again.
func (o *Outbox) Repropose(ctx context.Context, id, by, why string, resource json.RawMessage, baseVersion string) (Record, error) {
	if by == "" || why == "" || len(resource) == 0 {
		return Record{}, errors.New("writeback: a re-proposal needs who, why and the resource")
	}
	return o.Transition(ctx, id, StateProposed, by, why, func(r *Record) {
		r.Resource, r.ApprovedBy, r.Current = resource, "", nil
		if r.Operation == OpUpdate {
			r.BaseVersion = baseVersion
		}
	})
}

// Transition moves record id to state to, recording who and why, after
// applying change (may be nil) to it, atomically. A move the state machine
// does not allow fails with ErrTransition and changes nothing.
func (o *Outbox) Transition(ctx context.Context, id string, to State, by, why string, change func(*Record)) (Record, error) {
	var rec Record
	err := o.docs.UpdateDocument(ctx, DocKind, id, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, ErrNotFound
		}
		r, err := o.decode(id, old)
		if err != nil {
			return nil, err
		}
		if !CanTransition(r.State, to) {
			return nil, fmt.Errorf("%w: %s → %s", ErrTransition, r.State, to)
		}
		if change != nil {
			change(&r)
		}
		r.Transitions = append(r.Transitions, Transition{From: r.State, To: to, At: o.clock().UTC(), By: by, Why: why})
		r.State = to
		rec = r
		return o.encode(r)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTransition) {
			return Record{}, err
		}
		return Record{}, fmt.Errorf("writeback: record %s: %w", id, err)
	}
	if rec.State == StateApproved && o.approved != nil {
		o.approved(ctx, rec)
	}
	return rec, nil
}

func aad(id string) []byte { return []byte(DocKind + "/" + id) }

func (o *Outbox) encode(r Record) ([]byte, error) {
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sealed, err := o.seal.Seal(plain, aad(r.ID))
	if err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	return json.Marshal(document{ID: r.ID, Connection: r.Connection, Type: r.ResourceType,
		Operation: r.Operation, State: r.State, Sealed: sealed})
}

func (o *Outbox) decode(id string, body []byte) (Record, error) {
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		return Record{}, fmt.Errorf("writeback: record %s: %w", id, err)
	}
	plain, err := o.seal.Open(d.Sealed, aad(id))
	if err != nil {
		return Record{}, fmt.Errorf("writeback: record %s: opening: %w", id, err)
	}
	var r Record
	if err := json.Unmarshal(plain, &r); err != nil {
		return Record{}, fmt.Errorf("writeback: record %s: %w", id, err)
	}
	return r, nil
}
