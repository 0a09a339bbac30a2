package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/config"
	"ehrgate/events"
	"ehrgate/fhir"
	"ehrgate/hl7/tofhir"
	"ehrgate/refresh"
)

// startGatewayEvents starts the event bus with the configured webhooks and
// event-driven refresh of the configured FHIR connections, and mounts the
// event routes (SSE stream, webhook delivery log) on the HTTP server.
func (g *gateway) startGatewayEvents(ctx context.Context, refreshConns []string) (*eventsRuntime, error) {
	var hooks []events.Webhook
	for i, w := range g.a.cfg.Events.Webhooks {
		secret := keysEnv(g.a.env)(w.SecretEnv)
		if secret == "" {
			return nil, fmt.Errorf("events.webhooks[%d]: environment variable %s (the signing secret) is empty", i, w.SecretEnv)
		}
		h := events.Webhook{URL: w.URL, Secret: []byte(secret)}
		for _, k := range w.Kinds {
			h.Kinds = append(h.Kinds, events.Kind(k))
		}
		hooks = append(hooks, h)
	}
	ev := startEvents(ctx, g.a.log, hooks, events.RefresherFunc(g.refreshByEvent), refreshConns)
	g.mu.Lock()
	if g.mounts == nil {
		g.mounts = map[string]http.Handler{}
	}
	for k, v := range ev.mounts() {
		g.mounts[k] = v
	}
	g.mu.Unlock()
	return ev, nil
}

// refreshByEvent refreshes, on connection conn, the patient an HL7 v2 event
// named by identifier (event-driven refresh).
func (g *gateway) refreshByEvent(ctx context.Context, conn string, id fhir.Identifier) error {
	c, ok := g.connectionByName(conn)
	if !ok {
		return fmt.Errorf("event-driven refresh: no connection %q", conn)
	}
	rt, err := g.runtime(ctx, c)
	if err != nil {
		return err
	}
	syncer, err := refresh.New(rt.client, g.store, refresh.Options{Connection: c.Name, Types: c.Types,
		PageSize: rt.adapter.PageSize(), Planner: rt.adapter.Planner(), Logger: g.a.log, Recorder: nil})
	if err != nil {
		return err
	}
	return refreshByIdentifier(ctx, rt.client, func(ctx context.Context, pid string) error {
		_, err := syncer.Patient(ctx, pid)
		return err
	}, id)
}

func (g *gateway) connectionByName(name string) (config.Connection, bool) {
	for _, c := range g.a.cfg.Connections {
		if c.Name == name {
			return c, true
		}
	}
	return config.Connection{}, false
}

// mllpFromConfig fills MLLP options from the configuration where the flags
// were not set.
func mllpFromConfig(cmd *cobra.Command, o *mllpOptions, c config.HL7) {
	set := func(flag string, dst *string, v string) {
		if !cmd.Flags().Changed(flag) && v != "" {
			*dst = v
		}
	}
	set("mllp-addr", &o.Addr, c.MLLPAddr)
	set("hl7-connection", &o.Connection, c.Connection)
	set("mllp-ack-mode", &o.AckMode, c.AckMode)
	set("mllp-tls-cert", &o.TLSCert, c.TLSCert)
	set("mllp-tls-key", &o.TLSKey, c.TLSKey)
	// Validate has checked the pattern and the zone.
	o.Feed = tofhir.Options{Authorities: c.Authorities, DefaultAuthority: c.DefaultAuthority,
		RequireAuthority: c.RequireAuthority, Placeholders: c.PlaceholderIdentifiers, Charset: c.Charset}
	if c.IdentifierPattern != "" {
		o.Feed.IdentifierPattern = regexp.MustCompile(c.IdentifierPattern)
	}
	if c.TimeZone != "" {
		o.Feed.Location, _ = time.LoadLocation(c.TimeZone)
	}
	o.KeepUnsupported = c.Unsupported == "keep"
}

// startMLLP runs the MLLP listener in the background. It returns a channel
// that yields the bound address once listening; a listener that cannot start
// is reported on errc.
func (g *gateway) startMLLP(ctx context.Context, o mllpOptions, ev *eventsRuntime, errc chan<- error) <-chan net.Addr {
	bound := make(chan net.Addr, 1)
	go func() {
		err := runMLLP(ctx, g.a.log, g.store, o, ev.bus, func(ad net.Addr) {
			fmt.Fprintf(g.a.stdout, "hl7 v2 mllp: %s (ack mode %s)\n", ad, o.AckMode)
			bound <- ad
		})
		if err != nil {
			errc <- err
		}
	}()
	return bound
}
