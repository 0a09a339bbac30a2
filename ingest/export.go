package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
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

// Grants is the optional view Export has of the credentials it exports
// with (*smart.TokenSource is one).
type Grants interface {
	// EnsureTypes makes sure the access token was granted reading the
	// resource types (a token granted for fewer, such as one obtained
	// before the connection's types were widened, is renewed) and returns
	// the types the server still does not grant.
	EnsureTypes(ctx context.Context, types []string) (notGranted []string, err error)
}

// DefaultMaxReexports is how many new exports Export starts, per part of
// an export, for files the server no longer has, unless
// ExportOptions.MaxReexports says otherwise.
const DefaultMaxReexports = 1

// ExportOptions configure Export.
type ExportOptions struct {
	Options // Job is set by Export (the status URL)
	// Incremental sends, for each requested type, the transactionTime of
	// the last export of the same connection and scope that brought that
	// type completely as _since, when Request.Since is zero. Types with
	// different times are exported in separate jobs (one per _since, so
	// that each gets its deletions); a type never brought completely is
	// asked from the beginning.
	Incremental bool
	// MaxReexports bounds the new exports started, per part of the export,
	// for files the server no longer has (410 Gone or 404 on a download, as
	// when its output expired): each asks again only for those files'
	// types, from the same _since. 0 means DefaultMaxReexports; negative
	// means none.
	MaxReexports int
	// Grants, when set, is asked before kick-off to make sure the access
	// token covers the requested types, and which it does not.
	Grants Grants
	// Started is called with the ingester and manifest of each export job
	// once its files are known, for progress displays.
	Started func(in *Ingester, m *bulk.Manifest)
	// Resuming is called with the status URL (without its query) when
	// Export polls the job an interrupted run of the same request kicked
	// off, instead of starting a new one.
	Resuming func(statusURL string)
}

// TypeIssue says why a resource type of an export is incomplete: its _since
// did not advance, and the next incremental export asks for it again.
type TypeIssue struct {
	// Type is the resource type; "" is the whole export (an export without
	// _type, or a failure that could not be tied to a type).
	Type   string   `json:"type"`
	Reason string   `json:"reason"`          // user-safe: no URLs with queries, no server text
	Files  []string `json:"files,omitempty"` // manifest files concerned, without query
}

// ExportSummary reports an export.
type ExportSummary struct {
	Summary
	Scope string `json:"scope"`
	// Since is the oldest _since sent; zero when some type was asked from
	// the beginning.
	Since           time.Time `json:"since,omitzero"`
	TransactionTime time.Time `json:"transaction_time"` // of the last export job
	OutputFiles     int       `json:"output_files"`
	ServerErrors    int64     `json:"server_errors"`     // OperationOutcome lines in the manifests' error files
	Resumed         bool      `json:"resumed,omitempty"` // a job was kicked off by an earlier, interrupted run
	Jobs            int       `json:"jobs"`              // export jobs run: one per distinct _since, plus re-exports
	Reexports       int       `json:"reexports,omitempty"`
	// Complete is set when every requested type was brought completely.
	Complete bool `json:"complete"`
	// Advanced lists the types whose _since moved forward ("" = an export
	// without _type).
	Advanced []string `json:"advanced,omitempty"`
	// Incomplete lists what was not brought completely, by type.
	Incomplete []TypeIssue `json:"incomplete,omitempty"`
	// NotGranted lists requested types the server did not grant the access
	// token (only known when ExportOptions.Grants is set).
	NotGranted []string `json:"not_granted,omitempty"`
}

