// Package ingest streams NDJSON (Bulk Data output files, or files already on
// disk) into the store through the same normalization as REST data.
//
// Pipeline: one reader goroutine per file (Options.Files at a time) cuts
// its lines into chunks (at most BatchSize lines or BatchBytes bytes);
// Options.Workers goroutines normalize chunks in parallel; a single writer
// commits each chunk as one store transaction together with the checkpoint
// (job, file, byte offset, line) it reaches. Chunks are committed in the
// order they were read, so a checkpoint always covers every line before it:
// a process killed at any moment resumes from the last commit with nothing
// lost and nothing duplicated (and the store's upsert is idempotent anyway).
//
// Memory is bounded by the number of chunks in flight (about
// 2×Workers+Files), whatever the corpus size. A line longer than MaxLine is
// quarantined (its first bytes kept) without being buffered; a malformed
// line is quarantined with its file and line number; a file whose transfer
// breaks is re-opened at the last line read.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/fhir/bulk"
	"ehrgate/refresh"
	"ehrgate/store"
)

// Store is what ingest needs from a store.
type Store interface {
	store.BatchWriter
	store.CheckpointReader
}

// BulkTuner is an optional store ability: tuning for the duration of a long
// ingest (a *sqlite.Store enlarges its cache and spaces its checkpoints).
type BulkTuner interface {
	BeginBulk(ctx context.Context) (end func(), err error)
}

// RecordPreparer is an optional store ability: computing a record's
// storage form (a *sqlite.Store compresses its bodies) on the normalize
// workers, in parallel, instead of on the single writer.
type RecordPreparer interface {
	PrepareRecord(rec *store.Record)
}

// File is one NDJSON input.
type File struct {
	// Name identifies the file in checkpoints and quarantine sources: a URL
	// without query string, or a path.
	Name string
	// Type is the resourceType every line must have ("" = any). A line of
	// another type is quarantined.
	Type string
	// Count is the number of resources the manifest announced, or -1.
	Count int64
	// Deleted marks a Bulk Data deleted file: each line is a Bundle of
	// DELETE entries, applied as tombstones.
	Deleted bool
	// Size is the decompressed size in bytes, or -1 when unknown (for
	// progress only).
	Size int64
	// Open returns the file's decompressed content from byte offset on. It
	// is called again, with the offset reached, after a read error.
	Open func(ctx context.Context, offset int64) (io.ReadCloser, error)
}

// Options configure an Ingester.
type Options struct {
	Connection  string // required
	Job         string // required: checkpoints are kept per (connection, job, file)
	Workers     int    // normalization goroutines (default GOMAXPROCS)
	Files       int    // files read at once (default 4)
	BatchSize   int    // resources per transaction (default 2,000)
	BatchBytes  int    // bytes of NDJSON per transaction (default 8 MiB)
	MaxLine     int    // longest line accepted (default bulk.DefaultMaxLine)
	MaxAttempts int    // opens per file before giving up on it (default 5)
	// DeletedAt stamps tombstones (the export's transactionTime); zero =
	// the clock.
	DeletedAt time.Time
	Clock     func() time.Time
	Logger    *slog.Logger // identifiers and counts only
	Sleep     func(ctx context.Context, d time.Duration) error
}

// FileError is a file that could not be ingested completely, or whose
// content did not match its manifest entry.
type FileError struct {
	File  string `json:"file"`
	Type  string `json:"type,omitempty"` // the file's resource type, when known
	Error string `json:"error"`
	// Gone is set when the source no longer has the file (its Open
	// returned ErrFileGone): it was not retried.
	Gone bool `json:"gone,omitempty"`
}

// ErrFileGone is wrapped by a File's Open error when the file no longer
// exists at its source (a Bulk Data file answering 410 Gone or 404): the
// ingester does not re-open it, and its FileError says Gone.
var ErrFileGone = errors.New("ingest: the file is gone from its source")

// Summary reports what a run did. Its JSON form is the output of
// `ehrgate bulk import --json`.
type Summary struct {
	Files       int            `json:"files"`
	Skipped     int            `json:"skipped"` // files already complete in an earlier run of the same job
	Lines       int64          `json:"lines"`
	Bytes       int64          `json:"bytes"`
	Resources   map[string]int `json:"resources"` // stored or unchanged, per type
	New         int            `json:"new"`
	Updated     int            `json:"updated"`
	Unchanged   int            `json:"unchanged"`
	Deleted     int            `json:"deleted"`
	Quarantined int            `json:"quarantined"`
	Errors      []FileError    `json:"errors,omitempty"`
	DurationMS  int64          `json:"duration_ms"`
}

