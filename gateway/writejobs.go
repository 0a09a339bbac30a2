package gateway

import (
	"context"
	"ehrgate/identity"
	"fmt"
	"net/http"
	"os/user"
	"sync"
	"time"

	"ehrgate/dashboard"
	"ehrgate/jobs"
	"ehrgate/pipeline"
	"ehrgate/server"
	"ehrgate/writeback"
)

// Write-back runs on the job queue (issue 17):
//
//   - every move of an outbox record to approved (a person's approval on
//     the dashboard or with `ehrgate writes approve`, the policy's
//     auto-approval, a re-proposal after a 412) enqueues a WriteJob for
//     that record, unique by record id;
//   - a WriteSweepJob every writeSweepEvery (and when the leader starts)
//     enqueues a WriteJob for every approved or sent record, so a record
//     whose enqueue was missed, or whose process died between "sent" and
//     "confirmed", is sent (again, safely: creates are conditional, updates
//     carry If-Match) and confirmed;
//   - a WriteJob calls writeback.Writer.Send, whose retries with backoff
//     cover 429, 5xx and lost answers; the job itself fails (and is retried
//     by the queue) only on errors writeback.Retryable says a later attempt
//     may change. The record's state says how every other outcome ended.
//
// Records of a connection whose writing is switched off or in dry run are
// held approved, not sent and not rejected: they go when writing is on.
type (
	// WriteJob sends one approved write-back record.
	WriteJob struct {
		Record string `json:"record" river:"unique"`
	}
	// WriteSweepJob enqueues a WriteJob for every approved or sent record.
	WriteSweepJob struct{}
)

// Kind implements jobs.Args.
func (WriteJob) Kind() string { return "writeback_send" }

// Kind implements jobs.Args.
func (WriteSweepJob) Kind() string { return "writeback_sweep" }

// writeSweepEvery is how often approved and sent records left behind are
// enqueued again.
const writeSweepEvery = time.Minute

// writeState is the gateway's write-back outbox (built once) and writer
// (built on first success: its connections' runtimes may need the EHR).
type writeState struct {
	once   sync.Once
	outbox *writeback.Outbox

	mu     sync.Mutex
	writer *writeback.Writer
}

// Outbox returns the write-back outbox on the gateway's store, sealed by
// its keyring. Each record approved through it (by a person, or by a
// writer built on it) gets its send job enqueued on the gateway's queue;
// when that fails the periodic sweep of `serve` sends it.
func (g *Gateway) Outbox() *writeback.Outbox {
	g.writes.once.Do(func() {
		ob := writeback.NewOutbox(g.store, g.keyring, nil)
		ob.OnApproved(func(ctx context.Context, r writeback.Record) {
			q, err := g.Jobs(ctx)
			if err == nil {
				_, err = q.Enqueue(ctx, WriteJob{Record: r.ID})
			}
			if err != nil {
				g.log.Warn("write-back: could not enqueue the send of an approved record; the periodic sweep sends it", "record", r.ID, "error", err)
			}
		})
		g.writes.outbox = ob
	})
	return g.writes.outbox
}

// WriteBack returns the gateway's write-back writer over Outbox, built
// once (Writer with default options, and the population pipeline's
// re-evaluation of its Flags after a 412, pipeline.Reevaluate).
func (g *Gateway) WriteBack(ctx context.Context) (*writeback.Writer, error) {
	g.writes.mu.Lock()
	defer g.writes.mu.Unlock()
	if g.writes.writer != nil {
		return g.writes.writer, nil
	}
	w, err := g.Writer(ctx, g.keyring, writeback.Options{Outbox: g.Outbox(), Reevaluate: pipeline.Reevaluate})
	if err != nil {
		return nil, err
	}
	g.writes.writer = w
	return w, nil
}

// LocalApprover names the person approving writes where no one signs in
// (the loopback-only dashboard, the CLI without --by): the operating
// system's user, or "local".
func LocalApprover() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "local"
}

