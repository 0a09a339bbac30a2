package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ehrgate/audit"
	"ehrgate/jobs"
)

// AuditForwardJob copies new audit events to the configured SIEM sinks
// (audit.siem). Unique: one copy runs at a time across the replicas.
type AuditForwardJob struct {
	Sink string `json:"sink" river:"unique"` // "file" or "syslog"
}

// Kind implements jobs.Args.
func (AuditForwardJob) Kind() string { return "audit_forward" }

// defaultSIEMEvery is how often new events are copied without
// audit.siem.every.
const defaultSIEMEvery = 5 * time.Second

// siemSinks are the sinks the configuration names.
func (g *Gateway) siemSinks() []string {
	var out []string
	if g.cfg.Audit.SIEM.File != "" {
		out = append(out, "file")
	}
	if g.cfg.Audit.SIEM.Syslog != "" {
		out = append(out, "syslog")
	}
	return out
}

// ForwardAudit copies the audit events not yet copied to the named sink
// ("file" or "syslog", as configured) and returns how many it sent.
func (g *Gateway) ForwardAudit(ctx context.Context, sink string) (int, error) {
	var s audit.Sink
	var err error
	switch sink {
	case "file":
		if g.cfg.Audit.SIEM.File == "" {
			return 0, errors.New("audit.siem.file is not configured")
		}
		s, err = audit.NewFileSink(g.cfg.Audit.SIEM.File)
	case "syslog":
		if g.cfg.Audit.SIEM.Syslog == "" {
			return 0, errors.New("audit.siem.syslog is not configured")
		}
		s, err = audit.NewSyslogSink(g.cfg.Audit.SIEM.Syslog)
	default:
		return 0, fmt.Errorf("no audit sink %q (file or syslog)", sink)
	}
	if err != nil {
		return 0, err
	}
	defer s.Close()
	f := &audit.Forwarder{Trail: g.store, Docs: g.store, Sink: s, Name: sink}
	return f.Forward(ctx)
}

func (g *Gateway) runAuditForwardJob(ctx context.Context, j AuditForwardJob) error {
	n, err := g.ForwardAudit(ctx, j.Sink)
	if n > 0 {
		g.log.DebugContext(ctx, "audit events copied to the SIEM", "sink", j.Sink, "events", n)
	}
	return err
}

// scheduleSIEM adds a periodic copy per configured sink.
func (g *Gateway) scheduleSIEM(q *jobs.Queue) error {
	every := time.Duration(g.cfg.Audit.SIEM.Every)
	if every <= 0 {
		every = defaultSIEMEvery
	}
	for _, sink := range g.siemSinks() {
		if err := q.AddPeriodic(jobs.Periodic{ID: "audit-forward:" + sink, Every: every, RunOnStart: true,
			Args: func() jobs.Args { return AuditForwardJob{Sink: sink} }}); err != nil {
			return err
		}
	}
	return nil
}