// add adds o's counts and errors to s (not the duration).
func (s *Summary) add(o Summary) {
	s.Files += o.Files
	s.Skipped += o.Skipped
	s.Lines += o.Lines
	s.Bytes += o.Bytes
	if s.Resources == nil {
		s.Resources = map[string]int{}
	}
	for t, n := range o.Resources {
		s.Resources[t] += n
	}
	s.New += o.New
	s.Updated += o.Updated
	s.Unchanged += o.Unchanged
	s.Deleted += o.Deleted
	s.Quarantined += o.Quarantined
	s.Errors = append(s.Errors, o.Errors...)
}

// Progress is a live snapshot of a run.
type Progress struct {
	FilesDone, FilesTotal int
	Resources             int64 // lines committed
	Bytes                 int64 // bytes read
	BytesTotal            int64 // sum of the files' sizes, -1 when one is unknown
}

// Ingester runs ingests into one store. Run may be called repeatedly, not
// concurrently.
type Ingester struct {
	st   Store
	opts Options
	log  *slog.Logger

	filesDone, filesTotal atomic.Int64
	resources, bytes      atomic.Int64
	bytesTotal            atomic.Int64
}

// New returns an Ingester.
func New(st Store, opts Options) (*Ingester, error) {
	if opts.Connection == "" || opts.Job == "" {
		return nil, errors.New("ingest: connection and job are required")
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Files <= 0 {
		opts.Files = 4
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 2000
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 8 << 20
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = bulk.DefaultMaxLine
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Ingester{st: st, opts: opts, log: log.With("connection", opts.Connection)}, nil
}

// Progress returns a snapshot; safe to call while Run works.
func (in *Ingester) Progress() Progress {
	return Progress{FilesDone: int(in.filesDone.Load()), FilesTotal: int(in.filesTotal.Load()),
		Resources: in.resources.Load(), Bytes: in.bytes.Load(), BytesTotal: in.bytesTotal.Load()}
}

type line struct {
	num     int64
	start   int // into chunk.buf
	end     int
	tooLong bool
	size    int64
}

type chunk struct {
	f         *File
	buf       []byte
	lines     []line
	endOffset int64
	endLine   int64
	done      bool
	errMsg    string // set on the last chunk when the file failed
	gone      bool   // the file failed with ErrFileGone

	batch store.Batch
	types []string // per record
	ready chan struct{}
}

// chunkBuffers are a committed chunk's line buffer and line index, reused
// by the next chunk: allocating (and growing) a fresh megabyte-sized buffer
// per chunk cost about a tenth of an ingest's CPU in copying and zeroing.
type chunkBuffers struct {
	buf   []byte
	lines []line
}

var chunkMem sync.Pool

// recycle hands c's buffers to the next chunk once nothing refers to them
// any more (its batch is committed or dropped).
func (c *chunk) recycle() {
	if c.buf == nil {
		return
	}
	chunkMem.Put(&chunkBuffers{buf: c.buf[:0], lines: c.lines[:0]})
	c.buf, c.lines, c.batch, c.types = nil, nil, store.Batch{}, nil
}

// Run ingests files and returns what it did. It returns an error when the
// store fails or ctx ends; a file that cannot be read (after retries) or
// that does not match its manifest entry is listed in Summary.Errors and the
// others go on.
func (in *Ingester) Run(ctx context.Context, files []File) (Summary, error) {
	start := in.opts.Clock()
	sum := Summary{Resources: map[string]int{}, Files: len(files)}
	in.filesTotal.Store(int64(len(files)))
	in.filesDone.Store(0)
	in.resources.Store(0)
	in.bytes.Store(0)
	var size int64
	for _, f := range files {
		if f.Size < 0 || size < 0 {
			size = -1
			continue
		}
		size += f.Size
	}
	in.bytesTotal.Store(size)
	cps, err := in.st.Checkpoints(ctx, in.opts.Connection, in.opts.Job)
	if err != nil {
		return sum, fmt.Errorf("ingest: reading checkpoints: %w", err)
	}
	if b, ok := in.st.(BulkTuner); ok {
		end, err := b.BeginBulk(ctx)
		if err != nil {
			return sum, fmt.Errorf("ingest: %w", err)
		}
		defer end()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	order := make(chan *chunk, in.opts.Workers+in.opts.Files)
	work := make(chan *chunk)

	var workers sync.WaitGroup
	for w := 0; w < in.opts.Workers; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for c := range work {
				in.normalize(c)
				close(c.ready)
			}
		}()
	}

	// Readers.
	var readers sync.WaitGroup
	sem := make(chan struct{}, in.opts.Files)
	// A chunk enters the writer's queue before a worker gets it, so the
	// writer commits in read order while workers run ahead.
	push := func(c *chunk) bool {
		select {
		case order <- c:
		case <-ctx.Done():
			return false
		}
		select {
		case work <- c:
			return true
		case <-ctx.Done():
			close(c.ready)
			return false
		}
	}
	go func() {
		defer func() {
			readers.Wait()
			close(order)
		}()
		for i := range files {
			f := &files[i]
			cp, ok := cps[f.Name]
			if ok && cp.Done {
				in.filesDone.Add(1)
				sum.Skipped++
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			readers.Add(1)
			go func() {
				defer func() { <-sem; readers.Done() }()
				in.readFile(ctx, f, cp, push)
			}()
		}
	}()

	// Single writer.
	var werr error
	for c := range order {
		<-c.ready
		if werr != nil || ctx.Err() != nil {
			continue
		}
		if err := in.commit(ctx, c, &sum); err != nil {
			werr = err
			cancel()
		}
		c.recycle()
	}
	close(work)
	workers.Wait()
	sum.DurationMS = in.opts.Clock().Sub(start).Milliseconds()
	sum.Bytes = in.bytes.Load()
	if werr != nil {
		return sum, werr
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("ingest: interrupted: %w", err)
	}
	in.log.Info("ingest finished", "files", sum.Files, "skipped", sum.Skipped, "new", sum.New, "updated", sum.Updated,
		"unchanged", sum.Unchanged, "deleted", sum.Deleted, "quarantined", sum.Quarantined, "errors", len(sum.Errors))
	return sum, nil
}

// readFile cuts one file into chunks, re-opening it after read errors.
func (in *Ingester) readFile(ctx context.Context, f *File, cp store.Checkpoint, push func(*chunk) bool) {
	offset, lineNo := cp.Offset, cp.Line
	var seen int64 = lineNo // approximates resources before a resumed offset
	var c *chunk
	newChunk := func() *chunk {
		c := &chunk{f: f, ready: make(chan struct{})}
		if m, ok := chunkMem.Get().(*chunkBuffers); ok {
			c.buf, c.lines = m.buf[:0], m.lines[:0]
		} else {
			c.buf = make([]byte, 0, min(in.opts.BatchBytes, 1<<20))
			c.lines = make([]line, 0, min(in.opts.BatchSize, 4096))
		}
		return c
	}
	c = newChunk()
	var failure error
	for attempt := 1; ; attempt++ {
		rc, err := f.Open(ctx, offset)
		if err != nil {
			failure = err
		} else {
			r := bulk.NewReader(rc, in.opts.MaxLine, offset, lineNo)
			for {
				l, err := r.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						failure = err
					} else {
						failure = nil
					}
					break
				}
				seen++
				in.bytes.Add(l.End - l.Offset)
				st := len(c.buf)
				c.buf = append(c.buf, l.Bytes...)
				c.lines = append(c.lines, line{num: l.Num, start: st, end: len(c.buf), tooLong: l.TooLong, size: l.Size})
				offset, lineNo = l.End, l.Num
				c.endOffset, c.endLine = offset, lineNo
				if len(c.lines) >= in.opts.BatchSize || len(c.buf) >= in.opts.BatchBytes {
					if !push(c) {
						rc.Close()
						return
					}
					c = newChunk()
				}
			}
			rc.Close()
		}
		if failure == nil || ctx.Err() != nil || errors.Is(failure, ErrFileGone) {
			break // done, interrupted, or gone for good: re-opening cannot help
		}
		if attempt >= in.opts.MaxAttempts {
			break
		}
		in.log.WarnContext(ctx, "file read failed; re-opening", "type", f.Type, "attempt", attempt, "error", failure)
		if err := in.opts.Sleep(ctx, time.Duration(attempt)*200*time.Millisecond); err != nil {
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	c.endOffset, c.endLine = offset, lineNo
	c.done = failure == nil
	switch {
	case errors.Is(failure, ErrFileGone):
		c.errMsg, c.gone = fmt.Sprintf("the server no longer has the file: %v", failure), true
		in.log.WarnContext(ctx, "file gone from the server; not retried", "type", f.Type)
	case failure != nil:
		c.errMsg = fmt.Sprintf("reading failed after %d attempts: %v", in.opts.MaxAttempts, failure)
	case f.Count >= 0 && seen != f.Count:
		c.errMsg = fmt.Sprintf("the manifest announced %d resources, the file held %d lines", f.Count, seen)
	}
	push(c)
}

// normalize turns a chunk's lines into records, quarantine items and
// tombstones. It runs on the worker pool.
func (in *Ingester) normalize(c *chunk) {
	now := in.opts.Clock()
	conn := in.opts.Connection
	if !c.f.Deleted {
		c.batch.Records = make([]store.Record, 0, len(c.lines))
		c.types = make([]string, 0, len(c.lines))
	}
	for _, l := range c.lines {
		raw := c.buf[l.start:l.end]
		src := c.f.Name + "#L" + strconv.FormatInt(l.num, 10)
		quarantine := func(typ, id, reason string) {
			c.batch.Quarantine = append(c.batch.Quarantine, store.QuarantineItem{Connection: conn, Type: typ,
				ResourceID: id, Source: src, Reason: reason, Raw: raw, ReceivedAt: now})
		}
		if l.tooLong {
			quarantine(c.f.Type, "", fmt.Sprintf("line of %d bytes is longer than the %d-byte limit (first bytes kept)", l.size, in.opts.MaxLine))
			continue
		}
		if c.f.Deleted {
			refs, err := bulk.DecodeDeleted(raw)
			if err != nil {
				quarantine("Bundle", "", err.Error())
				continue
			}
			at := in.opts.DeletedAt
			if at.IsZero() {
				at = now
			}
			for _, r := range refs {
				c.batch.Deletes = append(c.batch.Deletes, store.Tombstone{Connection: conn, Type: r.Type, ID: r.ID, DeletedAt: at, Source: src})
			}
			continue
		}
		rec, err := record(conn, raw, now, src)
		if err != nil {
			quarantine(rec.Type, rec.ID, err.Error())
			continue
		}
		if c.f.Type != "" && rec.Type != c.f.Type {
			quarantine(rec.Type, rec.ID, fmt.Sprintf("resourceType %s in a file of %s", rec.Type, c.f.Type))
			continue
		}
		if p, ok := in.st.(RecordPreparer); ok {
			p.PrepareRecord(&rec)
			// The store writes the prepared form; dropping the plain
			// normalized JSON now keeps a queued chunk ~30% smaller.
			rec.Normalized = nil
		}
		c.batch.Records = append(c.batch.Records, rec)
		c.types = append(c.types, rec.Type)
	}
	if c.endLine > 0 {
		c.batch.Checkpoint = &store.Checkpoint{Connection: conn, Job: in.opts.Job, File: c.f.Name,
			Offset: c.endOffset, Line: c.endLine, Done: c.done}
	}
}

// record normalizes one raw resource exactly as a REST sync does.
func record(conn string, raw []byte, now time.Time, source string) (store.Record, error) {
	return refresh.NewRecord(conn, raw, now, source)
}

// commit writes one chunk and its checkpoint, and tallies it.
func (in *Ingester) commit(ctx context.Context, c *chunk, sum *Summary) error {
	if len(c.batch.Records) == 0 && len(c.batch.Quarantine) == 0 && len(c.batch.Deletes) == 0 && c.batch.Checkpoint == nil {
		if c.done || c.errMsg != "" {
			in.finishFile(c, sum)
		}
		return nil
	}
	res, err := in.st.WriteBatch(ctx, c.batch)
	if err != nil {
		return fmt.Errorf("ingest: storing %s lines up to %d: %w", c.f.Type, c.endLine, err)
	}
	for i, ch := range res.Changes {
		sum.Resources[c.types[i]]++
		switch ch {
		case store.New:
			sum.New++
		case store.Updated:
			sum.Updated++
		default:
			sum.Unchanged++
		}
	}
	sum.Deleted += res.Deleted
	sum.Quarantined += len(c.batch.Quarantine)
	sum.Lines += int64(len(c.lines))
	in.resources.Add(int64(len(c.lines)))
	if len(c.batch.Quarantine) > 0 {
		in.log.WarnContext(ctx, "lines quarantined", "file_type", c.f.Type, "count", len(c.batch.Quarantine))
	}
	if c.done || c.errMsg != "" {
		in.finishFile(c, sum)
	}
	return nil
}

func (in *Ingester) finishFile(c *chunk, sum *Summary) {
	in.filesDone.Add(1)
	if c.errMsg != "" {
		sum.Errors = append(sum.Errors, FileError{File: c.f.Name, Type: c.f.Type, Error: c.errMsg, Gone: c.gone})
	}
}
