// Package writeback writes derived results (Flags, derived Observations,
// Tasks, Communications, draft DocumentReferences) back into an EHR, safely
// by construction (issue 17).
//
// # Lifecycle
//
// Every intended write is a Record in the Outbox, a durable document in the
// store, before anything is sent. A Record moves through States:
//
//	proposed ──approve──▶ approved ──send──▶ sent ──read back──▶ confirmed
//	    │                    │                 │
//	    └──reject──▶ rejected└─▶ failed ◀──────┤ (409/422 kept, retries spent)
//	                                           └─▶ conflicted (412 that needs a person)
//
// and every transition is kept on the record (who, when, why). The Writer
// checks the connection's Policy (config.Write bounded by the vendor's
// ehr.Profile.Write) before any request leaves: a write the policy does not
// allow is rejected without a request. Approval is the policy's (auto) or a
// person's (human). A Record is marked sent before its request leaves
// (write-ahead), so a crash leaves "sent" meaning "may have happened"; the
// next Send repeats it safely, because creates are conditional on the
// Record's business identifier (If-None-Exist) and updates carry If-Match.
// An AuditEvent (action C or U) is recorded before each write is sent; when
// recording fails nothing is sent (fail closed).
//
// # Wiring
//
// gateway.Gateway.Writer builds a Writer from the configuration: per
// connection with a config.Write, NewPolicy(name, conn.Write,
// adapter.Profile().Write, clock) and a Connection{Name, Target: the
// connection's *fhir.Client, Policy}; an Outbox over the store sealed by the
// keyring; the gateway's audit trail. Backend-services tokens then ask for
// the write scopes (gateway.WritesOf). Rules call Writer.Propose; people
// call Outbox.Approve, Reject and Repropose (the dashboard's /writes pages,
// `ehrgate writes`). In `ehrgate serve` every approval enqueues a job that
// calls Writer.Send for that record (Outbox.OnApproved), and a periodic
// sweep enqueues approved and sent records left behind; the job fails, to
// be retried by the queue, only when Retryable says so (gateway/writejobs.go).
//
// # Patient data
//
// Records hold patient data (the resource, its inputs). The outbox keeps
// them sealed (envelope-encrypted by a Sealer, package secrets) inside
// store.Documents, whose contract is that it holds no patient data in the
// clear; only the record id, connection, type, operation and state are
// readable. Logs name record ids, types and states, never resources.
package writeback

import (
	"encoding/json"
	"fmt"
	"time"

	"ehrgate/fhir"
)

// State is where a Record is in its lifecycle.
type State string

// The states.
const (
	StateProposed   State = "proposed"   // waiting for approval
	StateApproved   State = "approved"   // may be sent
	StateSent       State = "sent"       // a request left or is leaving; the outcome is not known yet
	StateConfirmed  State = "confirmed"  // written and read back, with its Provenance
	StateRejected   State = "rejected"   // refused by a person or by the policy; never sent
	StateConflicted State = "conflicted" // the EHR's version moved on; a person decides
	StateFailed     State = "failed"     // the EHR refused it (409/422 kept) or retries were spent
)

// transitions is the state machine: the states each state may move to.
var transitions = map[State][]State{
	StateProposed:   {StateApproved, StateRejected},
	StateApproved:   {StateSent, StateRejected},
	StateSent:       {StateSent, StateConfirmed, StateFailed, StateConflicted, StateProposed},
	StateConflicted: {StateProposed, StateRejected},
	StateFailed:     {StateApproved, StateRejected},
	StateConfirmed:  nil,
	StateRejected:   nil,
}

// CanTransition reports whether a Record may move from one state to
// another. sent → sent is a repeat of an unanswered write; sent → proposed
// is a re-proposal against the EHR's newer version after a 412; failed →
// approved is a person sending a failed write again.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return len(transitions[s]) == 0 }

// Operation is the FHIR interaction a write uses.
type Operation string

// The operations.
const (
	OpCreate Operation = "create"
	OpUpdate Operation = "update"
)

