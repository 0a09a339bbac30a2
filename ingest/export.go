package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/store"
)

// ExportStore is what an export needs from a store.
type ExportStore interface {
	Store
	store.ExportState
}

// PendingExports is the optional store role that makes a killed export
// resume: the job kicked off for a connection and scope is kept until the
// export completes or is cancelled, so the next Export of the same request
// polls it instead of starting a new one on the server. Export uses it when
// the store implements it (store/sqlite does).
type PendingExports interface {
	// PendingExport returns the job kicked off and not finished: the
	// request's fingerprint, the status URL ("" when there is none) and
	// when it was kicked off.
	PendingExport(ctx context.Context, connection, scope string) (fingerprint, statusURL string, kickedOff time.Time, err error)
	// SetPendingExport records the job, replacing any other of the scope.
	SetPendingExport(ctx context.Context, connection, scope, fingerprint, statusURL string, kickedOff time.Time) error
	// ClearPendingExport forgets the scope's job (none is not an error).
	ClearPendingExport(ctx context.Context, connection, scope string) error
}

// ExportOptions configure Export.
type ExportOptions struct {
	Options // Job is set by Export (the status URL)
	// Incremental uses the transactionTime of the last complete export of
	// the same connection and scope as _since when Request.Since is zero.
	Incremental bool
	// Started is called with the ingester and manifest once files are
	// known, for progress displays.
	Started func(in *Ingester, m *bulk.Manifest)
	// Resuming is called with the status URL (without its query) when
	// Export polls the job an interrupted run of the same request kicked
	// off, instead of starting a new one.
	Resuming func(statusURL string)
}

// ExportSummary reports an export.
type ExportSummary struct {
	Summary
	Scope           string    `json:"scope"`
	Since           time.Time `json:"since,omitzero"`
	TransactionTime time.Time `json:"transaction_time"`
	OutputFiles     int       `json:"output_files"`
	ServerErrors    int64     `json:"server_errors"`     // OperationOutcome lines in the manifest's error files
	Resumed         bool      `json:"resumed,omitempty"` // the job was kicked off by an earlier, interrupted run
}

