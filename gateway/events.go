package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"ehrgate/events"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/server"
)

// Events is the event bus with its running subscribers.
type Events struct {
	Bus      *events.Bus
	webhooks *events.Webhooks     // nil without hooks
	refresh  *events.RefreshQueue // nil without a refresher
	done     chan struct{}        // closed when ctx ends: ends SSE streams
}

// StartEvents starts the event bus with the configured webhooks and
// event-driven refresh of the FHIR connections named in refreshConns, and
// mounts the event routes (SSE stream, webhook delivery log), until ctx
// ends.
func (g *Gateway) StartEvents(ctx context.Context, refreshConns []string) (*Events, error) {
	var hooks []events.Webhook
	for i, w := range g.cfg.Events.Webhooks {
		secret := g.getenv(w.SecretEnv)
		if secret == "" {
			return nil, fmt.Errorf("events.webhooks[%d]: environment variable %s (the signing secret) is empty", i, w.SecretEnv)
		}
		h := events.Webhook{URL: w.URL, Secret: []byte(secret)}
		for _, k := range w.Kinds {
			h.Kinds = append(h.Kinds, events.Kind(k))
		}
		hooks = append(hooks, h)
	}
	refresher := events.RefresherFunc(g.refreshByEvent)
	if q := g.jobs.queue; q != nil {
		// Durable: a refresh survives this process; the same patient asked
		// again while waiting is one job.
		refresher = func(ctx context.Context, conn string, id fhir.Identifier) error {
			_, err := q.Enqueue(ctx, RefreshJob{Connection: conn, System: id.System, Value: id.Value})
			return err
		}
	}
	ev := g.newDurableEvents(ctx, hooks, refresher, refreshConns)
	for _, rt := range ev.Routes() {
		g.Mount(rt)
	}
	g.mu.Lock()
	g.bus = ev.Bus
	g.mu.Unlock()
	return ev, nil
}

// refreshByEvent refreshes, on connection conn, the patient an HL7 v2 event
// named by identifier (event-driven refresh).
func (g *Gateway) refreshByEvent(ctx context.Context, conn string, id fhir.Identifier) error {
	c, ok := g.Connection(conn)
	if !ok {
		return fmt.Errorf("event-driven refresh: no connection %q", conn)
	}
	rt, err := g.Runtime(ctx, c)
	if err != nil {
		return err
	}
	syncer, err := refresh.New(rt.Client, g.store, refresh.Options{Connection: c.Name, Types: c.Types,
		PageSize: rt.Adapter.PageSize(), Planner: rt.Adapter.Planner(), Logger: g.log, Recorder: nil})
	if err != nil {
		return err
	}
	return RefreshByIdentifier(ctx, rt.Client, func(ctx context.Context, pid string) error {
		_, err := syncer.Patient(ctx, pid)
		return err
	}, id)
}

// PatientSearcher is the part of a FHIR client an event-driven refresh
// needs (refresh.Source and *fhir.Client have it).
type PatientSearcher interface {
	SearchAll(ctx context.Context, typ string, q *fhir.Query, fn fhir.PageFunc) error
}

