// Package store defines how ehrgate keeps what it pulls: every raw FHIR
// resource byte for byte beside its normalized form, quarantined input that
// could not be processed, and per-patient fetch state (freshness and
// availability).
//
// The interfaces are split by role so that each consumer asks only for what
// it uses (the sync writes, the dashboard reads). Backends live in
// sub-packages (store/sqlite is the embedded default) and are checked by the
// shared conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a requested resource is not in the store.
var ErrNotFound = errors.New("store: not found")

// Key identifies one version of one resource from one connection.
type Key struct {
	Connection string
	Type       string
	ID         string
	VersionID  string
}

// PatientKeys are the demographic fields a Patient is searchable by.
type PatientKeys struct {
	Names     []string // full names, any order, any case
	MRNs      []string // identifier values
	BirthDate string   // YYYY-MM-DD, or "" when unknown
}

// Record is one stored resource version.
type Record struct {
	Key
	PatientID   string       // the patient the resource belongs to ("" when none)
	Raw         []byte       // the resource exactly as received
	Hash        []byte       // ContentHash(Raw) when the producer computed it (refresh.NewRecord does); stores compute it when nil
	Normalized  []byte       // JSON of the normalize package's model for this type
	LastUpdated time.Time    // meta.lastUpdated, zero when absent
	FetchedAt   time.Time    // when ehrgate received it
	Source      string       // where it came from: a URL, a file path, an HL7 message id
	Patient     *PatientKeys // set for Patient resources only
	// Encoded is Raw and Normalized in one backend's storage encoding,
	// computed ahead of the write (in parallel) by that backend, which then
	// writes it instead of Raw and Normalized (a caller may release those);
	// other backends ignore it. Nil: the backend encodes at write time.
	Encoded *Encoded
}

// Encoded holds a record's bodies in a backend's storage encoding.
type Encoded struct {
	Backend         string // the encoding's name; a backend uses only its own
	Raw, Normalized []byte
}

// Change says what an upsert did.
type Change int

// Possible results of an upsert.
const (
	Unchanged Change = iota // same key and same bytes already stored
	New                     // no version of this resource was stored
	Updated                 // a different version (or different bytes) replaced the current one
)

func (c Change) String() string {
	switch c {
	case New:
		return "new"
	case Updated:
		return "updated"
	default:
		return "unchanged"
	}
}

// QuarantineItem is input that could not be processed, kept with the reason
// so that nothing that came in is lost.
type QuarantineItem struct {
	Connection string
	Type       string // resource type if known
	ResourceID string // resource id if known
	Source     string // URL, file and line, message id
	Reason     string // why it was quarantined; never contains the payload
	Raw        []byte
	ReceivedAt time.Time
}

// Availability says whether a source exposes a resource type for a patient.
type Availability string

// Availability values. NotAvailable means the source does not expose the
// type at all; it must never be shown as "none recorded".
const (
	Available    Availability = "available"
	NotAvailable Availability = "not_available"
	Failed       Availability = "error"
)

// FetchState records the last fetch of one resource type for one patient.
type FetchState struct {
	Connection   string
	PatientID    string
	Type         string
	Availability Availability
	Count        int
	FetchedAt    time.Time
	Detail       string // a user-safe message for NotAvailable and Failed
}

// Writer stores resources. PutResources is transactional per call and
// idempotent: writing the same record twice reports Unchanged the second time
// and creates no new row.
type Writer interface {
	PutResources(ctx context.Context, recs []Record) ([]Change, error)
	Quarantine(ctx context.Context, item QuarantineItem) error
	PutFetchStates(ctx context.Context, states []FetchState) error
}

// PatientQuery searches patients by demographics. Empty fields match all.
type PatientQuery struct {
	Connection string
	Text       string // matched against names and MRNs, case-insensitive substring
	BirthDate  string // exact YYYY-MM-DD
	Limit      int
}

// Reader reads current resources. "Current" is the latest stored version of
// each (connection, type, id).
type Reader interface {
	Get(ctx context.Context, connection, typ, id string) (Record, error)
	ListByPatient(ctx context.Context, connection, patientID, typ string) ([]Record, error)
	SearchPatients(ctx context.Context, q PatientQuery) ([]Record, error)
	FetchStates(ctx context.Context, connection, patientID string) ([]FetchState, error)
}

// TypeCount is the number of current resources of one type on one connection.
type TypeCount struct {
	Connection string `json:"connection"`
	Type       string `json:"type"`
	Count      int    `json:"count"`
}

// Stats summarises what the store holds.
type Stats struct {
	Resources   []TypeCount          `json:"resources"`
	Versions    int                  `json:"versions"`
	Quarantined int                  `json:"quarantined"`
	LastFetched map[string]time.Time `json:"last_fetched,omitempty"` // newest fetch state per connection (data freshness)
}

// Statter reports store-wide counts.
type Statter interface {
	Stats(ctx context.Context) (Stats, error)
}

// QuarantineReader lists quarantined input, newest first.
type QuarantineReader interface {
	Quarantined(ctx context.Context, connection string, limit int) ([]QuarantineItem, error)
}

// Store is everything a backend provides.
type Store interface {
	Writer
	Reader
	Statter
	QuarantineReader
	Close() error
}

// VersionReader reads any stored version of a resource, current or not
// (the API's vread). GetVersion returns an error wrapping ErrNotFound when
// that version of that resource is not stored.
type VersionReader interface {
	GetVersion(ctx context.Context, connection, typ, id, versionID string) (Record, error)
}
