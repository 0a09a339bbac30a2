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
// subscribes on each connection whose EHR lists a SubscriptionTopic, takes
// the notifications at /subscriptions/notify/{token} and publishes each
// stored change as a "changed" event. The subscription key (the secrets of
// the notification endpoints derive from it) is kept sealed by the keyring
// in the store, so a restart keeps the subscriptions.
//
// One process takes the notifications: replicas sharing a store would each
// subscribe (their endpoints differ, so nothing is refused, but every
// change arrives once per replica).

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

// subscriptionRetry bounds the wait between attempts to subscribe.
const subscriptionRetry = time.Minute

// runSubscription subscribes on one connection, trying again while the
// EHR cannot be reached, and runs the manager until ctx ends. A connection
// whose EHR offers no topic is left to scheduled refresh.
func (g *Gateway) runSubscription(ctx context.Context, c config.Connection, o subscriptions.Options) {
	wait := 200 * time.Millisecond // the listener comes up meanwhile
	for {
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
		m, err := subscriptions.New(rt.Client, g.store, o)
		if err != nil {
			g.log.Error("subscriptions: not subscribed", "connection", c.Name, "error", err)
			return
		}
		err = m.Start(ctx)
		if errors.Is(err, subscriptions.ErrNotSupported) {
			g.log.Info("subscriptions: the EHR offers no topic-based Subscriptions; scheduled refresh only", "connection", c.Name)
			return
		}
		if err != nil {
			g.log.Warn("subscriptions: subscribing failed; trying again", "connection", c.Name, "error", err)
			continue
		}
		g.mu.Lock()
		if g.subs == nil {
			g.subs = map[string]*subscriptions.Manager{}
		}
		g.subs[c.Name] = m
		g.mu.Unlock()
		m.Run(ctx)
		return
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
