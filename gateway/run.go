package gateway

import (
	"context"
	"net"
	"time"
)

// RunOptions say what Run serves.
type RunOptions struct {
	// HTTPAddr is the HTTP listen address (HOST:PORT).
	HTTPAddr string
	// MLLP configures the HL7 v2 listener; no listener when MLLP.Addr is "".
	MLLP MLLPOptions
	// SyncOnStart syncs every connection (except launch connections) when
	// starting.
	SyncOnStart bool
	// OnListen, if set, is called with "http" or "mllp" and the bound
	// address once each listener is up.
	OnListen func(what string, addr net.Addr)
}

// Run serves the whole gateway until ctx ends: SMART launches, the job
// queue (scheduled syncs and bulk exports, event-driven refreshes, HL7
// conversion, matching the Patients they store into persons; shared with every other process on the store, so each job
// runs once, on one of them), events, the HL7 v2 listener and the HTTP
// routes. It returns when ctx ends (nil) or a listener fails.
func (g *Gateway) Run(ctx context.Context, o RunOptions) error {
	conns := g.Connections()
	if err := g.SetupLaunches(conns); err != nil {
		return err
	}
	q, err := g.Jobs(ctx)
	if err != nil {
		return err
	}
	if err := g.schedule(ctx, q, o.SyncOnStart); err != nil {
		return err
	}
	if err := q.Start(ctx); err != nil {
		return err
	}
	g.startIdentityKicker(ctx, q)
	defer func() {
		// Running jobs get a moment to finish; the rest are cancelled and
		// made available again for another process (or the next start).
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := q.Stop(sctx); err != nil {
			g.log.Warn("stopping the job queue", "error", err)
		}
	}()
	ev, err := g.StartEvents(ctx, g.cfg.Events.RefreshConnections)
	if err != nil {
		return err
	}
	if err := g.StartSubscriptions(ctx, ev.Bus); err != nil {
		return err
	}
	on := func(what string) func(net.Addr) {
		return func(a net.Addr) {
			if o.OnListen != nil {
				o.OnListen(what, a)
			}
		}
	}
	errc := make(chan error, 2)
	if o.MLLP.Addr != "" {
		g.StartMLLP(ctx, o.MLLP, ev, on("mllp"), errc)
	}
	go func() { errc <- g.ListenAndServe(ctx, o.HTTPAddr, on("http")) }()
	return <-errc
}