// Export runs one Bulk Data export end to end: kick-off, wait, ingest of
// every output and deleted file, deletion of the job on the server and,
// when every file was ingested completely, the transactionTime stored as
// the scope's next _since. When ctx ends first the job is cancelled on the
// server (DELETE on the status URL).
//
// With a store that implements PendingExports, the job is recorded right
// after kick-off and forgotten when the export completes or is cancelled. A
// run killed in between leaves it recorded: the next Export of the same
// connection, scope and request polls that job instead of kicking off
// again (the files already ingested are skipped by their checkpoints). A job
// the server no longer knows (404, 410) or reports failed is forgotten and a
// new one kicked off; a different request abandons it (DELETE, best effort).
func Export(ctx context.Context, c *bulk.Client, st ExportStore, req bulk.Request, opts ExportOptions) (ExportSummary, error) {
	sum := ExportSummary{Scope: req.Scope()}
	if opts.Incremental && req.Since.IsZero() {
		t, err := st.LastExport(ctx, opts.Connection, req.Scope())
		if err != nil {
			return sum, fmt.Errorf("ingest: export: %w", err)
		}
		req.Since = t
	}
	sum.Since = req.Since
	jobs := newJobKeeper(st, c, opts, req)
	job, err := jobs.start(ctx, &sum)
	if err != nil {
		return sum, fmt.Errorf("ingest: export: %w", err)
	}
	m, err := c.Wait(ctx, job)
	if err != nil && sum.Resumed && ctx.Err() == nil && jobFailed(err) {
		jobs.log.Warn("the resumed bulk export job is gone or failed; kicking off a new one",
			"connection", opts.Connection, "scope", sum.Scope, "job", stripQuery(job.StatusURL), "error", err)
		jobs.forget(ctx)
		sum.Resumed = false
		if job, err = jobs.kickoff(ctx); err != nil {
			return sum, fmt.Errorf("ingest: export: %w", err)
		}
		m, err = c.Wait(ctx, job)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			jobs.cancel(ctx, job)
		case jobFailed(err):
			jobs.forget(ctx) // the server gave up on it: the next run starts anew
		}
		return sum, fmt.Errorf("ingest: export: %w", err)
	}
	sum.TransactionTime = m.TransactionTime
	sum.OutputFiles = len(m.Output)

	files := make([]File, 0, len(m.Output)+len(m.Deleted))
	add := func(f bulk.OutputFile, deleted bool) {
		count := int64(-1)
		if f.Count != nil {
			count = *f.Count
		}
		files = append(files, File{Name: stripQuery(f.URL), Type: f.Type, Count: count, Deleted: deleted, Size: -1,
			Open: func(ctx context.Context, offset int64) (io.ReadCloser, error) { return c.Open(ctx, m, f, offset) }})
	}
	for _, f := range m.Output {
		add(f, false)
	}
	for _, f := range m.Deleted {
		add(f, true)
	}
	opts.Job = stripQuery(job.StatusURL)
	if opts.DeletedAt.IsZero() {
		opts.DeletedAt = m.TransactionTime
	}
	in, err := New(st, opts.Options)
	if err != nil {
		return sum, err
	}
	if opts.Started != nil {
		opts.Started(in, m)
	}
	s, err := in.Run(ctx, files)
	sum.Summary = s
	if err != nil {
		// Without ctx ending (a store failure, say) the job stays recorded:
		// the next run resumes it and skips what was ingested.
		if ctx.Err() != nil {
			jobs.cancel(ctx, job)
		}
		return sum, err
	}
	for _, f := range m.Error {
		n, err := countLines(ctx, c, m, f)
		if err != nil {
			sum.Errors = append(sum.Errors, FileError{File: stripQuery(f.URL), Error: "reading error file: " + err.Error()})
		}
		sum.ServerErrors += n
	}
	if err := c.Delete(ctx, job); err != nil {
		sum.Errors = append(sum.Errors, FileError{File: opts.Job, Error: "deleting the job: " + err.Error()})
	}
	if len(sum.Errors) == 0 {
		if err := st.SetLastExport(ctx, opts.Connection, req.Scope(), m.TransactionTime); err != nil {
			return sum, fmt.Errorf("ingest: export: %w", err)
		}
	}
	// Done with this job (even with incomplete files: it was deleted). Killed
	// between SetLastExport and here, the next incremental run has another
	// _since, so another fingerprint, and does not reuse the job.
	if err := jobs.clear(ctx); err != nil {
		return sum, fmt.Errorf("ingest: export: %w", err)
	}
	return sum, nil
}

// jobKeeper starts or resumes the export's server job and keeps the
// store's record of it (when the store is a PendingExports).
type jobKeeper struct {
	pend        PendingExports // nil: nothing recorded
	c           *bulk.Client
	req         bulk.Request
	conn, scope string
	fingerprint string
	resuming    func(string)
	log         *slog.Logger
}

func newJobKeeper(st ExportStore, c *bulk.Client, opts ExportOptions, req bulk.Request) *jobKeeper {
	k := &jobKeeper{c: c, req: req, conn: opts.Connection, scope: req.Scope(), fingerprint: requestFingerprint(req),
		resuming: opts.Resuming, log: opts.Logger}
	k.pend, _ = st.(PendingExports)
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	return k
}

// start returns the recorded job of the same request, or kicks off a new
// one (abandoning a recorded job of another request).
func (k *jobKeeper) start(ctx context.Context, sum *ExportSummary) (*bulk.Job, error) {
	if k.pend == nil {
		return k.kickoff(ctx)
	}
	fp, statusURL, kickedOff, err := k.pend.PendingExport(ctx, k.conn, k.scope)
	if err != nil {
		return nil, err
	}
	switch {
	case statusURL == "":
	case fp == k.fingerprint:
		sum.Resumed = true
		k.log.Info("resuming bulk export job", "connection", k.conn, "scope", k.scope,
			"job", stripQuery(statusURL), "kicked_off", kickedOff)
		if k.resuming != nil {
			k.resuming(stripQuery(statusURL))
		}
		return &bulk.Job{StatusURL: statusURL}, nil
	default:
		k.log.Warn("abandoning the pending bulk export job of a different request; kicking off a new one",
			"connection", k.conn, "scope", k.scope, "job", stripQuery(statusURL), "kicked_off", kickedOff)
		if !k.deleteJob(ctx, &bulk.Job{StatusURL: statusURL}) {
			k.log.Warn("could not delete the abandoned bulk export job; the server will expire it",
				"connection", k.conn, "job", stripQuery(statusURL))
		}
		if err := k.clear(ctx); err != nil {
			return nil, err
		}
	}
	return k.kickoff(ctx)
}

