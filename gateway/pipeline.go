package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"ehrgate/dashboard"
	"ehrgate/fhir/bulk"
	"ehrgate/jobs"
	"ehrgate/pipeline"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/store"
	"ehrgate/writeback"
)

// PipelineJob runs the population pipeline once (Gateway.Pipeline) over
// every connection with a write block; `serve` enqueues one every
// pipeline.every. A run that dies is taken over by the queue's rescuer, and
// the next run finishes what it left (its writes are conditional).
type PipelineJob struct {
	// Scope is "all": one run at a time.
	Scope string    `json:"scope" river:"unique"`
	Cycle time.Time `json:"cycle,omitzero"`
}

// Kind implements jobs.Args.
func (PipelineJob) Kind() string { return "pipeline_run" }

func (g *Gateway) runPipelineJob(ctx context.Context, j PipelineJob) error {
	sum, err := g.Pipeline(ctx, PipelineOptions{Group: g.cfg.Pipeline.Group})
	if err != nil {
		return err
	}
	w := sum.Writes
	g.log.Info("pipeline run ended", "cohort", sum.Cohort, "not_computable", sum.NotComputable, "created", w.Created,
		"updated", w.Updated, "withdrawn", w.Withdrawn, "unchanged", w.Unchanged, "refused", w.Refused, "failed", w.Failed,
		"pending", w.Pending, "duration_ms", sum.DurationMS)
	return nil
}

// schedulePipeline adds the periodic pipeline run when pipeline.every is
// set and some connection has a write block.
func (g *Gateway) schedulePipeline(q *jobs.Queue) error {
	every := time.Duration(g.cfg.Pipeline.Every)
	if every <= 0 {
		return nil
	}
	for _, c := range g.Connections() {
		if c.Write != nil {
			return q.AddPeriodic(jobs.Periodic{ID: "pipeline", Every: every, RunOnStart: true,
				Args: func() jobs.Args { return PipelineJob{Scope: "all", Cycle: time.Now().UTC()} }})
		}
	}
	return nil
}

// PipelineOptions tune Gateway.Pipeline.
type PipelineOptions struct {
	// Connections are the sources and targets; empty = every configured
	// connection with a write block.
	Connections []string
	// NoRefresh evaluates the store as it is, without a Bulk Data export
	// first.
	NoRefresh bool
	// Group is the Group id exported from connections whose vendor offers
	// only Group-level export.
	Group string
	// Types are the exported types (default: what the rules read).
	Types []string
	// AsOf gives the evaluation date of the rules (nil = time.Now); the
	// outbox and Provenance keep the real time.
	AsOf func() time.Time
	// Writer options: retries and their sleep (tests shorten them).
	MaxAttempts int
	BaseDelay   time.Duration
}

// pipelineTypes are the resource types the risk rules read.
var pipelineTypes = []string{"Patient", "Condition", "Observation", "MedicationRequest"}

// Pipeline runs the population pipeline (package pipeline) once: for each
// connection an incremental Bulk Data export into the store, the risk
// rules over every patient, and the resulting Flags written back to the
// same connection through the write-back outbox, bounded by the
// connection's write policy, with Provenance. Its writer re-evaluates a
// Flag whose update met a newer version (pipeline.Reevaluate). Its outbox
// does not enqueue send jobs: the run sends its own records, and records it
// leaves (a crash) are finished by the next run or by serve's sweep.
func (g *Gateway) Pipeline(ctx context.Context, o PipelineOptions) (pipeline.Summary, error) {
	conns := o.Connections
	if len(conns) == 0 {
		for _, c := range g.Connections() {
			if c.Write != nil {
				conns = append(conns, c.Name)
			}
		}
	}
	if len(conns) == 0 {
		return pipeline.Summary{}, fmt.Errorf("pipeline: no connection has a write block (write: in the configuration)")
	}
	for _, name := range conns {
		c, ok := g.Connection(name)
		if !ok {
			return pipeline.Summary{}, fmt.Errorf("pipeline: no connection %q", name)
		}
		if c.Write == nil {
			return pipeline.Summary{}, fmt.Errorf("pipeline: connection %q has no write block", name)
		}
	}
	ob := writeback.NewOutbox(g.store, g.keyring, nil)
	w, err := g.Writer(ctx, g.keyring, writeback.Options{Outbox: ob, Reevaluate: pipeline.Reevaluate,
		MaxAttempts: o.MaxAttempts, BaseDelay: o.BaseDelay})
	if err != nil {
		return pipeline.Summary{}, err
	}
	po := pipeline.Options{Store: g.store, Outbox: ob, Writer: w, Connections: conns, Clock: o.AsOf, Logger: g.log}
	if !o.NoRefresh {
		po.Refresh = func(ctx context.Context, name string) error {
			return g.pipelineExport(ctx, name, o)
		}
	}
	sum, err := pipeline.Run(ctx, po)
	if err == nil {
		if serr := g.savePipelineRun(ctx, sum); serr != nil {
			g.log.Warn("pipeline: could not keep the run for the dashboard", "error", serr)
		}
	}
	return sum, err
}

