// Package subscriptions keeps ehrgate subscribed to the EHRs that offer
// topic-based FHIR Subscriptions (the Subscriptions R5 Backport IG on R4,
// package fhir/backport) and applies what they notify.
//
// A Manager runs one connection's subscription: it creates it (one
// notification endpoint and one secret each), takes notifications on the
// endpoint (a Hub routes them by the endpoint's token and refuses and
// counts anything unauthenticated or for an unknown subscription), and
// applies them through the same path as a sync (refresh.NewRecord: raw
// beside normalized, versions kept), reading id-only and empty payloads
// back through the connection's FHIR client. Event numbers are tracked:
// a gap that stays open longer than a reordered or delayed notification
// would, a missed heartbeat or a subscription in error triggers recovery
// ($events where the server has it, else a refresh by _lastUpdated since
// the last good event), and a subscription in error or off is re-created
// and the old one caught up. Duplicates and reordering are harmless: a
// version already stored is not written again and an older one never
// replaces a newer one.
//
// Servers that list Subscription without topics get classic R4 criteria
// Subscriptions instead, one per chart type (criteria.go): no handshake, no
// event numbers, gaps found by periodic reconciliation by _lastUpdated.
//
// Its state (subscription id, endpoint token, the event number up to which
// everything is applied) is kept in store.Documents, so a restarted
// gateway goes on with the same subscription and catches up what it missed
// while down; the secret is derived from Options.Key and never stored.
// Several replicas on one store run one Manager each: the one that Starts
// leads (the gateway elects it by a lease), the others Follow its saved
// state and take the notifications that reach them.
package subscriptions

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"ehrgate/fhir"
)

// NotifyPath is where a Hub is mounted; a subscription's endpoint is
// NotifyPath + its token.
const NotifyPath = "/subscriptions/notify/"

// Hub routes notifications to the Manager owning the endpoint token. It
// is safe for concurrent use.
type Hub struct {
	mu        sync.RWMutex
	byToken   map[string]*Manager
	followers map[*Manager]bool // asked to read the state again for an unknown endpoint
	unknown   atomic.Int64
}

// NewHub returns a hub with no endpoints.
func NewHub() *Hub { return &Hub{byToken: map[string]*Manager{}, followers: map[*Manager]bool{}} }

func (h *Hub) follow(m *Manager) {
	h.mu.Lock()
	h.followers[m] = true
	h.mu.Unlock()
}

func (h *Hub) lead(m *Manager) {
	h.mu.Lock()
	delete(h.followers, m)
	h.mu.Unlock()
}

// Unknown counts notifications refused because no subscription has their
// endpoint.
func (h *Hub) Unknown() int64 { return h.unknown.Load() }

func (h *Hub) register(token string, m *Manager) {
	h.mu.Lock()
	h.byToken[token] = m
	h.mu.Unlock()
}

func (h *Hub) unregister(token string, m *Manager) {
	h.mu.Lock()
	if h.byToken[token] == m {
		delete(h.byToken, token)
	}
	h.mu.Unlock()
}

// ServeHTTP takes POST NotifyPath{token} (topic-based notification
// bundles; criteria notifications, empty or carrying the resource) and PUT
// NotifyPath{token}/{type}/{id} (a criteria notification carrying the
// resource, as R4 rest-hook puts it): 200 when the notification was taken,
// 401 (counted by its Manager as forged) when the secret is wrong, 404
// (counted as unknown) when no subscription has the endpoint, 400 when it
// is not a notification of the endpoint's subscription.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, NotifyPath), "/")
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		fhir.WriteOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "notifications are POSTed (or PUT)")
		return
	}
	h.mu.RLock()
	m := h.byToken[token]
	var followers []*Manager
	if m == nil && token != "" {
		for f := range h.followers {
			followers = append(followers, f)
		}
	}
	h.mu.RUnlock()
	if len(followers) > 0 {
		// An endpoint the leading replica made since the followers last
		// read its state (a handshake comes before the create returns):
		// the follower whose secret it carries reads the state again. A
		// notification without one costs no store read.
		for _, f := range followers {
			if f.authentic(r, token) {
				if err := f.Follow(r.Context()); err != nil {
					f.log.WarnContext(r.Context(), "following the subscription state", "error", err)
				}
				break
			}
		}
		h.mu.RLock()
		m = h.byToken[token]
		h.mu.RUnlock()
	}
	if m == nil || token == "" {
		h.unknown.Add(1)
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "no subscription has this endpoint")
		return
	}
	m.serveNotification(w, r, token, rest)
}

var _ http.Handler = (*Hub)(nil)
