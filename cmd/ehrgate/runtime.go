package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"ehrgate/config"
	"ehrgate/dashboard"
	"ehrgate/fhir"
	"ehrgate/metrics"
	"ehrgate/refresh"
	"ehrgate/server"
	"ehrgate/store/sqlite"
)

// gateway is the running service: store, metrics and connection status.
type gateway struct {
	a       *app
	store   *sqlite.Store
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	mu     sync.Mutex
	status map[string]dashboard.ConnectionStatus
}

func (a *app) openGateway(ctx context.Context) (*gateway, error) {
	st, err := sqlite.OpenDir(ctx, a.cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", a.cfg.Data, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g := &gateway{a: a, store: st, reg: reg, metrics: metrics.New(reg), status: map[string]dashboard.ConnectionStatus{}}
	for _, c := range a.cfg.Connections {
		g.status[c.Name] = dashboard.ConnectionStatus{Name: c.Name, BaseURL: c.BaseURL, Vendor: "generic", State: "not yet synced"}
	}
	return g, nil
}

func (g *gateway) Close() error { return g.store.Close() }

// syncConnection runs one full sync of conn and records its status.
func (g *gateway) syncConnection(ctx context.Context, conn config.Connection) (refresh.Summary, error) {
	client, err := fhir.NewClient(conn.BaseURL, fhir.Options{
		Connection: conn.Name,
		Observer:   g.metrics,
		Logger:     g.a.log,
	})
	if err != nil {
		return refresh.Summary{}, err
	}
	syncer, err := refresh.New(client, g.store, refresh.Options{
		Connection: conn.Name,
		Types:      conn.Types,
		Workers:    conn.Workers,
		PageSize:   conn.PageSize,
		Logger:     g.a.log,
		Recorder:   g.metrics,
	})
	if err != nil {
		return refresh.Summary{}, err
	}
	sum, err := syncer.Run(ctx)
	g.mu.Lock()
	st := g.status[conn.Name]
	st.Name, st.BaseURL = conn.Name, conn.BaseURL
	if st.Vendor == "" {
		st.Vendor = "generic"
	}
	switch {
	case err != nil:
		st.State, st.Detail = "error", "The last sync could not run; see the logs."
	case sum.Errors > 0:
		st.State, st.Detail, st.LastSync = "degraded", fmt.Sprintf("%d fetches failed in the last sync.", sum.Errors), time.Now()
	default:
		st.State, st.Detail, st.LastSync = "ok", "", time.Now()
	}
	g.status[conn.Name] = st
	g.mu.Unlock()
	return sum, err
}

func (g *gateway) connectionStatus(context.Context) []dashboard.ConnectionStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]dashboard.ConnectionStatus, 0, len(g.status))
	for _, s := range g.status {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// serveHTTP serves the dashboard and metrics on addr until ctx ends.
func (g *gateway) serveHTTP(ctx context.Context, addr string, ready func()) error {
	dash := dashboard.New(g.store, dashboard.Options{
		Logger:    g.a.log,
		Status:    g.connectionStatus,
		RequestID: server.RequestIDFrom,
	})
	srv := server.New(server.Options{
		Dashboard: dash.Handler(),
		Gatherer:  g.reg,
		Logger:    g.a.log,
		Ready: func(ctx context.Context) error {
			_, err := g.store.Stats(ctx)
			return err
		},
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	if ready != nil {
		ready()
	}
	fmt.Fprintf(g.a.stdout, "dashboard: http://%s/  (metrics at /metrics)\n", ln.Addr())
	return srv.Serve(ctx, ln)
}

// scheduleSyncs re-syncs every connection every interval until ctx ends.
func (g *gateway) scheduleSyncs(ctx context.Context, conns []config.Connection, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range conns {
				if _, err := g.syncConnection(ctx, c); err != nil && ctx.Err() == nil {
					g.a.log.Error("scheduled sync failed", "connection", c.Name, "error", err)
				}
			}
		}
	}
}

func printSummary(w io.Writer, conn string, s refresh.Summary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	types := make([]string, 0, len(s.Resources))
	total := 0
	for t, n := range s.Resources {
		types = append(types, t)
		total += n
	}
	sort.Strings(types)
	fmt.Fprintf(w, "synced %s: %d patients, %d resources in %.1fs\n", conn, s.Patients, total, float64(s.DurationMS)/1000)
	for _, t := range types {
		fmt.Fprintf(w, "  %-20s %7d\n", t, s.Resources[t])
	}
	fmt.Fprintf(w, "new %d, updated %d, unchanged %d, errors %d, quarantined %d\n", s.New, s.Updated, s.Unchanged, s.Errors, s.Quarantined)
	return nil
}