// Rule names the rule or model that proposed a write, and its version.
type Rule struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Proposal is an intended write, as a rule proposes it.
type Proposal struct {
	// Connection is the target connection (config.Connection.Name).
	Connection string `json:"connection"`
	// ResourceType and Operation say what is written and how.
	ResourceType string    `json:"resource_type"`
	Operation    Operation `json:"operation"`
	// Resource is the resource to write. For an update it carries the id.
	Resource json.RawMessage `json:"resource"`
	// Identifier is the business identifier that makes the write
	// idempotent: creates are conditional on it (If-None-Exist), and the
	// Writer adds it to the resource when missing.
	Identifier fhir.Identifier `json:"identifier"`
	// TargetID and BaseVersion are, for an update, the resource and the
	// version the rule read (sent as If-Match).
	TargetID    string `json:"target_id,omitempty"`
	BaseVersion string `json:"base_version,omitempty"`
	// Patient is the id of the patient the write concerns (audit).
	Patient string `json:"patient,omitempty"`
	// Rule and Inputs say what proposed it and from what.
	Rule   Rule            `json:"rule"`
	Inputs json.RawMessage `json:"inputs,omitempty"`
}

// Validate reports what keeps p from being proposed.
func (p Proposal) Validate() error {
	switch {
	case p.Connection == "" || p.ResourceType == "":
		return fmt.Errorf("writeback: a proposal needs a connection and a resource type")
	case p.Operation != OpCreate && p.Operation != OpUpdate:
		return fmt.Errorf("writeback: operation %q is not create or update", p.Operation)
	case p.Identifier.System == "" || p.Identifier.Value == "":
		return fmt.Errorf("writeback: a proposal needs a business identifier (system and value)")
	case p.Operation == OpUpdate && (p.TargetID == "" || p.BaseVersion == ""):
		return fmt.Errorf("writeback: an update needs the target id and the version read")
	case p.Rule.Name == "":
		return fmt.Errorf("writeback: a proposal names the rule that made it")
	}
	h, err := fhir.ParseHeader(p.Resource)
	if err != nil {
		return fmt.Errorf("writeback: the resource: %w", err)
	}
	if h.ResourceType != p.ResourceType {
		return fmt.Errorf("writeback: the resource is a %s, not a %s", h.ResourceType, p.ResourceType)
	}
	return nil
}

// Transition is one state change of a Record.
type Transition struct {
	From State     `json:"from"`
	To   State     `json:"to"`
	At   time.Time `json:"at"`
	By   string    `json:"by"`  // a person's user id, or "ehrgate", "policy"
	Why  string    `json:"why"` // user-safe reason
}

// Record is one write in the outbox.
type Record struct {
	ID string `json:"id"`
	Proposal
	State       State        `json:"state"`
	Transitions []Transition `json:"transitions"`
	// ApprovedBy is who approved it ("policy" for auto-approval).
	ApprovedBy string `json:"approved_by,omitempty"`
	// Attempts counts the requests sent for the resource.
	Attempts int `json:"attempts,omitempty"`
	// ResultID and ResultVersion are the written resource in the EHR.
	ResultID      string `json:"result_id,omitempty"`
	ResultVersion string `json:"result_version,omitempty"`
	// ProvenanceID is the Provenance written with it.
	ProvenanceID string `json:"provenance_id,omitempty"`
	// Status and Outcome are the EHR's last refusal (409, 412, 422, ...).
	Status  int                    `json:"status,omitempty"`
	Outcome *fhir.OperationOutcome `json:"outcome,omitempty"`
	// Current is the EHR's version of the resource when a 412 made the
	// record conflicted, for the person deciding.
	Current json.RawMessage `json:"current,omitempty"`
}

// Last returns the record's latest transition (zero when there is none).
func (r Record) Last() Transition {
	if len(r.Transitions) == 0 {
		return Transition{}
	}
	return r.Transitions[len(r.Transitions)-1]
}
