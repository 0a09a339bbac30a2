package store

import (
	"context"
	"time"
)

// Checkpoint records how far a bulk ingest got in one input file of one job:
// every line before Offset (bytes of the decompressed stream) has been
// stored, quarantined or deliberately skipped. It is written in the same
// transaction as the batch it covers, so a process killed at any moment
// resumes from exactly the last committed batch.
type Checkpoint struct {
	Connection string
	Job        string // the export job (status URL) or import run the file belongs to
	File       string // the file's URL (without query) or path
	Offset     int64  // bytes of the decompressed stream consumed
	Line       int64  // lines consumed (1-based number of the last line covered)
	Done       bool   // the whole file has been ingested
}

// Tombstone says that a source deleted a resource. The stored versions and
// their raw bytes are kept; the resource stops being current (Get reports
// ErrNotFound and Stats no longer counts it) until a later version arrives.
type Tombstone struct {
	Connection string
	Type       string
	ID         string
	DeletedAt  time.Time // the export's transactionTime, or when the deletion was received
	Source     string    // file and line the deletion came from
}

// Batch is a unit of bulk ingest written atomically: its records (with the
// same idempotent upsert semantics as Writer.PutResources), its quarantined
// lines, its deletions and, when set, the checkpoint covering all of them.
type Batch struct {
	Records    []Record
	Quarantine []QuarantineItem
	Deletes    []Tombstone
	Checkpoint *Checkpoint
}

// BatchResult says what a batch did.
type BatchResult struct {
	Changes []Change // one per record, in order
	Deleted int      // tombstones that made a current resource not current
}

// BatchWriter writes bulk ingest batches. WriteBatch applies the whole batch
// in one transaction or not at all; re-applying a batch changes nothing.
type BatchWriter interface {
	WriteBatch(ctx context.Context, b Batch) (BatchResult, error)
}

// CheckpointReader returns the checkpoints of one job, keyed by file.
type CheckpointReader interface {
	Checkpoints(ctx context.Context, connection, job string) (map[string]Checkpoint, error)
}

// ExportState keeps the _since of the next bulk export: per connection,
// export scope ("system", "patient" or "group/<id>") and resource type, the
// transactionTime of the last export that brought that type completely. A
// partial export advances only the types it brought completely, so the next
// one asks for the others again from where they were. The type "" stands
// for exports without _type (whatever types the server exported); it is not
// a fallback for requests that name their types.
type ExportState interface {
	// LastExports returns the scope's stored transactionTimes keyed by
	// resource type ("" for exports without _type); an empty map when none.
	LastExports(ctx context.Context, connection, scope string) (map[string]time.Time, error)
	// SetLastExport stores t for each of types in the scope, in one
	// transaction, leaving the scope's other types as they are. types must
	// not be empty.
	SetLastExport(ctx context.Context, connection, scope string, t time.Time, types []string) error
}

// TombstoneReader tells whether a resource is deleted at its source.
type TombstoneReader interface {
	// Tombstone returns the deletion of a resource that is not current, or
	// an error wrapping ErrNotFound.
	Tombstone(ctx context.Context, connection, typ, id string) (Tombstone, error)
}

// CurrentScanner streams every current resource (raw, normalized and
// metadata), for exports. Records come ordered by connection, type and id;
// fn must not keep the slices after it returns.
type CurrentScanner interface {
	ScanCurrent(ctx context.Context, fn func(Record) error) error
}

// BulkStore is what the bulk ingest pipeline needs from a store.
type BulkStore interface {
	BatchWriter
	CheckpointReader
	ExportState
}
