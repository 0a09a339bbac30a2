package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"ehrgate/dashboard"
	"ehrgate/probe"
	"ehrgate/server"
)

// Mount adds an HTTP route (a net/http ServeMux pattern such as
// "GET /my/route") to those Handler serves. Routes mounted after Handler
// was built are not served by that handler.
func (g *Gateway) Mount(pattern string, h http.Handler) {
	g.mu.Lock()
	g.mounts[pattern] = h
	g.mu.Unlock()
}

// Handler returns the gateway's HTTP service: the dashboard, /metrics,
// /healthz and /readyz, ehrgate's JWKS, the SMART launch endpoints (after
// SetupLaunches), the event routes (after StartEvents) and mounted routes.
func (g *Gateway) Handler() http.Handler { return g.server().Handler() }

func (g *Gateway) server() *server.Server {
	dash := dashboard.New(g.store, dashboard.Options{
		Logger:    g.log,
		Status:    g.ConnectionStatus,
		RequestID: server.RequestIDFrom,
		Probe: func(ctx context.Context, conn string) (*probe.Report, error) {
			rep, err := LoadProbe(ctx, g.store, conn)
			if errors.Is(err, errNoProbe) {
				return nil, nil
			}
			return rep, err
		},
	})
	mounts := map[string]http.Handler{
		"GET /.well-known/jwks.json": g.keys.JWKSHandler(),
	}
	g.mu.Lock()
	for k, v := range g.mounts {
		mounts[k] = v
	}
	if l := g.launcher; l != nil {
		mounts["GET /smart/launch"] = l.LaunchHandler()
		mounts["GET /smart/login"] = l.StandaloneHandler()
		mounts["GET /smart/callback"] = l.CallbackHandler()
	}
	g.mu.Unlock()
	return server.New(server.Options{
		Dashboard: dash.Handler(),
		Gatherer:  g.reg,
		Logger:    g.log,
		Mounts:    mounts,
		Ready: func(ctx context.Context) error {
			_, err := g.store.Stats(ctx)
			return err
		},
	})
}

// Serve serves Handler on ln until ctx ends, then shuts down gracefully.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	return g.server().Serve(ctx, ln)
}

// ListenAndServe listens on addr (HOST:PORT) and serves Handler until ctx
// ends; bound, if set, is called with the bound address once listening.
func (g *Gateway) ListenAndServe(ctx context.Context, addr string, bound func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	if bound != nil {
		bound(ln.Addr())
	}
	return g.Serve(ctx, ln)
}