// writesHeld reports why a connection's records are held rather than sent
// ("" = they may be sent): no write block here, writing switched off, dry
// run.
func (g *Gateway) writesHeld(conn string) string {
	c, ok := g.Connection(conn)
	switch {
	case !ok || c.Write == nil:
		return "no write-back connection of that name in this process's configuration"
	case !c.Write.Enabled:
		return "writing is switched off"
	case c.Write.DryRun:
		return "dry run"
	}
	return ""
}

// maxResends bounds how often one job sends a record that a 412 made the
// rule re-propose (and the policy re-approve) against a newer version.
const maxResends = 3

func (g *Gateway) runWriteJob(ctx context.Context, j WriteJob) error {
	ob := g.Outbox()
	rec, err := ob.Get(ctx, j.Record)
	if err != nil {
		if writeback.Retryable(err) {
			return err
		}
		return jobs.Permanent(err)
	}
	if why := g.writesHeld(rec.Connection); why != "" {
		g.log.Info("write-back: record held, not sent", "record", rec.ID, "connection", rec.Connection, "why", why)
		return nil
	}
	w, err := g.WriteBack(ctx)
	if err != nil {
		return fmt.Errorf("write-back: %w", err)
	}
	for range maxResends {
		rec, err = w.Send(ctx, j.Record)
		if writeback.Retryable(err) {
			return err
		}
		if err != nil || rec.State != writeback.StateApproved {
			g.log.Info("write-back: send ended", "record", rec.ID, "type", rec.ResourceType, "state", string(rec.State))
			return nil
		}
		// Re-proposed after a 412 and approved again by the policy: send
		// the new version now.
	}
	return nil
}

func (g *Gateway) runWriteSweepJob(ctx context.Context, _ WriteSweepJob) error {
	recs, err := g.Outbox().List(ctx, "", writeback.StateApproved, writeback.StateSent)
	if err != nil {
		return err
	}
	q, err := g.Jobs(ctx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if g.writesHeld(r.Connection) != "" {
			continue
		}
		if _, err := q.Enqueue(ctx, WriteJob{Record: r.ID}); err != nil {
			return fmt.Errorf("enqueueing the send of record %s: %w", r.ID, err)
		}
	}
	return nil
}

// scheduleWrites adds the sweep of approved records when some connection
// writes back.
func (g *Gateway) scheduleWrites(q *jobs.Queue) error {
	for _, c := range g.Connections() {
		if c.Write != nil {
			return q.AddPeriodic(jobs.Periodic{ID: "writeback-sweep", Every: writeSweepEvery, RunOnStart: true,
				Args: func() jobs.Args { return WriteSweepJob{} }})
		}
	}
	return nil
}

// writeRoutes are the dashboard's write-back approval pages
// (dashboard.WriteRoutes) over the gateway's outbox, as patient-data
// routes: with login on, for signed-in people whose roles approve writes.
func (g *Gateway) writeRoutes(dash *dashboard.Dashboard) []server.Route {
	h := dash.Writes(dashboard.WriteOptions{Queue: g.Outbox(), Versions: g.store, LocalApprover: LocalApprover()})
	return patientDataRoutes(h, dashboard.WriteRoutes)
}

// patientDataRoutes serves each of a dashboard handler's routes as a
// patient-data route.
func patientDataRoutes(h http.Handler, rs []struct{ Pattern, Serves string }) []server.Route {
	out := make([]server.Route, 0, len(rs))
	for _, r := range rs {
		out = append(out, server.Route{Pattern: r.Pattern, Access: server.PatientData, Serves: r.Serves, Handler: h})
	}
	return out
}

// identityRoutes are the dashboard's identity pages
// (dashboard.IdentityRoutes: the review queue, two records side by side,
// link and unlink, the merged chart) over the store's persons and
// decisions, as patient-data routes.
func (g *Gateway) identityRoutes(dash *dashboard.Dashboard) []server.Route {
	h := dash.Identity(dashboard.IdentityOptions{Service: &identity.Service{Docs: g.store}, LocalApprover: LocalApprover()})
	return patientDataRoutes(h, dashboard.IdentityRoutes)
}
