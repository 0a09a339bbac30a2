package gateway

// CDS Hooks (issue 16): an additive hunk of the cdshooks branch. MountCDS
// is the one call serve or demo makes to offer ehrgate's CDS services.

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"ehrgate/cdshooks"
	"ehrgate/dashboard"
	"ehrgate/jobs"
)

// MountCDS mounts ehrgate's CDS Hooks services (package cdshooks:
// discovery, the drug-allergy services, feedback) on the gateway's HTTP
// service. o.BaseURL (the URL CDS clients call ehrgate at: their JWTs'
// audience) is required; the store, the audit trail, the metrics registry,
// the logger and the connections default to the gateway's own. Call it
// once, before Handler or Serve.
func (g *Gateway) MountCDS(o cdshooks.Options) (*cdshooks.Service, error) {
	if o.Store == nil {
		o.Store = g.store
	}
	if o.Audit == nil {
		o.Audit = g.audit
	}
	if o.Registerer == nil {
		o.Registerer = g.reg
	}
	if o.Logger == nil {
		o.Logger = g.log
	}
	if o.Connections == nil && o.ConnectionsFunc == nil {
		o.ConnectionsFunc = func() []cdshooks.Connection {
			g.mu.Lock()
			defer g.mu.Unlock()
			out := make([]cdshooks.Connection, 0, len(g.conns))
			for _, c := range g.conns {
				out = append(out, cdshooks.Connection{Name: c.Name, BaseURL: c.BaseURL})
			}
			return out
		}
	}
	svc, err := cdshooks.New(o)
	if err != nil {
		return nil, err
	}
	for _, rt := range svc.Routes() {
		g.Mount(rt)
	}
	g.mu.Lock()
	g.cds = true
	g.mu.Unlock()
	return svc, nil
}

// CDSPruneJob removes the CDS clients' JWT ids once their tokens have
// expired (they are kept to refuse replays).
type CDSPruneJob struct{}

// Kind implements jobs.Args.
func (CDSPruneJob) Kind() string { return "cds_prune" }

func (g *Gateway) runCDSPruneJob(ctx context.Context, _ CDSPruneJob) error {
	// A JWT lives at most 5 minutes plus the clock skew: an hour is ample.
	_, err := cdshooks.PruneJTIs(ctx, g.store, time.Now().Add(-time.Hour))
	return err
}

// scheduleCDS prunes the JWT ids hourly when the services are mounted.
func (g *Gateway) scheduleCDS(q *jobs.Queue) error {
	if !g.cds {
		return nil
	}
	return q.AddPeriodic(jobs.Periodic{ID: "cds-prune", Every: time.Hour,
		Args: func() jobs.Args { return CDSPruneJob{} }})
}

// cdsFeedback is the dashboard's reader of CDS card feedback, or nil when
// the CDS services are not mounted (the page is then not served).
func (g *Gateway) cdsFeedback() dashboard.CDSFeedbackFunc {
	g.mu.Lock()
	on := g.cds
	g.mu.Unlock()
	if !on {
		return nil
	}
	return func(ctx context.Context) ([]dashboard.CDSFeedback, error) {
		recs, err := cdshooks.ReadFeedback(ctx, g.store, "")
		if err != nil {
			return nil, fmt.Errorf("reading CDS feedback: %w", err)
		}
		out := make([]dashboard.CDSFeedback, 0, len(recs))
		for _, r := range recs {
			f := dashboard.CDSFeedback{Service: r.Service, Card: r.Card, Kind: r.Kind, Indicator: r.Indicator,
				Outcome: r.Outcome, Client: r.Client, Received: r.Received}
			if c := r.OverrideReason; c != nil {
				f.Reason = cmp.Or(c.Display, c.Code)
			}
			out = append(out, f)
		}
		return out, nil
	}
}