// RefreshByIdentifier is the body of an events.Refresher for one FHIR
// connection: it resolves identifier to the connection's Patient ids with
// Patient?identifier=<system>|<value> and refreshes each (normally one)
// with refreshPatient (e.g. a refresh.Syncer's Patient). A patient the EHR
// does not know is not an error: the HL7 feed may run ahead of it.
func RefreshByIdentifier(ctx context.Context, src PatientSearcher, refreshPatient func(ctx context.Context, patientID string) error, identifier fhir.Identifier) error {
	if identifier.Value == "" {
		return nil
	}
	token := identifier.Value
	if identifier.System != "" {
		token = identifier.System + "|" + identifier.Value
	}
	var ids []string
	err := src.SearchAll(ctx, "Patient", fhir.NewQuery().Set("identifier", token), func(ctx context.Context, b *fhir.Bundle, _ string) error {
		for _, e := range b.Entry {
			if e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match" {
				continue
			}
			if h, err := fhir.ParseHeader(e.Resource); err == nil && h.ResourceType == "Patient" && h.ID != "" {
				ids = append(ids, h.ID)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finding the patient by identifier: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := refreshPatient(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("refreshing patient %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// NewEvents creates a bus and runs its subscribers until ctx ends:
// webhooks when hooks are given, event-driven refresh of fhirConns when r
// is not nil.
func NewEvents(ctx context.Context, log *slog.Logger, hooks []events.Webhook, r events.Refresher, fhirConns []string) *Events {
	e := &Events{Bus: events.NewBus(events.BusOptions{}), done: make(chan struct{})}
	context.AfterFunc(ctx, func() { close(e.done) })
	if len(hooks) > 0 {
		e.webhooks = events.NewWebhooks(events.WebhookOptions{Hooks: hooks, Logger: log})
		e.Bus.Subscribe(e.webhooks)
		go e.webhooks.Run(ctx)
	}
	if r != nil && len(fhirConns) > 0 {
		e.refresh = events.NewRefreshQueue(r, events.RefreshOptions{Connections: fhirConns, Logger: log})
		e.Bus.Subscribe(e.refresh)
		go e.refresh.Run(ctx)
	}
	return e
}

// Routes are the event routes: the SSE stream and, with webhooks, their
// delivery log. Events name patients (by identifier), so both are patient
// data.
func (e *Events) Routes() []server.Route {
	rs := []server.Route{{Pattern: "GET /events/stream", Access: server.PatientData,
		Serves:  "the event stream (admissions, results: event kind and patient identifier)",
		Handler: events.SSEHandler(e.Bus, events.SSEOptions{Done: e.done})}}
	if e.webhooks != nil {
		rs = append(rs, server.Route{Pattern: "GET /events/webhooks", Access: server.PatientData,
			Serves: "webhook delivery log", Handler: e.webhooks.LogHandler()})
	}
	return rs
}

// Durable events: the bus writes every event to the store's event log
// before announcing it; webhooks are delivered from the log by whichever
// process on the store holds the delivery lease, each from its saved
// position; the log is trimmed past events.retention.
const (
	webhookPoll   = 500 * time.Millisecond
	leaseTTL      = 30 * time.Second
	trimEvery     = time.Hour
	defaultRetain = 7 * 24 * time.Hour
)

func (g *Gateway) newDurableEvents(ctx context.Context, hooks []events.Webhook, r events.Refresher, fhirConns []string) *Events {
	e := &Events{Bus: events.NewBus(events.BusOptions{Log: g.store, OnError: func(err error) {
		g.log.Error("an event could not be written to the event log; it was announced in this process only", "error", err)
	}}), done: make(chan struct{})}
	context.AfterFunc(ctx, func() { close(e.done) })
	owner := g.leaseOwner()
	if len(hooks) > 0 {
		e.webhooks = events.NewWebhooks(events.WebhookOptions{Hooks: hooks, Logger: g.log})
		g.mu.Lock()
		g.webhooks = e.webhooks
		g.mu.Unlock()
		go g.everyWhileLeased(ctx, "webhooks", owner, webhookPoll, func(ctx context.Context) {
			if _, err := e.webhooks.DeliverFromLog(ctx, g.store, g.store); err != nil {
				g.log.Warn("webhook delivery from the event log", "error", err)
			}
		})
	}
	// Apps' FHIR Subscriptions, from the same log, by the lease holder.
	go g.everyWhileLeased(ctx, "app-subscriptions", owner, webhookPoll, func(ctx context.Context) {
		g.mu.Lock()
		api := g.appSubs
		g.mu.Unlock()
		if api == nil {
			return
		}
		if _, err := api.DeliverSubscriptions(ctx); err != nil {
			g.log.Warn("app subscription delivery from the event log", "error", err)
		}
	})
	retain := time.Duration(g.cfg.Events.Retention)
	if retain <= 0 {
		retain = defaultRetain
	}
	go g.everyWhileLeased(ctx, "event-trim", owner, trimEvery, func(ctx context.Context) {
		if n, err := g.store.TrimEvents(ctx, time.Now().Add(-retain)); err != nil {
			g.log.Warn("trimming the event log", "error", err)
		} else if n > 0 {
			g.log.Info("event log trimmed", "events", n, "retention", retain)
		}
	})
	if r != nil && len(fhirConns) > 0 {
		e.refresh = events.NewRefreshQueue(r, events.RefreshOptions{Connections: fhirConns, Logger: g.log})
		e.Bus.Subscribe(e.refresh)
		go e.refresh.Run(ctx)
	}
	return e
}

// leaseOwner is this gateway's name on the store's leases: one per
// gateway (several may share a process).
func (g *Gateway) leaseOwner() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.owner == "" {
		host, _ := os.Hostname()
		var nonce [4]byte
		rand.Read(nonce[:])
		g.owner = fmt.Sprintf("%s-%d-%x", host, os.Getpid(), nonce)
	}
	return g.owner
}

// everyWhileLeased runs fn every interval until ctx ends, when this
// process holds (or takes) the named lease: one process on the store at a
// time.
func (g *Gateway) everyWhileLeased(ctx context.Context, name, owner string, every time.Duration, fn func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ok, err := events.AcquireLease(ctx, g.store, name, owner, leaseTTL, time.Now())
		if err != nil && ctx.Err() == nil {
			g.log.Warn("taking a lease", "lease", name, "error", err)
		}
		if ok {
			fn(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
