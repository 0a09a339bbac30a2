package gateway

import (
	"context"
	"net"
	"time"

	"ehrgate/config"
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

// Run serves the whole gateway until ctx ends: SMART launches, events
// (with event-driven refresh of the configured connections), the HL7 v2
// listener, syncs at start and every configured interval, and the HTTP
// routes. It returns when ctx ends (nil) or a listener fails.
func (g *Gateway) Run(ctx context.Context, o RunOptions) error {
	conns := g.Connections()
	if err := g.SetupLaunches(conns); err != nil {
		return err
	}
	ev, err := g.StartEvents(ctx, g.cfg.Events.RefreshConnections)
	if err != nil {
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
	if o.SyncOnStart {
		go func() {
			for _, c := range conns {
				if c.Auth != nil && c.Auth.Type == config.AuthLaunch {
					continue
				}
				if _, err := g.Sync(ctx, c); err != nil && ctx.Err() == nil {
					g.log.Error("sync failed", "connection", c.Name, "error", err)
				}
			}
		}()
	}
	go g.ScheduleSyncs(ctx, conns, time.Duration(g.cfg.SyncEvery))
	go func() { errc <- g.ListenAndServe(ctx, o.HTTPAddr, on("http")) }()
	return <-errc
}
