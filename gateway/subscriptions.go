package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"ehrgate/config"
	"ehrgate/events"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/subscriptions"
)

// Subscriptions: with events.subscriptions.base_url set, the gateway
// subscribes on each connection whose EHR lists a SubscriptionTopic
// (topic-based) or, without topics, the Subscription resource (classic R4
// criteria subscriptions, one per chart type), takes the notifications at
// /subscriptions/notify/{token} and publishes each
// stored change as a "changed" event. The subscription key (the secrets of
// the notification endpoints derive from it) is kept sealed by the keyring
// in the store, so a restart keeps the subscriptions.
//
// Replicas sharing a store share each connection's subscriptions: one
// leads by a lease, any takes notifications (runSubscription).

// docSubscriptionKey is the Documents kind of the sealed subscription key.
const docSubscriptionKey = "subscription-key"

// StartSubscriptions mounts the notification route when subscriptions
// are configured and, in the background (the EHR's handshake needs the
// gateway listening), subscribes on the configured connections and runs
// their managers until ctx ends (SubscriptionManagers lists them as they
// start); bus hears every stored change.
func (g *Gateway) StartSubscriptions(ctx context.Context, bus *events.Bus) error {
	sc := g.cfg.Events.Subscriptions
	if sc.BaseURL == "" {
		return nil
	}
	key, err := g.subscriptionKey(ctx)
	if err != nil {
		return err
	}
	hub := subscriptions.NewHub()
	g.Mount(server.Route{Pattern: "POST " + subscriptions.NotifyPath + "{token}", Access: server.Token,
		Serves:  "FHIR Subscription notifications from the EHRs (each endpoint's bearer secret checked by the handler)",
		Handler: hub})
	g.Mount(server.Route{Pattern: "PUT " + subscriptions.NotifyPath + "{token}/{type}/{id}", Access: server.Token,
		Serves:  "classic R4 criteria Subscription notifications from the EHRs, the resource PUT (each endpoint's bearer secret checked by the handler)",
		Handler: hub})
	base := strings.TrimSuffix(sc.BaseURL, "/")
	for _, c := range g.Connections() {
		if len(sc.Connections) > 0 && !slices.Contains(sc.Connections, c.Name) {
			continue
		}
		conn := c.Name
		o := subscriptions.Options{Connection: conn, Hub: hub, Key: key,
			Endpoint: func(path string) string { return base + path }, Payload: sc.Payload,
			Heartbeat: time.Duration(sc.Heartbeat), Types: c.Types, Logger: g.log,
			Applied: func(a subscriptions.Applied) {
				ev := events.Event{Kind: events.Changed, Connection: conn, Resources: []string{a.Ref + "/_history/" + a.Version}}
				if a.PatientID != "" {
					ev.PatientRef = "Patient/" + a.PatientID
				}
				bus.Publish(ev)
				if strings.HasPrefix(a.Ref, "Patient/") {
					g.kickIdentity()
				}
			}}
		go g.runSubscription(ctx, c, o)
	}
	return nil
}

// subscriptionRetry bounds the wait between attempts to subscribe;
// subscriptionTick is how often a replica renews (or tries to take) a
// connection's subscription lease and a follower reads the leader's state.
const (
	subscriptionRetry = time.Minute
	subscriptionTick  = 2 * time.Second
)

