package store

import "context"

// ScanQuery selects a page of current records for a PagedScanner. Records come
// ordered by (Connection, Type, ID); After is the exclusive keyset cursor
// (the last key of the previous page; zero for the first page; its
// VersionID is ignored).
type ScanQuery struct {
	Connection string // "" for every connection
	Type       string // "" for every type
	After      Key
	Limit      int // at most this many; <= 0 means a backend default (1000)
	// RawOnly leaves the records' Normalized nil: a reader that serves raw
	// bytes saves reading and unpacking the normalized form.
	RawOnly bool
}

// PagedScanner iterates every current record (the latest stored version of
// each resource), page by page, for whole-store passes such as
// renormalization and data-quality reports. Unlike CurrentScanner it holds no
// read open between pages, so a caller may write between them (rewriting
// what it read), and it filters by connection and type. Each page is a
// consistent read; pages taken while writers run may reflect their writes.
// An empty page means the end.
type PagedScanner interface {
	ScanCurrentPage(ctx context.Context, q ScanQuery) ([]Record, error)
}

// NormalizedUpdate replaces the normalized JSON of one stored version.
type NormalizedUpdate struct {
	Key        Key // must name a stored version exactly (VersionID as Scanner returned it)
	Normalized []byte
}

// NormalizedRewriter replaces the normalized JSON of stored versions in
// place, without touching the raw bytes, hashes, versions or fetch times:
// rebuilding normalized rows after a mapping change is not a new version of
// anything. The batch is applied in one transaction; a key that names no
// stored version fails the whole batch with an error wrapping ErrNotFound.
type NormalizedRewriter interface {
	RewriteNormalized(ctx context.Context, updates []NormalizedUpdate) error
}

// RawPatientLister is Reader.ListByPatient without the normalized form:
// for readers that serve the raw bytes (the API), which then read and
// unpack half as much.
type RawPatientLister interface {
	ListRawByPatient(ctx context.Context, connection, patientID, typ string) ([]Record, error)
}
