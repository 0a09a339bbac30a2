package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"ehrgate/fhir/bulk"
	"ehrgate/store"
)

// ExportStore is what an export needs from a store.
type ExportStore interface {
	Store
	store.ExportState
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
}

// ExportSummary reports an export.
type ExportSummary struct {
	Summary
	Scope           string    `json:"scope"`
	Since           time.Time `json:"since,omitzero"`
	TransactionTime time.Time `json:"transaction_time"`
	OutputFiles     int       `json:"output_files"`
	ServerErrors    int64     `json:"server_errors"` // OperationOutcome lines in the manifest's error files
}

// Export runs one Bulk Data export end to end: kick-off, wait, ingest of
// every output and deleted file, deletion of the job on the server and,
// when every file was ingested completely, the transactionTime stored as
// the scope's next _since. When ctx ends first the job is cancelled on the
// server (DELETE on the status URL).
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
	job, err := c.Kickoff(ctx, req)
	if err != nil {
		return sum, fmt.Errorf("ingest: export: %w", err)
	}
	cancelJob := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = c.Delete(dctx, job)
	}
	m, err := c.Wait(ctx, job)
	if err != nil {
		if ctx.Err() != nil {
			cancelJob()
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
		if ctx.Err() != nil {
			cancelJob()
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
	return sum, nil
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
