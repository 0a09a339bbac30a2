package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// ErrDuplicateMessage is returned by HL7Log.PutHL7 for a message already in
// the log: the same identity (sending application, sending facility, MSH-10
// control ID) and the same content (ContentHash). The same identity with
// other content is not a duplicate (senders reuse control ids after a
// restart, and several interfaces share a facility name): it is stored as a
// new message and counted as a control-id reuse.
var ErrDuplicateMessage = errors.New("store: duplicate HL7 message")

// HL7Message is one inbound HL7 v2 message in the durable message log.
type HL7Message struct {
	Seq             int64  // assigned by the store, increasing in commit order
	Connection      string // the listener (connection name) that received it
	SendingApp      string // MSH-3, encoded as received (components joined by ^)
	SendingFacility string // MSH-4, same
	ControlID       string // MSH-10
	MessageType     string // MSH-9.1^MSH-9.2, e.g. "ADT^A01"
	Raw             []byte // the message exactly as received
	// ContentHash identifies the content for duplicate detection (hl7.ContentHash:
	// SHA-256 of the message without MSH-7, so a resend with a new timestamp
	// is still the same message); nil means SHA-256 of Raw.
	ContentHash []byte
	// ReusedControlID is set by the store when another message with the
	// same identity but other content was logged before this one.
	ReusedControlID bool
	ReceivedAt      time.Time
	// Processed is true once the message's converted resources are stored
	// (with it, or later by CompleteHL7).
	Processed bool
	// Error is why conversion failed ("" when it did not); user-safe, never
	// message content. A message with an error stays unprocessed and is not
	// returned by PendingHL7 (it waits for an operator or a fixed converter).
	Error string
	// Ack is the acknowledgment code (MSA-1) the sender was sent: "AA",
	// "AE" or "AR"; "" counts as AA, or AE when Error starts with
	// "refused".
	Ack string
	// Events, when Processed, are appended to the event log (EventLog) in
	// the same transaction as the message, so that a converted message has
	// its events durably or neither is stored. PutHL7 sets each one's Seq
	// (the caller's slice sees it); Recorded and Body are the caller's.
	Events []StoredEvent
}

// HL7Counts summarises the message log of one connection ("" = all).
type HL7Counts struct {
	Messages  int // messages stored (each identity once)
	Processed int // of which converted and stored
	Failed    int // of which conversion failed or the message was refused (Error set)
	Reused    int // messages whose identity an earlier message with other content had (control-id reuse)
}

// HL7Completion is the outcome of converting one logged message.
type HL7Completion struct {
	Seq     int64
	Records []Record // stored when Error is ""
	Error   string   // why conversion failed; user-safe
	// Events are appended to the event log in the same transaction when
	// Error is "" (see HL7Message.Events); CompleteHL7 sets each one's Seq.
	Events []StoredEvent
}

// HL7Log is the durable log of inbound HL7 v2 messages behind the MLLP
// listener (store-and-forward: a message is acknowledged only once PutHL7
// returned nil).
//
// Contract: implementations are safe for concurrent use; duplicate
// detection is atomic (two PutHL7 of the same identity and content at once
// store one and return ErrDuplicateMessage for the other, across processes
// sharing the store). Messages logged before content hashes existed (an
// empty stored hash) match any content of their identity. PutHL7 stores the message
// and, when m.Processed is set, recs (with the upsert semantics of
// Writer.PutResources) in one transaction: either all of it is durable or
// none, and the same for m.Events and the event log (EventLog: a store
// implementing HL7Log implements EventLog). Frames that cannot be parsed go to Writer.Quarantine (Type "HL7v2"),
// not here.
type HL7Log interface {
	// PutHL7 appends m (Seq is ignored) and returns its Seq.
	PutHL7(ctx context.Context, m HL7Message, recs []Record) (int64, error)
	// PendingHL7 lists messages of connection ("" = all) with Seq > after
	// that are neither processed nor failed, oldest first.
	PendingHL7(ctx context.Context, connection string, after int64, limit int) ([]HL7Message, error)
	// CompleteHL7 applies completions in order, all in one transaction:
	// each stores its records and marks its message processed, or, with
	// Error set, only records the failure. An unknown Seq fails the whole
	// call with ErrNotFound.
	CompleteHL7(ctx context.Context, done []HL7Completion) error
	// HL7Counts counts the log of connection ("" = all).
	HL7Counts(ctx context.Context, connection string) (HL7Counts, error)
}

// HL7ContentHash returns m.ContentHash, or SHA-256 of m.Raw when it is nil:
// what a backend stores and compares for duplicate detection.
func HL7ContentHash(m HL7Message) []byte {
	if m.ContentHash != nil {
		return m.ContentHash
	}
	h := sha256.Sum256(m.Raw)
	return h[:]
}
