package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// AuditEntry is one event of the audit trail as the store keeps it: the
// event itself (Event, the canonical bytes of a FHIR AuditEvent, made by
// package audit; the store treats them as opaque) beside the fields the
// store indexes for queries, and the entry's place in the hash chain.
//
// The index fields repeat what Event says; they are covered by the hash
// (AuditHash) so that changing them is detected like changing Event.
// Entries hold no clinical payloads and no tokens (package audit's
// contract).
type AuditEntry struct {
	// Seq is the entry's position in the trail, assigned by AppendAudit:
	// 1, 2, 3, ... without gaps.
	Seq int64
	// Recorded is when the event happened (AuditEvent.recorded). AppendAudit
	// keeps it at microsecond precision (what every backend stores).
	Recorded time.Time
	// Type and Subtype are the event's type code and first subtype code
	// (e.g. "rest" and "read").
	Type    string
	Subtype string
	// Action is the AuditEvent action code: C, R, U, D or E.
	Action string
	// Outcome is the AuditEvent outcome code: 0, 4, 8 or 12.
	Outcome string
	// Agent is who did it: the user's or client's id.
	Agent string
	// Connection and Patient name the patient whose data was touched (the
	// patient's resource id within the connection); both empty when the
	// event concerns no one patient.
	Connection string
	Patient    string
	// Event is the canonical event bytes.
	Event []byte
	// PrevHash and Hash chain the entry to the one before it (AppendAudit sets
	// both): Hash = AuditHash(PrevHash, entry); the first entry's
	// PrevHash is AuditZeroHash.
	PrevHash []byte
	Hash     []byte
}

// AuditZeroHash is the PrevHash of the first entry of a trail.
var AuditZeroHash = make([]byte, sha256.Size)

// AuditHash returns SHA-256 over prev followed by the entry's canonical
// bytes: its Seq, Recorded (Unix microseconds), index fields and Event, each
// length-prefixed so that no two different entries encode alike. PrevHash
// and Hash of e are ignored. Anyone holding an export of the trail can
// recompute the chain with it.
func AuditHash(prev []byte, e AuditEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	var n [binary.MaxVarintLen64]byte
	put := func(b []byte) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
		h.Write(b)
	}
	var i [8]byte
	binary.BigEndian.PutUint64(i[:], uint64(e.Seq))
	h.Write(i[:])
	binary.BigEndian.PutUint64(i[:], uint64(e.Recorded.UnixMicro()))
	h.Write(i[:])
	for _, s := range []string{e.Type, e.Subtype, e.Action, e.Outcome, e.Agent, e.Connection, e.Patient} {
		put([]byte(s))
	}
	put(e.Event)
	return h.Sum(nil)
}

// AuditQuery selects audit entries. Empty fields match everything; the
// entries come in sequence order.
type AuditQuery struct {
	// Connection and Patient: events about this patient (Connection may be
	// empty to match the patient id on every connection).
	Connection string
	Patient    string
	// Agent: events by this user or client.
	Agent string
	// Type and Subtype: events with these codes.
	Type    string
	Subtype string
	// Since and Until bound Recorded: Since <= Recorded < Until (zero: no
	// bound).
	Since, Until time.Time
	// After pages: only entries with Seq > After (pass the last Seq of the
	// previous page).
	After int64
	// Limit is the most entries returned (zero or negative: 100).
	Limit int
}

// AuditVerification is what AuditLog.Verify found.
type AuditVerification struct {
	// Entries is how many entries were checked; Last is the highest Seq
	// and Head its Hash (an operator may note Head elsewhere: the chain
	// alone cannot show that the newest entries were removed).
	Entries int64
	Last    int64
	Head    []byte
	// Broken is the first sequence number that does not follow the chain
	// (a changed, removed or inserted entry, or a gap), 0 when the chain is
	// intact; Reason says why, for people.
	Broken int64
	Reason string
}

// Intact reports whether the chain verified.
func (v AuditVerification) Intact() bool { return v.Broken == 0 }

// AuditLog is the append-only, tamper-evident audit trail (who touched which
// patient's data, when, from where; package audit writes it).
//
// Contract: implementations are safe for concurrent use, by goroutines and
// by processes sharing the store. AppendAudit assigns each of es, in order,
// the next sequence number and chains it (PrevHash, Hash) under the trail's
// lock, in one transaction, so concurrent appends, from any process, make
// one chain with no gaps; it returns the entries as stored. It stores all
// of es or none: an error means none was recorded (callers fail closed).
// Appending several at once is how a busy recorder shares one commit among
// many events (package audit's Log). The store never changes or removes an
// entry.
//
// QueryAudit returns the entries q selects, in sequence order, at most
// q.Limit of them. VerifyAudit walks the whole chain from sequence 1 and
// reports the first entry that does not follow (AuditVerification.Broken);
// an error means it could not read the trail, not that the trail is broken.
type AuditLog interface {
	AppendAudit(ctx context.Context, es ...AuditEntry) ([]AuditEntry, error)
	QueryAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	VerifyAudit(ctx context.Context) (AuditVerification, error)
}