// IncompleteTypes returns the types of Incomplete, sorted, without
// duplicates ("" = the whole export).
func (s ExportSummary) IncompleteTypes() []string {
	var out []string
	for _, is := range s.Incomplete {
		out = append(out, is.Type)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Export runs a Bulk Data export end to end: for each distinct _since among
// the requested types (see ExportOptions.Incremental), kick-off, wait,
// ingest of every output and deleted file, reading of the error files,
// deletion of the job on the server, and the job's transactionTime stored
// as the next _since of each type it brought completely.
//
// A type is not complete, and keeps its _since, when a manifest error
// names it (or names nothing that ties to a type: then every type), when
// one of its files could not be ingested completely, when it is missing
// from the output of an export from the beginning, or when
// ExportOptions.Grants says the server does not grant it (it is then not
// asked for: a server refuses it or leaves it out). A file the server no longer has (410 Gone) is
// not retried: a new export is started for its type, within
// ExportOptions.MaxReexports. The summary lists what is incomplete and why;
// Export returns an error only when the export could not run.
//
// When ctx ends first the job is cancelled on the server (DELETE on the
// status URL). With a store that implements PendingExports, the job is
// recorded right after kick-off and forgotten when it completes or is
// cancelled. A run killed in between leaves it recorded: the next Export of
// the same connection, scope and request polls that job instead of kicking
// off again (the files already ingested are skipped by their checkpoints).
// A job the server no longer knows (404, 410) or reports failed is
// forgotten and a new one kicked off, also a job just kicked off (once:
// when the second fails too, Export fails); a different request abandons
// it (DELETE, best effort).
func Export(ctx context.Context, c *bulk.Client, st ExportStore, req bulk.Request, opts ExportOptions) (ExportSummary, error) {
	return newExporter(c, st, "", opts).run(ctx, req)
}

// ExportToDir runs a Bulk Data export like Export but stores nothing:
// each file is written to dir as received (decompressed), output files as
// TYPE.N.ndjson, deleted files as deleted.N.ndjson and error files as
// error.N.ndjson (N counts from 1 per name, in manifest order), with the
// manifest as manifest.json (a re-export's as manifest.reexport-N.json). A
// file still downloading is NAME.partial. The export is not incremental
// (req.Since is sent as given) and nothing is recorded; completeness is
// judged as by Export.
func ExportToDir(ctx context.Context, c *bulk.Client, dir string, req bulk.Request, opts ExportOptions) (ExportSummary, error) {
	if dir == "" {
		return ExportSummary{Scope: req.Scope()}, errors.New("ingest: export to a directory: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ExportSummary{Scope: req.Scope()}, fmt.Errorf("ingest: export to a directory: %w", err)
	}
	opts.Incremental = false
	x := newExporter(c, nil, dir, opts)
	x.dirState = &dirState{dir: dir}
	return x.run(ctx, req)
}

// exporter runs one Export (or ExportToDir).
type exporter struct {
	c     *bulk.Client
	st    ExportStore // nil in directory mode
	dir   string      // directory mode when set
	opts  ExportOptions
	log   *slog.Logger
	clock func() time.Time
	sum   ExportSummary

	written  map[string][]string // directory mode: files written per type
	seq      map[string]int      // directory mode: last N per file name prefix
	dirState *dirState           // directory mode: the job and the files it got, kept in the directory
	jobSeq   int
}

func newExporter(c *bulk.Client, st ExportStore, dir string, opts ExportOptions) *exporter {
	x := &exporter{c: c, st: st, dir: dir, opts: opts, log: opts.Logger, clock: opts.Clock,
		written: map[string][]string{}, seq: map[string]int{}}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	if x.clock == nil {
		x.clock = time.Now
	}
	switch {
	case x.opts.MaxReexports == 0:
		x.opts.MaxReexports = DefaultMaxReexports
	case x.opts.MaxReexports < 0:
		x.opts.MaxReexports = 0
	}
	if x.opts.MaxAttempts <= 0 {
		x.opts.MaxAttempts = 5
	}
	if x.opts.Sleep == nil {
		x.opts.Sleep = sleepCtx
	}
	return x
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (x *exporter) run(ctx context.Context, req bulk.Request) (ExportSummary, error) {
	start := x.clock()
	req.Types = dedupe(req.Types)
	x.sum = ExportSummary{Scope: req.Scope(), Summary: Summary{Resources: map[string]int{}}}
	defer func() { x.sum.DurationMS = x.clock().Sub(start).Milliseconds() }()
	if x.opts.Grants != nil && len(req.Types) > 0 {
		ng, err := x.opts.Grants.EnsureTypes(ctx, req.Types)
		if err != nil {
			return x.sum, fmt.Errorf("ingest: export: checking the access token's scopes: %w", err)
		}
		x.sum.NotGranted = ng
		if len(ng) > 0 {
			// Not asked for: a server refuses them or leaves them out (or
			// cuts them down, for a restricted grant). They stay incomplete.
			x.log.Warn("the server did not grant ehrgate these requested types; they are not exported and stay incomplete",
				"connection", x.opts.Connection, "scope", x.sum.Scope, "types", strings.Join(ng, ","))
			req.Types = slices.DeleteFunc(slices.Clone(req.Types), func(t string) bool { return slices.Contains(ng, t) })
			for _, t := range ng {
				x.sum.Incomplete = append(x.sum.Incomplete, TypeIssue{Type: t, Reason: reasonNotGranted})
			}
		}
	}
	var parts []bulk.Request
	if len(req.Types) > 0 || len(x.sum.NotGranted) == 0 { // else nothing granted is left to ask for
		var err error
		if parts, err = x.plan(ctx, req); err != nil {
			return x.sum, fmt.Errorf("ingest: export: %w", err)
		}
	}
	for i, p := range parts {
		if i == 0 || p.Since.Before(x.sum.Since) {
			x.sum.Since = p.Since
		}
	}
	for _, p := range parts {
		if err := x.runPart(ctx, p); err != nil {
			return x.sum, err
		}
	}
	x.sum.Complete = len(x.sum.Incomplete) == 0
	if x.sum.Complete {
		x.log.Info("bulk export complete", "connection", x.opts.Connection, "scope", x.sum.Scope, "jobs", x.sum.Jobs,
			"reexports", x.sum.Reexports, "new", x.sum.New, "updated", x.sum.Updated, "unchanged", x.sum.Unchanged)
		return x.sum, nil
	}
	for _, is := range x.sum.Incomplete {
		x.log.Warn("bulk export incomplete for a type; its _since stays and the next run asks for it again",
			"connection", x.opts.Connection, "scope", x.sum.Scope, "type", typeLabel(is.Type), "reason", is.Reason,
			"files", strings.Join(is.Files, " "))
	}
	x.log.Warn("bulk export incomplete", "connection", x.opts.Connection, "scope", x.sum.Scope,
		"incomplete_types", strings.Join(labels(x.sum.IncompleteTypes()), ","), "file_errors", len(x.sum.Errors),
		"advanced_types", strings.Join(labels(x.sum.Advanced), ","))
	return x.sum, nil
}

func typeLabel(t string) string {
	if t == "" {
		return "(all types)"
	}
	return t
}

func labels(ts []string) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = typeLabel(t)
	}
	return out
}

func dedupe(types []string) []string {
	var out []string
	for _, t := range types {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// plan splits an incremental request into one request per distinct
// _since among its types (oldest first; a type never brought completely
// from the beginning), the part matching a recorded pending job first so
// that it is resumed rather than abandoned.
func (x *exporter) plan(ctx context.Context, req bulk.Request) ([]bulk.Request, error) {
	if !x.opts.Incremental || !req.Since.IsZero() || x.st == nil {
		return []bulk.Request{req}, nil
	}
	last, err := x.st.LastExports(ctx, x.opts.Connection, req.Scope())
	if err != nil {
		return nil, err
	}
	if len(req.Types) == 0 {
		req.Since = last[""]
		return []bulk.Request{req}, nil
	}
	var sinces []time.Time
	group := map[time.Time][]string{}
	for _, t := range req.Types {
		s := last[t].UTC() // a missing type: zero, from the beginning
		if _, ok := group[s]; !ok {
			sinces = append(sinces, s)
		}
		group[s] = append(group[s], t)
	}
	slices.SortFunc(sinces, func(a, b time.Time) int { return a.Compare(b) })
	parts := make([]bulk.Request, 0, len(sinces))
	for _, s := range sinces {
		parts = append(parts, narrow(req, group[s], s))
	}
	if pend, ok := x.st.(PendingExports); ok && len(parts) > 1 {
		fp, statusURL, _, err := pend.PendingExport(ctx, x.opts.Connection, req.Scope())
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(parts, func(p bulk.Request) bool { return requestFingerprint(p) == fp }); statusURL != "" && i > 0 {
			parts[0], parts[i] = parts[i], parts[0]
		}
	}
	return parts, nil
}

// narrow is req for the given types and _since, with only their
// _typeFilters.
func narrow(req bulk.Request, types []string, since time.Time) bulk.Request {
	out := req
	out.Types, out.Since, out.TypeFilters = types, since, nil
	for _, f := range req.TypeFilters {
		typ, _, ok := strings.Cut(f, "?")
		if !ok || slices.Contains(types, typ) {
			out.TypeFilters = append(out.TypeFilters, f)
		}
	}
	return out
}

// verdict is what one job brought: the request's types it brought
// completely, what is incomplete, and the types of files the server no
// longer has (all set: every type of the request).
type verdict struct {
	complete []string
	issues   []TypeIssue
	gone     []string
	goneAll  bool
}

// runPart exports one request (one _since), starting new exports for
// files the server no longer has within MaxReexports, and advances the
// _since of what was brought completely.
func (x *exporter) runPart(ctx context.Context, req bulk.Request) error {
	typed := len(req.Types) > 0
	cur := req
	var firstTx time.Time
	var carried []TypeIssue // issues of earlier jobs of this part that a re-export does not cover
	for attempt := 0; ; attempt++ {
		res, err := x.runJob(ctx, cur, attempt)
		if err != nil {
			return err
		}
		if attempt == 0 {
			firstTx = res.m.TransactionTime
		}
		v := x.judge(cur, res)
		reexport := (len(v.gone) > 0 || v.goneAll) && attempt < x.opts.MaxReexports && ctx.Err() == nil
		if reexport {
			next := cur
			if !v.goneAll {
				next = narrow(cur, v.gone, cur.Since)
			}
			// The new job brings every file of those types again (of every
			// type when a deleted file is gone): what this one got wrong
			// for them is superseded.
			redo := func(t string) bool { return v.goneAll || slices.Contains(next.Types, t) }
			res.sum.Errors = slices.DeleteFunc(res.sum.Errors, func(e FileError) bool { return redo(e.Type) })
			for _, is := range v.issues {
				if !redo(is.Type) {
					carried = append(carried, is)
				}
			}
			x.sum.add(res.sum)
			if err := x.advance(ctx, typed, res.m.TransactionTime, v.complete); err != nil {
				return err
			}
			if err := res.jobs.clear(ctx); err != nil {
				return fmt.Errorf("ingest: export: %w", err)
			}
			x.sum.Reexports++
			x.log.Warn("the server no longer has some files (410 Gone); starting a new export for their types",
				"connection", x.opts.Connection, "scope", x.sum.Scope, "types", strings.Join(labels(next.Types), ","),
				"reexport", x.sum.Reexports, "max_reexports", x.opts.MaxReexports)
			cur = next
			continue
		}
		x.sum.add(res.sum)
		if err := x.advance(ctx, typed, res.m.TransactionTime, v.complete); err != nil {
			return err
		}
		issues := append(carried, v.issues...)
		if !typed && len(issues) == 0 {
			// An export without _type is complete only as a whole, as of
			// its first job.
			if err := x.advance(ctx, true, firstTx, []string{""}); err != nil {
				return err
			}
		}
		x.sum.Incomplete = append(x.sum.Incomplete, issues...)
		// Done with this job (even when incomplete: it was deleted). Killed
		// between advance and here, the next incremental run has another
		// _since, so another fingerprint, and does not reuse the job.
		if err := res.jobs.clear(ctx); err != nil {
			return fmt.Errorf("ingest: export: %w", err)
		}
		return nil
	}
}

// typedFile reports whether a file error's type is one of the request's
// (a deleted file is a Bundle of any type).
func typedFile(req bulk.Request, typ string) bool {
	return len(req.Types) == 0 || slices.Contains(req.Types, typ)
}

// advance stores t as the _since of types (in the store's mode; an
// export without _type only through its final "" record).
func (x *exporter) advance(ctx context.Context, typed bool, t time.Time, types []string) error {
	if x.st == nil || !typed || len(types) == 0 {
		return nil
	}
	if err := x.st.SetLastExport(ctx, x.opts.Connection, x.sum.Scope, t, types); err != nil {
		return fmt.Errorf("ingest: export: %w", err)
	}
	for _, ty := range types {
		if !slices.Contains(x.sum.Advanced, ty) {
			x.sum.Advanced = append(x.sum.Advanced, ty)
		}
	}
	return nil
}

// Reasons of TypeIssues.
const (
	reasonGone       = "the server no longer has a file (410 Gone)"
	reasonFile       = "a file could not be ingested completely"
	reasonNotGranted = "the server did not grant the access token this type (or only in part): not exported"
	reasonMissing    = "missing from the output of an export from the beginning: the server returned none (it may filter by scope, or hold none)"
)

// judge decides what one job brought completely.
func (x *exporter) judge(req bulk.Request, res *jobResult) verdict {
	var v verdict
	var order []string
	issues := map[string]*TypeIssue{}
	add := func(typ, reason string, files ...string) {
		is := issues[typ]
		if is == nil {
			is = &TypeIssue{Type: typ}
			issues[typ] = is
			order = append(order, typ)
		}
		if !strings.Contains(is.Reason, reason) {
			if is.Reason != "" {
				is.Reason += "; "
			}
			is.Reason += reason
		}
		for _, f := range files {
			if !slices.Contains(is.Files, f) {
				is.Files = append(is.Files, f)
			}
		}
	}
	typed := len(req.Types) > 0
	for _, e := range res.sum.Errors {
		typ := e.Type
		if !typedFile(req, typ) || (!typed && typ == "Bundle") {
			typ = "" // a deleted file: every type
		}
		switch {
		case e.Gone && typ == "":
			v.goneAll = true
			add("", reasonGone, e.File)
		case e.Gone:
			if !slices.Contains(v.gone, typ) {
				v.gone = append(v.gone, typ)
			}
			add(typ, reasonGone, e.File)
		default:
			add(typ, reasonFile, e.File)
		}
	}
	for _, se := range res.serverErrs {
		if !se.failed() {
			continue
		}
		reason := "the server could not generate its output (manifest error file; issue codes: " + strings.Join(se.codes, ", ") + ")"
		if se.readErr != nil {
			reason = "the manifest lists an error file that could not be read"
		}
		if se.all {
			add("", reason, se.file)
		}
		for _, t := range req.Types {
			if se.types[t] {
				add(t, reason, se.file)
			}
		}
		if !typed {
			for t := range se.types {
				add(t, reason, se.file)
			}
		}
	}
	if typed {
		present := map[string]bool{}
		for _, f := range res.m.Output {
			present[f.Type] = true
		}
		for _, t := range req.Types {
			if present[t] || !req.Since.IsZero() {
				continue // there, or nothing of it changed since _since
			}
			add(t, reasonMissing)
			x.log.Warn("a requested type is missing from the output of an export from the beginning", "connection", x.opts.Connection,
				"scope", x.sum.Scope, "type", t)
		}
		for _, t := range req.Types {
			if issues[t] == nil && issues[""] == nil {
				v.complete = append(v.complete, t)
			}
		}
	}
	for _, t := range order {
		v.issues = append(v.issues, *issues[t])
	}
	return v
}

// jobResult is one export job, run and deleted.
type jobResult struct {
	m          *bulk.Manifest
	sum        Summary
	serverErrs []fileServerErrors
	jobs       *jobKeeper
}

type fileServerErrors struct {
	file string
	serverErrors
}

// runJob kicks off (or, for the first job of a part, resumes) one export
// job, waits for it, ingests (or writes) its files, reads its error files
// and deletes it on the server.
func (x *exporter) runJob(ctx context.Context, req bulk.Request, attempt int) (*jobResult, error) {
	jobs := newJobKeeper(x.st, x.c, x.opts, req)
	if x.dirState != nil {
		jobs.pend = x.dirState
	}
	var (
		job     *bulk.Job
		resumed bool
		err     error
	)
	if attempt == 0 {
		job, resumed, err = jobs.start(ctx)
	} else {
		job, err = jobs.kickoff(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: export: %w", err)
	}
	m, err := x.c.Wait(ctx, job)
	if err != nil && ctx.Err() == nil && jobFailed(err) {
		// A resumed job the server no longer has (or that failed) is
		// replaced; so, once, is a job it lost or failed right after
		// kicking it off (an expired status URL, a restart of the server's
		// export worker): one more kick-off before giving up.
		what := "the bulk export job is gone or failed on the server; kicking it off once more"
		if resumed {
			what = "the resumed bulk export job is gone or failed; kicking off a new one"
		}
		jobs.log.Warn(what, "connection", x.opts.Connection, "scope", x.sum.Scope, "job", stripQuery(job.StatusURL), "error", err)
		jobs.forget(ctx)
		resumed = false
		if job, err = jobs.kickoff(ctx); err != nil {
			return nil, fmt.Errorf("ingest: export: %w", err)
		}
		m, err = x.c.Wait(ctx, job)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			jobs.cancel(ctx, job)
		case jobFailed(err):
			jobs.forget(ctx) // the server gave up on it: the next run starts anew
		}
		return nil, fmt.Errorf("ingest: export: %w", err)
	}
	x.sum.Jobs++
	x.sum.Resumed = x.sum.Resumed || resumed
	if m.TransactionTime.After(x.sum.TransactionTime) {
		x.sum.TransactionTime = m.TransactionTime
	}
	x.sum.OutputFiles += len(m.Output)
	res := &jobResult{m: m, jobs: jobs}
	if x.dir != "" {
		res.sum, err = x.writeFiles(ctx, m, attempt, req, resumed)
	} else {
		res.sum, err = x.ingestFiles(ctx, m, job)
	}
	if err != nil {
		x.sum.add(res.sum)
		// Without ctx ending (a store failure, say) the job stays recorded:
		// the next run resumes it and skips what was ingested.
		if ctx.Err() != nil {
			jobs.cancel(ctx, job)
		}
		return nil, err
	}
	candidates := req.Types // nil without _type: any resource type
	for _, f := range m.Error {
		var (
			tee  io.Writer
			done func(ok bool) error
		)
		if x.dir != "" {
			if tee, done, err = x.createFile("error"); err != nil {
				return nil, fmt.Errorf("ingest: export to a directory: %w", err)
			}
		}
		se := readServerErrors(ctx, x.c, m, f, candidates, tee)
		if done != nil {
			if err := done(se.readErr == nil); err != nil {
				return nil, fmt.Errorf("ingest: export to a directory: %w", err)
			}
		}
		x.sum.ServerErrors += se.lines
		if se.warnings > 0 {
			x.log.Info("the server reported warnings about the export", "connection", x.opts.Connection,
				"scope", x.sum.Scope, "warnings", se.warnings)
		}
		if se.failed() {
			x.log.Warn("the export manifest lists errors", "connection", x.opts.Connection, "scope", x.sum.Scope,
				"error_file", stripQuery(f.URL), "types", strings.Join(slices.Sorted(maps.Keys(se.types)), ","),
				"untied", se.all, "codes", strings.Join(se.codes, ","))
		}
		res.serverErrs = append(res.serverErrs, fileServerErrors{file: stripQuery(f.URL), serverErrors: se})
	}
	if !jobs.deleteJob(ctx, job) {
		// Everything was read; the server will expire the job.
		x.log.Warn("could not delete the finished bulk export job on the server", "connection", x.opts.Connection,
			"job", stripQuery(job.StatusURL))
	}
	return res, nil
}

// ingestFiles ingests a manifest's output and deleted files into the store.
func (x *exporter) ingestFiles(ctx context.Context, m *bulk.Manifest, job *bulk.Job) (Summary, error) {
	files := make([]File, 0, len(m.Output)+len(m.Deleted))
	add := func(f bulk.OutputFile, deleted bool) {
		count := int64(-1)
		if f.Count != nil {
			count = *f.Count
		}
		files = append(files, File{Name: stripQuery(f.URL), Type: f.Type, Count: count, Deleted: deleted, Size: -1,
			Open: func(ctx context.Context, offset int64) (io.ReadCloser, error) {
				rc, err := x.c.Open(ctx, m, f, offset)
				if gone(err) {
					return nil, fmt.Errorf("%w: %w", ErrFileGone, err)
				}
				return rc, err
			}})
	}
	for _, f := range m.Output {
		add(f, false)
	}
	for _, f := range m.Deleted {
		add(f, true)
	}
	opts := x.opts.Options
	opts.Job = stripQuery(job.StatusURL)
	if opts.DeletedAt.IsZero() {
		opts.DeletedAt = m.TransactionTime
	}
	in, err := New(x.st, opts)
	if err != nil {
		return Summary{}, err
	}
	if x.opts.Started != nil {
		x.opts.Started(in, m)
	}
	return in.Run(ctx, files)
}

// gone reports whether a download error means the file no longer exists.
func gone(err error) bool {
	return err != nil && (errors.Is(err, fhir.ErrGone) || errors.Is(err, fhir.ErrNotFound))
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
	if st != nil {
		k.pend, _ = st.(PendingExports)
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	return k
}

// start returns the recorded job of the same request, or kicks off a new
// one (abandoning a recorded job of another request).
func (k *jobKeeper) start(ctx context.Context) (job *bulk.Job, resumed bool, err error) {
	if k.pend == nil {
		job, err = k.kickoff(ctx)
		return job, false, err
	}
	fp, statusURL, kickedOff, err := k.pend.PendingExport(ctx, k.conn, k.scope)
	if err != nil {
		return nil, false, err
	}
	switch {
	case statusURL == "":
	case fp == k.fingerprint:
		k.log.Info("resuming bulk export job", "connection", k.conn, "scope", k.scope,
			"job", stripQuery(statusURL), "kicked_off", kickedOff)
		if k.resuming != nil {
			k.resuming(stripQuery(statusURL))
		}
		return &bulk.Job{StatusURL: statusURL}, true, nil
	default:
		k.log.Warn("abandoning the pending bulk export job of a different request; kicking off a new one",
			"connection", k.conn, "scope", k.scope, "job", stripQuery(statusURL), "kicked_off", kickedOff)
		if !k.deleteJob(ctx, &bulk.Job{StatusURL: statusURL}) {
			k.log.Warn("could not delete the abandoned bulk export job; the server will expire it",
				"connection", k.conn, "job", stripQuery(statusURL))
		}
		if err := k.clear(ctx); err != nil {
			return nil, false, err
		}
	}
	job, err = k.kickoff(ctx)
	return job, false, err
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