// kickoff starts a new job and records it before anything else happens.
func (k *jobKeeper) kickoff(ctx context.Context) (*bulk.Job, error) {
	job, err := k.c.Kickoff(ctx, k.req)
	if err != nil {
		return nil, err
	}
	if k.pend != nil {
		if err := k.pend.SetPendingExport(ctx, k.conn, k.scope, k.fingerprint, job.StatusURL, time.Now().UTC()); err != nil {
			// Not recorded, the job could never be resumed nor cleaned up
			// by a later run: cancel it now.
			k.deleteJob(ctx, job)
			return nil, err
		}
	}
	return job, nil
}

// deleteJob deletes a job on the server, best effort (also when ctx has
// ended), and reports whether the server confirmed.
func (k *jobKeeper) deleteJob(ctx context.Context, job *bulk.Job) bool {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return k.c.Delete(dctx, job) == nil
}

// cancel deletes the job on the server (ctx ended) and forgets it once the
// server confirmed; a job that could not be deleted stays recorded, so
// that the next run resumes it rather than leave it running unclaimed.
func (k *jobKeeper) cancel(ctx context.Context, job *bulk.Job) {
	if k.deleteJob(ctx, job) {
		k.forget(ctx)
	}
}

// forget clears the record, logging a failure (the next run then finds a
// job the server does not know, and kicks off anew).
func (k *jobKeeper) forget(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := k.clear(dctx); err != nil {
		k.log.Warn("could not forget the bulk export job", "connection", k.conn, "scope", k.scope, "error", err)
	}
}

func (k *jobKeeper) clear(ctx context.Context) error {
	if k.pend == nil {
		return nil
	}
	return k.pend.ClearPendingExport(ctx, k.conn, k.scope)
}

// jobFailed reports whether a status poll error means the job is of no
// further use: 404 or 410 (deleted or expired), another client error, or
// an error OperationOutcome (the server reports the export failed). Not an
// authorization problem, nor a bare 5xx or network failure (an outage: the
// job may still be there on the next run).
func jobFailed(err error) bool {
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		return false
	}
	switch s := fe.StatusCode; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden || s == http.StatusTooManyRequests:
		return false
	case s >= 400 && s < 500:
		return true
	}
	return fe.Outcome != nil && fe.StatusCode >= 500
}

// requestFingerprint identifies an export request's parameters (level,
// group, _type, _since, _typeFilter, _outputFormat; the order of types and
// filters does not matter): a pending job is resumed only by a request
// with the same fingerprint.
func requestFingerprint(req bulk.Request) string {
	since := ""
	if !req.Since.IsZero() {
		since = req.Since.UTC().Format(time.RFC3339Nano)
	}
	canon := strings.Join([]string{"v1", req.Scope(),
		strings.Join(slices.Sorted(slices.Values(req.Types)), ","), since,
		strings.Join(slices.Sorted(slices.Values(req.TypeFilters)), "\x00"), req.OutputFormat}, "\n")
	h := sha256.Sum256([]byte(canon))
	return hex.EncodeToString(h[:16])
}

func countLines(ctx context.Context, c *bulk.Client, m *bulk.Manifest, f bulk.OutputFile) (int64, error) {
	rc, err := c.Open(ctx, m, f, 0)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	r := bulk.NewReader(rc, 0, 0, 0)
	var n int64
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// stripQuery drops the query string and user info (which may carry
// signatures or credentials) from a URL kept as provenance.
func stripQuery(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.RawQuery, p.User, p.Fragment = "", nil, ""
	return p.String()
}
