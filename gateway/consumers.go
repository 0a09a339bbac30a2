package gateway

import (
	"context"
	"fmt"
	"sort"

	"ehrgate/dashboard"
	"ehrgate/server"
	"ehrgate/subscriptions"
)

// consumersRoutes are the event consumers page's routes (a dashboard page
// without patient data, for people who see operations).
func (g *Gateway) consumersRoutes(dash *dashboard.Dashboard) []server.Route {
	h := dash.Consumers(dashboard.ConsumersOptions{Load: g.EventConsumers})
	var out []server.Route
	for _, r := range dashboard.ConsumersRoutes {
		out = append(out, server.Route{Pattern: r.Pattern, Access: server.PatientData, Serves: r.Serves, Handler: h})
	}
	return out
}

// EventConsumers reads, from the store, each webhook's and app
// Subscription's position in the event log and failures (so every replica
// shows the deliverer's), and this replica's view of each connection's
// inbound Subscription. A failing consumer is tried again at the
// deliverer's next round (every webhookPoll).
func (g *Gateway) EventConsumers(ctx context.Context) (dashboard.EventConsumers, error) {
	var out dashboard.EventConsumers
	head, err := g.store.NewestEvent(ctx)
	if err != nil {
		return out, fmt.Errorf("reading the event log's head: %w", err)
	}
	out.Head = head
	if head > 0 {
		if evs, err := g.store.EventsSince(ctx, head-1, 1); err == nil && len(evs) == 1 {
			out.HeadAt = evs[0].Recorded
		}
	}
	g.mu.Lock()
	hooks, api := g.webhooks, g.appSubs
	g.mu.Unlock()
	if hooks != nil {
		hs, err := hooks.Health(ctx, g.store, g.store)
		if err != nil {
			return out, err
		}
		for _, h := range hs {
			c := dashboard.EventConsumer{Kind: "webhook", Name: h.Name, Behind: h.Behind(), OldestUndelivered: h.OldestUndelivered,
				Failures: h.Failures, LastError: h.LastError}
			if h.Failures > 0 {
				c.NextRetry = h.FailedAt.Add(webhookPoll)
			}
			out.Outgoing = append(out.Outgoing, c)
		}
	}
	if api != nil {
		ss, err := api.SubscriptionHealth(ctx)
		if err != nil {
			return out, err
		}
		for _, s := range ss {
			c := dashboard.EventConsumer{Kind: "app subscription", Name: s.ID, Client: s.Client, Status: s.Status,
				Behind: s.Behind(), OldestUndelivered: s.OldestUndelivered, Failures: s.Failures, LastError: s.LastError}
			if s.Failures > 0 && s.Status != "off" {
				c.NextRetry = s.FailedAt.Add(webhookPoll)
			}
			out.Outgoing = append(out.Outgoing, c)
		}
	}
	for name, m := range g.SubscriptionManagers() {
		out.Inbound = append(out.Inbound, dashboard.InboundSubscription{Connection: name, SubscriptionStatus: *subscriptionStatus(m)})
	}
	sort.Slice(out.Inbound, func(i, j int) bool { return out.Inbound[i].Connection < out.Inbound[j].Connection })
	return out, nil
}

// subscriptionStatus is what the dashboard shows of a connection's
// inbound Subscription.
func subscriptionStatus(m *subscriptions.Manager) *dashboard.SubscriptionStatus {
	h, st := m.Health(), m.Stats()
	return &dashboard.SubscriptionStatus{ID: h.Subscription, Mode: h.Mode, Leading: h.Leading, Healthy: h.Healthy,
		LastHeard: h.LastHeard, LastEvent: h.Watermark, Events: st.Events, Recovered: st.Recovered,
		Refused: st.Forged + st.Malformed, Errors: st.Errors, LastError: h.LastError, LastReconcile: h.LastReconcile}
}