// runSubscription keeps one connection's subscriptions until ctx ends.
// Replicas on one store share them through a lease per connection
// ("subscriptions:NAME", events.AcquireLease): the holder leads (creates
// the subscriptions, checks heartbeats and statuses, recovers gaps and
// saves the state); the others follow (they take the notifications that
// reach them, on the endpoints the leader's saved state names, and apply
// them). A replica that loses the lease steps down; one that stops gives
// it up. A connection whose EHR offers no Subscriptions is left to
// scheduled refresh.
func (g *Gateway) runSubscription(ctx context.Context, c config.Connection, o subscriptions.Options) {
	wait := 200 * time.Millisecond // the listener comes up meanwhile
	var m *subscriptions.Manager
	for m == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, subscriptionRetry)
		rt, err := g.Runtime(ctx, c)
		if err != nil {
			g.log.Warn("subscriptions: connection unavailable", "connection", c.Name, "error", err)
			continue
		}
		if m, err = subscriptions.New(rt.Client, g.store, o); err != nil {
			g.log.Error("subscriptions: not subscribed", "connection", c.Name, "error", err)
			return
		}
	}
	lease, owner := "subscriptions:"+c.Name, g.leaseOwner()
	var stopRun func()
	var renewed, retryAt time.Time
	defer func() {
		if stopRun != nil {
			stopRun()
		}
		if err := events.ReleaseLease(context.WithoutCancel(ctx), g.store, lease, owner); err != nil {
			g.log.Warn("subscriptions: giving up the lease", "connection", c.Name, "error", err)
		}
	}()
	t := time.NewTicker(subscriptionTick)
	defer t.Stop()
	for {
		now := time.Now()
		ok, err := events.AcquireLease(ctx, g.store, lease, owner, leaseTTL, now)
		if err != nil && ctx.Err() == nil {
			g.log.Warn("subscriptions: renewing the lease", "connection", c.Name, "error", err)
			ok = m.Leading() && now.Sub(renewed) < leaseTTL/2 // keep leading through a short store hiccup
		} else if ok {
			renewed = now
		}
		switch {
		case ok && !m.Leading() && now.After(retryAt):
			err := m.Start(ctx)
			if errors.Is(err, subscriptions.ErrNotSupported) {
				m.StepDown()
				g.log.Info("subscriptions: the EHR offers no Subscriptions; scheduled refresh only", "connection", c.Name)
				return
			}
			if err != nil {
				m.StepDown()
				wait = min(2*wait, subscriptionRetry)
				retryAt = now.Add(wait)
				g.log.Warn("subscriptions: subscribing failed; trying again", "connection", c.Name, "error", err, "retry_in", wait)
				break
			}
			wait = 200 * time.Millisecond
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); m.Run(runCtx) }()
			stopRun = func() { cancel(); <-done }
			g.log.Info("subscriptions: this replica leads", "connection", c.Name, "mode", m.Health().Mode)
		case !ok && m.Leading():
			m.StepDown()
			stopRun()
			stopRun = nil
			g.log.Warn("subscriptions: another replica took the lead", "connection", c.Name)
		}
		if !m.Leading() {
			if err := m.Follow(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("subscriptions: following the leader's state", "connection", c.Name, "error", err)
			}
		}
		if m.Leading() || m.SubscriptionID() != "" || m.Health().Mode != "" {
			g.mu.Lock()
			if g.subs == nil {
				g.subs = map[string]*subscriptions.Manager{}
			}
			g.subs[c.Name] = m
			g.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SubscriptionManagers returns the running subscription managers by
// connection (none without events.subscriptions).
func (g *Gateway) SubscriptionManagers() map[string]*subscriptions.Manager {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.subs)
}

// subscriptionKey returns the subscription key, creating it (sealed by the
// keyring, in the store) on first use.
func (g *Gateway) subscriptionKey(ctx context.Context) ([]byte, error) {
	aad := secrets.AAD("subscriptions", "subscription-key")
	var key []byte
	err := g.store.UpdateDocument(ctx, docSubscriptionKey, "current", func(old []byte) ([]byte, error) {
		if old != nil {
			var s secrets.Sealed
			if err := json.Unmarshal(old, &s); err != nil {
				return nil, err
			}
			k, err := g.keyring.Open(s, aad)
			if err != nil {
				return nil, err
			}
			key = k
			return old, nil
		}
		key = make([]byte, 32)
		rand.Read(key)
		s, err := g.keyring.Seal(key, aad)
		if err != nil {
			return nil, err
		}
		return json.Marshal(s)
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: the subscription key: %w", err)
	}
	return key, nil
}