// docPipelineRun is the store.Documents kind of the last pipeline run
// (name "last"), sealed under the keyring: it holds patient ids and
// findings.
const docPipelineRun = "pipeline-run"

// storedRun is the last run as kept.
type storedRun struct {
	At       time.Time          `json:"at"`
	Summary  pipeline.Summary   `json:"summary"`
	Patients []pipeline.Patient `json:"patients"`
}

func pipelineAAD() []byte { return []byte(docPipelineRun + "/last") }

func (g *Gateway) savePipelineRun(ctx context.Context, sum pipeline.Summary) error {
	plain, err := json.Marshal(storedRun{At: time.Now().UTC(), Summary: sum, Patients: sum.Patients})
	if err != nil {
		return err
	}
	sealed, err := g.keyring.Seal(plain, pipelineAAD())
	if err != nil {
		return err
	}
	body, err := json.Marshal(sealed)
	if err != nil {
		return err
	}
	return g.store.UpdateDocument(ctx, docPipelineRun, "last", func([]byte) ([]byte, error) { return body, nil })
}

// PipelineRun returns the last pipeline run for the dashboard, with the
// newest outbox record of each of its Flags and score Observations; nil
// when none ran yet.
func (g *Gateway) PipelineRun(ctx context.Context) (*dashboard.PipelineRun, error) {
	d, err := g.store.GetDocument(ctx, docPipelineRun, "last")
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the last pipeline run: %w", err)
	}
	var sealed secrets.Sealed
	if err := json.Unmarshal(d.Body, &sealed); err != nil {
		return nil, fmt.Errorf("the last pipeline run: %w", err)
	}
	plain, err := g.keyring.Open(sealed, pipelineAAD())
	if err != nil {
		return nil, fmt.Errorf("opening the last pipeline run: %w", err)
	}
	var run storedRun
	if err := json.Unmarshal(plain, &run); err != nil {
		return nil, fmt.Errorf("the last pipeline run: %w", err)
	}
	recs, err := g.Outbox().List(ctx, "")
	if err != nil {
		return nil, err
	}
	writes := map[string]writeback.Record{}
	for _, r := range recs {
		if !strings.HasPrefix(r.Rule.Name, "pipeline/") {
			continue
		}
		k := r.Connection + "|" + r.Identifier.Value
		if old, ok := writes[k]; ok && !r.Last().At.After(old.Last().At) {
			continue
		}
		writes[k] = r
	}
	return &dashboard.PipelineRun{At: run.At, Summary: run.Summary, Patients: run.Patients, Writes: writes}, nil
}

// pipelineRoutes are the dashboard's cohort page, a patient-data route.
func (g *Gateway) pipelineRoutes(dash *dashboard.Dashboard) []server.Route {
	h := dash.Pipeline(dashboard.PipelineOptions{Load: g.PipelineRun})
	var out []server.Route
	for _, r := range dashboard.PipelineRoutes {
		out = append(out, server.Route{Pattern: r.Pattern, Access: server.PatientData, Serves: r.Serves, Handler: h})
	}
	return out
}

// pipelineExport runs the incremental export of one connection at the
// broadest level its vendor offers.
func (g *Gateway) pipelineExport(ctx context.Context, name string, o PipelineOptions) error {
	c, _ := g.Connection(name)
	rt, err := g.Runtime(ctx, c)
	if err != nil {
		return err
	}
	types := o.Types
	if len(types) == 0 {
		types = pipelineTypes
	}
	req := bulk.Request{Types: types}
	rules := rt.Adapter.Bulk()
	switch {
	case rules.AllowsLevel("system"):
	case rules.AllowsLevel("patient"):
		req.Patient = true
	case o.Group != "":
		req.Group = o.Group
	default:
		return fmt.Errorf("%s offers only Group-level export: name the group (--group)", name)
	}
	sum, err := g.BulkExport(ctx, c, req, BulkExportOptions{})
	if err != nil {
		return err
	}
	if !sum.Complete {
		return fmt.Errorf("the export of %s was incomplete; the next run exports what is missing", name)
	}
	return nil
}
