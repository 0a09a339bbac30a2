package gateway

import (
	"context"
	"fmt"
	"strings"

	"ehrgate/config"
	"ehrgate/fhir/bulk"
	"ehrgate/ingest"
)

// BulkExportOptions tune Gateway.BulkExport. The zero value exports
// incrementally into the store with the vendor's download concurrency.
type BulkExportOptions struct {
	// Full ignores the last exports' transactionTime (exports everything).
	Full bool
	// OutDir writes the files as received (and manifest.json) into this
	// directory instead of storing them; nothing is stored, not even
	// _since.
	OutDir string
	// MaxDownloads bounds concurrent file downloads (0: the vendor's
	// limit, else 4).
	MaxDownloads int
	// Workers normalize in parallel (0: CPUs).
	Workers int
	// MaxReexports is how many new exports may be started for files the
	// server no longer has (410 Gone); nil is bulk.max_reexports of the
	// configuration, else ingest.DefaultMaxReexports; 0 is none.
	MaxReexports *int
	// Started and Resuming are ingest's hooks (a progress view; the status
	// URL of a resumed job, without its query).
	Started  func(in *ingest.Ingester, m *bulk.Manifest)
	Resuming func(statusURL string)
}

// BulkExport runs a FHIR Bulk Data export of conn and streams it into the
// store (or, with OutDir, to disk), under the connection's SMART
// authorization and its vendor's bulk rules. req.Types empty means the
// connection's types. An interrupted run (ctx ended) records nothing;
// otherwise the outcome is kept in the connection state for status and the
// dashboard, and an incomplete export (sum.Complete false) keeps each
// affected type's _since for the next run.
func (g *Gateway) BulkExport(ctx context.Context, conn config.Connection, req bulk.Request, o BulkExportOptions) (ingest.ExportSummary, error) {
	rt, err := g.Runtime(ctx, conn)
	if err != nil {
		return ingest.ExportSummary{}, err
	}
	rules := rt.Adapter.Bulk()
	level, _, _ := strings.Cut(req.Scope(), "/")
	if !rules.AllowsLevel(level) {
		return ingest.ExportSummary{}, fmt.Errorf("%s does not offer %s-level bulk export (it offers: %s)", rt.Detected, level, strings.Join(rules.Levels, ", "))
	}
	if len(req.Types) == 0 && len(conn.Types) > 0 {
		req.Types = conn.Types // least privilege: what the connection is configured to read
	}
	if len(req.Types) == 0 && rt.Tokens != nil {
		req.Types = TypesOf(conn) // what its token was requested for
	}
	if len(req.Types) > 0 {
		allowed, refused := rules.FilterTypes(req.Types)
		if len(refused) > 0 {
			g.log.Warn("the server does not export these types; skipping them", "connection", conn.Name, "types", strings.Join(refused, ","))
		}
		req.Types = allowed
	}
	maxDownloads := o.MaxDownloads
	if maxDownloads == 0 {
		maxDownloads = rules.MaxParallelDownloads
	}
	if maxDownloads == 0 {
		maxDownloads = 4
	}
	reexports := ingest.DefaultMaxReexports
	switch {
	case o.MaxReexports != nil:
		reexports = *o.MaxReexports
	case g.cfg.Bulk.MaxReexports != nil:
		reexports = *g.cfg.Bulk.MaxReexports
	}
	if reexports < 0 || reexports > config.MaxBulkReexports {
		return ingest.ExportSummary{}, fmt.Errorf("max re-exports %d is outside 0..%d", reexports, config.MaxBulkReexports)
	}
	if reexports == 0 {
		reexports = -1 // ingest: negative is none
	}
	bopts := bulk.Options{Connection: conn.Name, MaxDownloads: maxDownloads, Logger: g.log,
		OnProgress: func(p string) { g.log.Info("bulk export running", "connection", conn.Name, "progress", p) }}
	if rt.Tokens != nil {
		bopts.Authorizer = rt.Tokens
	}
	client, err := bulk.NewClient(conn.BaseURL, bopts)
	if err != nil {
		return ingest.ExportSummary{}, err
	}
	eopts := ingest.ExportOptions{
		Incremental:  !o.Full,
		MaxReexports: reexports,
		Options:      ingest.Options{Connection: conn.Name, Workers: o.Workers, Logger: g.log},
		Started:      o.Started,
		Resuming:     o.Resuming,
	}
	if rt.Tokens != nil {
		eopts.Grants = rt.Tokens
	}
	if o.OutDir == "" {
		unmark := g.markRunning(ctx, conn.Name, "bulk export "+req.Scope())
		defer unmark()
	}
	var sum ingest.ExportSummary
	if o.OutDir != "" {
		sum, err = ingest.ExportToDir(ctx, client, o.OutDir, req, eopts)
	} else {
		sum, err = ingest.Export(ctx, client, g.store, req, eopts)
	}
	if ctx.Err() != nil {
		return sum, err // interrupted: the job resumes next time; record nothing
	}
	if rt.Tokens != nil && (err == nil || sum.NotGranted != nil) {
		g.RecordGrants(ctx, conn.Name, sum.NotGranted)
	}
	if o.OutDir == "" && sum.New+sum.Updated+sum.Deleted > 0 {
		g.kickIdentity() // new or changed Patients among them are matched
	}
	if o.OutDir == "" {
		if serr := RecordBulkOutcome(ctx, g.store, conn.Name, sum, err); serr != nil {
			g.log.Warn("could not save connection state", "connection", conn.Name, "error", serr)
		}
	}
	return sum, err
}
