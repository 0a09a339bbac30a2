package subscriptions

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/backport"
	"ehrgate/refresh"
	"ehrgate/store"
)

// ErrNotSupported is returned by Start when the server offers no
// Subscriptions: no SubscriptionTopic (or not the one asked for) and no
// Subscription resource for criteria subscriptions.
var ErrNotSupported = errors.New("subscriptions: the server offers no Subscriptions")

// ErrFilterNotSupported is returned by Start when the server refuses the
// subscription's filter (the topic, or the criteria, do not allow it).
var ErrFilterNotSupported = errors.New("subscriptions: the server does not allow this filter")

// PatientFilter is the topic filter on one patient.
func PatientFilter(id string) string { return "Patient?_id=" + url.QueryEscape(id) }

// EncounterFilter is the topic filter on one encounter: the encounter and
// the resources whose encounter it is (where the topic allows it).
func EncounterFilter(id string) string { return "Encounter?_id=" + url.QueryEscape(id) }

// Modes of a Manager (Options.Mode, Health.Mode).
const (
	// ModeTopic: one topic-based subscription (R5 Backport IG on R4).
	ModeTopic = "topic"
	// ModeCriteria: classic R4 Subscriptions by criteria, one per chart
	// type, for servers that list Subscription but no topic.
	ModeCriteria = "criteria"
)

// Source is the connection's FHIR server (a *fhir.Client).
type Source interface {
	Capabilities(ctx context.Context) ([]byte, error)
	Read(ctx context.Context, typ, id string) (*fhir.Response, error)
	Search(ctx context.Context, typ string, q *fhir.Query) (*fhir.Bundle, error)
	SearchAll(ctx context.Context, typ string, q *fhir.Query, fn fhir.PageFunc) error
	Create(ctx context.Context, typ string, body []byte, ifNoneExist string) (*fhir.Response, error)
	Delete(ctx context.Context, typ, id string) error
}

// Store is what a Manager needs of the store.
type Store interface {
	store.Writer
	Get(ctx context.Context, connection, typ, id string) (store.Record, error)
	store.Documents
}

// Applied is one resource version a notification (or a recovery) stored.
type Applied struct {
	Ref       string // "Type/id"
	Version   string
	PatientID string
	Change    store.Change
	// EventTime is the notification event's timestamp (zero when
	// recovered without one); AppliedAt when it was stored.
	EventTime, AppliedAt time.Time
}

// Options configure a Manager.
type Options struct {
	Connection string // required
	Hub        *Hub   // required: where notifications arrive
	// Endpoint turns an endpoint path (NotifyPath + token) into the URL
	// the EHR posts to; required.
	Endpoint func(path string) string
	// Key derives each subscription's secret; it must stay the same across
	// restarts (else the subscription is re-created). Required, 16+ bytes.
	Key []byte
	// Mode is ModeTopic or ModeCriteria; "" picks topic-based when the
	// server lists a topic, else criteria when it lists Subscription.
	Mode    string
	Topic   string // default: the first topic the server lists
	Payload string // backport.PayloadFullResource (default), PayloadIDOnly or PayloadEmpty
	// Filter narrows the subscription: PatientFilter, EncounterFilter or
	// another topic filter ("Observation?encounter=Encounter/1"); "" for
	// every patient. In criteria mode a patient filter becomes
	// "Type?patient=ID" and an encounter filter "Type?encounter=Encounter/ID"
	// on the types that have that search parameter (the others are not
	// subscribed).
	Filter string
	// Heartbeat is the heartbeat period asked for (default 60 s, whole
	// seconds); HeartbeatWait how long silence lasts before the status is
	// checked (default twice Heartbeat).
	Heartbeat, HeartbeatWait time.Duration
	// GapWait is how long a missing event number may be late (reordered,
	// delayed) before it is recovered (default 2 s).
	GapWait time.Duration
	// Reconcile is, in criteria mode (no event numbers to find gaps by),
	// how often every type is refreshed by _lastUpdated since its last
	// good refresh (default 5 min). Subscription statuses are read every
	// HeartbeatWait.
	Reconcile time.Duration
	// Types are refreshed by _lastUpdated when events cannot be recovered
	// by $events (default refresh.ChartTypes).
	Types   []string
	Clock   func() time.Time
	Logger  *slog.Logger
	Applied func(Applied) // hears every stored change (events, metrics); must not block
}

// Stats count what a Manager did.
type Stats struct {
	Notifications int64 `json:"notifications"` // accepted notification bundles (heartbeats included)
	Heartbeats    int64 `json:"heartbeats"`
	Events        int64 `json:"events"`     // distinct event numbers taken
	Duplicates    int64 `json:"duplicates"` // notifications of events already taken
	Applied       int64 `json:"applied"`    // resource versions stored (new or updated)
	Unchanged     int64 `json:"unchanged"`  // versions already stored, not written again
	Stale         int64 `json:"stale"`      // versions older than stored: the server was asked
	Forged        int64 `json:"forged"`     // refused: wrong or missing secret
	Malformed     int64 `json:"malformed"`  // refused: not a notification, or another subscription's
	Recoveries    int64 `json:"recoveries"` // gap recoveries run
	Recovered     int64 `json:"recovered"`  // events taken from $events
	Refreshes     int64 `json:"refreshes"`  // recoveries by _lastUpdated (no $events)
	Recreated     int64 `json:"recreated"`  // subscriptions re-created (error, off, gone)
	Quarantined   int64 `json:"quarantined"`
	Errors        int64 `json:"errors"`
	Alerts        int64 `json:"alerts"`        // alerts raised (a subscription found in error, off or gone)
	Reconciled    int64 `json:"reconciled"`    // criteria mode: periodic reconciliations by _lastUpdated
	EmptyRefresh  int64 `json:"empty_refresh"` // criteria mode: refreshes run for empty notifications
}

// docKind is the Documents kind of a connection's subscription state.
const docKind = "subscription"

// state is what survives a restart.
type state struct {
	ID        string    `json:"id"`        // the server's Subscription id
	Token     string    `json:"token"`     // endpoint token
	Watermark int64     `json:"watermark"` // every event up to it is applied
	LastGood  time.Time `json:"lastGood"`  // the watermark event's time
	// Retired are earlier subscriptions still to catch up.
	Retired []retired `json:"retired,omitempty"`
	// Mode is ModeTopic ("" in states saved before criteria mode) or
	// ModeCriteria.
	Mode string `json:"mode,omitempty"`
	// Criteria are the criteria subscriptions, one per type.
	Criteria []criteriaSub `json:"criteria,omitempty"`
	// Pending is the token of a subscription being created: its
	// handshake comes before the server answers, on any replica.
	Pending string `json:"pending,omitempty"`
}

type retired struct {
	ID        string    `json:"id"`
	Watermark int64     `json:"watermark"`
	LastGood  time.Time `json:"lastGood"`
}

// Manager keeps one connection's subscription. Create it with New and run
// it with Run.
type Manager struct {
	src   Source
	st    Store
	o     Options
	log   *slog.Logger
	clock func() time.Time

	applyMu sync.Mutex // one application at a time: check-then-write is atomic for this connection

	mu         sync.Mutex
	s          state
	hasEvents  bool
	seen       map[int64]time.Time // taken numbers above the watermark, with their time
	highest    int64               // highest number known to exist
	marks      []mark              // highest as it was at each Check, for GapWait
	lastHeard  time.Time
	needStatus bool
	dirty      bool
	// leading: this Manager keeps the subscriptions (Start); otherwise it
	// follows (Follow): it takes notifications on the endpoints the
	// leader's saved state names and applies them, and never saves.
	leading atomic.Bool
	// retryAt is when to try re-creating a subscription again after a
	// failure (zero: healthy); backoff the wait after the next failure.
	retryAt time.Time
	backoff time.Duration

	lastStatus, lastReconcile time.Time            // criteria mode
	refreshing                map[string]*coalesce // criteria mode: a refresh of the type is running
	lastError                 string

	stats struct {
		notifications, heartbeats, events, duplicates, applied, unchanged, stale, forged, malformed,
		recoveries, recovered, refreshes, recreated, quarantined, errors, alerts, reconciled, emptyRefresh atomic.Int64
	}
}

// New returns a Manager.
func New(src Source, st Store, o Options) (*Manager, error) {
	switch {
	case o.Connection == "":
		return nil, errors.New("subscriptions: a connection name is required")
	case o.Hub == nil || o.Endpoint == nil:
		return nil, errors.New("subscriptions: a hub and an endpoint base are required")
	case len(o.Key) < 16:
		return nil, errors.New("subscriptions: a key of 16 bytes or more is required")
	}
	if o.Payload == "" {
		o.Payload = backport.PayloadFullResource
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Minute
	}
	if o.HeartbeatWait <= 0 {
		o.HeartbeatWait = 2 * o.Heartbeat
	}
	if o.GapWait <= 0 {
		o.GapWait = 2 * time.Second
	}
	if len(o.Types) == 0 {
		o.Types = refresh.ChartTypes
	}
	if o.Reconcile <= 0 {
		o.Reconcile = 5 * time.Minute
	}
	switch o.Mode {
	case "", ModeTopic, ModeCriteria:
	default:
		return nil, fmt.Errorf("subscriptions: mode %q: want %s or %s", o.Mode, ModeTopic, ModeCriteria)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{src: src, st: st, o: o, log: log.With("connection", o.Connection), clock: o.Clock,
		seen: map[int64]time.Time{}, refreshing: map[string]*coalesce{}}, nil
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	c := &m.stats
	return Stats{Notifications: c.notifications.Load(), Heartbeats: c.heartbeats.Load(), Events: c.events.Load(),
		Duplicates: c.duplicates.Load(), Applied: c.applied.Load(), Unchanged: c.unchanged.Load(), Stale: c.stale.Load(),
		Forged: c.forged.Load(), Malformed: c.malformed.Load(), Recoveries: c.recoveries.Load(), Recovered: c.recovered.Load(),
		Refreshes: c.refreshes.Load(), Recreated: c.recreated.Load(), Quarantined: c.quarantined.Load(), Errors: c.errors.Load(),
		Alerts: c.alerts.Load(), Reconciled: c.reconciled.Load(), EmptyRefresh: c.emptyRefresh.Load()}
}

// Health is a Manager's state for the connection page.
type Health struct {
	Mode         string // ModeTopic or ModeCriteria ("" before Start)
	Leading      bool   // this replica keeps the subscriptions (else it follows)
	Subscription string // topic mode: the server's id; criteria mode: the ids, comma-separated
	Healthy      bool   // false while a subscription cannot be re-created (polling)
	LastHeard    time.Time
	Watermark    int64  // topic mode: the last event number up to which all is applied
	LastError    string // the last failure, without patient data ("" for none)
	// LastReconcile is, in criteria mode, when every type was last
	// refreshed by _lastUpdated.
	LastReconcile time.Time
}

// Health returns the subscription's health.
func (m *Manager) Health() Health {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := Health{Mode: m.s.Mode, Leading: m.leading.Load(), Subscription: m.s.ID, Healthy: m.retryAt.IsZero(), LastHeard: m.lastHeard,
		Watermark: m.s.Watermark, LastError: m.lastError, LastReconcile: m.lastReconcile}
	if h.Mode == ModeCriteria {
		ids := make([]string, 0, len(m.s.Criteria))
		for _, c := range m.s.Criteria {
			ids = append(ids, c.ID)
		}
		h.Subscription = strings.Join(ids, ",")
	} else if h.Mode == "" && h.Subscription != "" {
		h.Mode = ModeTopic
	}
	return h
}

// SubscriptionID is the server's id of the current subscription ("" before
// Start).
func (m *Manager) SubscriptionID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s.ID
}

// Start checks that the server offers the topic, then takes up the
// subscription kept in the store (its status is checked at once: a
// restarted gateway catches up) or creates one. Run does the rest.
func (m *Manager) Start(ctx context.Context) error {
	capab, err := m.src.Capabilities(ctx)
	if err != nil {
		return fmt.Errorf("subscriptions: reading the CapabilityStatement of %s: %w", m.o.Connection, err)
	}
	topics := backport.Topics(capab)
	topicOK := len(topics) > 0 && (m.o.Topic == "" || slices.Contains(topics, m.o.Topic))
	mode := m.o.Mode
	switch {
	case mode != ModeCriteria && topicOK:
		mode = ModeTopic
	case mode != ModeTopic && m.o.Topic == "" && backport.OffersSubscription(capab):
		mode = ModeCriteria
	default:
		return ErrNotSupported
	}
	if mode == ModeTopic && m.o.Topic == "" {
		m.o.Topic = topics[0]
	}
	m.hasEvents = backport.HasOperation(capab, "events")
	s, err := m.loadState(ctx)
	if err != nil {
		return err
	}
	m.leading.Store(true)
	m.o.Hub.lead(m)
	if s.Mode == "" && s.ID != "" {
		s.Mode = ModeTopic
	}
	m.mu.Lock()
	if s.Mode != "" && s.Mode != mode {
		// The server changed what it offers: start over in the new mode
		// (the old subscriptions are left to expire on the server).
		m.log.WarnContext(ctx, "the EHR's Subscription support changed; subscribing again", "was", s.Mode, "now", mode)
		s = state{LastGood: s.LastGood}
	}
	m.s = s
	m.s.Mode = mode
	m.lastHeard = m.clock()
	m.resetLocked()
	m.mu.Unlock()
	if mode == ModeCriteria {
		return m.startCriteria(ctx)
	}
	if m.s.ID == "" {
		return m.create(ctx)
	}
	m.o.Hub.register(m.s.Token, m)
	m.mu.Lock()
	m.needStatus = true
	m.mu.Unlock()
	m.log.InfoContext(ctx, "subscription resumed", "subscription", m.s.ID, "watermark", m.s.Watermark)
	return nil
}

// resetLocked forgets what is known only in memory of the subscriptions'
// events (a new leader learns it again from the server).
func (m *Manager) resetLocked() {
	m.seen, m.highest, m.marks = map[int64]time.Time{}, 0, nil
	m.retryAt, m.backoff, m.needStatus = time.Time{}, 0, false
	m.dirty = false
}

// Leading reports whether this Manager keeps the subscriptions (Start)
// rather than following them (Follow).
func (m *Manager) Leading() bool { return m.leading.Load() }

// StepDown makes a leading Manager a follower: it stops saving the state
// at once (another replica now keeps it). Stop its Run, then call Follow.
func (m *Manager) StepDown() {
	m.leading.Store(false)
	m.mu.Lock()
	m.resetLocked()
	m.mu.Unlock()
}

// Follow makes m a follower, or keeps it one: it reads the state the
// leading replica keeps in the store and takes notifications on the
// endpoints it names (and the handshake of one being created): any replica
// may receive them. It applies them through the same path as the leader;
// the leader, which does not hear of them, finds their event numbers
// missing and recovers them from the server, where they are already
// stored (unchanged). Call it periodically on replicas that do not hold
// the lease; it does nothing on a leading Manager.
func (m *Manager) Follow(ctx context.Context) error {
	if m.leading.Load() {
		return nil
	}
	s, err := m.loadState(ctx)
	if err != nil {
		return err
	}
	if m.leading.Load() {
		return nil
	}
	m.o.Hub.follow(m)
	m.mu.Lock()
	old := m.s.tokens()
	if s.ID != m.s.ID || s.Mode != m.s.Mode {
		m.resetLocked()
	}
	if s.Mode == "" && s.ID != "" {
		s.Mode = ModeTopic
	}
	m.s = s
	now := s.tokens()
	m.mu.Unlock()
	for _, t := range now {
		m.o.Hub.register(t, m)
	}
	for _, t := range old {
		if !slices.Contains(now, t) {
			m.o.Hub.unregister(t, m)
		}
	}
	return nil
}

// authentic reports whether r carries token's secret: a notification
// of an endpoint this connection made (possibly on another replica).
func (m *Manager) authentic(r *http.Request, token string) bool {
	want := "Bearer " + m.secret(token)
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

// tokens are the endpoint tokens the state names.
func (s state) tokens() []string {
	var out []string
	for _, t := range []string{s.Token, s.Pending} {
		if t != "" {
			out = append(out, t)
		}
	}
	for _, c := range s.Criteria {
		out = append(out, c.Token)
	}
	return out
}

// Run watches the subscription until ctx ends: it recovers gaps, checks
// the status after a silence longer than HeartbeatWait, re-creates a
// subscription in error and catches up retired ones. Call Start first.
func (m *Manager) Run(ctx context.Context) {
	tick := min(m.o.GapWait, m.o.HeartbeatWait) / 4
	t := time.NewTicker(max(tick, 10*time.Millisecond))
	defer t.Stop()
	defer func() {
		m.save(context.WithoutCancel(ctx))
		if !m.leading.Load() {
			return // stepped down: it follows on the same endpoints
		}
		m.mu.Lock()
		tokens := m.s.tokens()
		m.mu.Unlock()
		for _, token := range tokens {
			m.o.Hub.unregister(token, m)
		}
	}()
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// mark is the highest event number known at a time.
type mark struct {
	at      time.Time
	highest int64
}

// Check does one round of Run's work.
func (m *Manager) Check(ctx context.Context) {
	now := m.clock()
	m.mu.Lock()
	if m.s.Mode == ModeCriteria {
		m.mu.Unlock()
		m.checkCriteria(ctx, now)
		m.save(ctx)
		return
	}
	if retry := m.retryAt; !retry.IsZero() {
		m.mu.Unlock()
		if now.After(retry) {
			m.poll(ctx, now)
			m.recreate(ctx)
		}
		m.save(ctx)
		return
	}
	needStatus := m.needStatus || now.Sub(m.lastHeard) >= m.o.HeartbeatWait
	m.needStatus = false
	// Numbers known to exist GapWait ago and still not taken are missing:
	// a reordered or delayed notification would have come by now.
	m.marks = append(m.marks, mark{now, m.highest})
	var due int64
	for len(m.marks) > 0 && now.Sub(m.marks[0].at) >= m.o.GapWait {
		due = m.marks[0].highest
		m.marks = m.marks[1:]
	}
	from, to := m.s.Watermark+1, due
	m.mu.Unlock()
	if needStatus {
		m.checkStatus(ctx)
		m.mu.Lock()
		m.lastHeard = now
		from, to = m.s.Watermark+1, m.highest
		m.mu.Unlock()
	}
	if to >= from {
		m.recover(ctx, from, to)
	}
	m.catchUpRetired(ctx)
	m.save(ctx)
}

// checkStatus asks the server for the subscription's status: a count ahead
// of the watermark opens a gap; error, off or an unknown subscription
// re-creates it.
func (m *Manager) checkStatus(ctx context.Context) {
	id := m.SubscriptionID()
	st, err := m.status(ctx, id)
	if err != nil && !errors.Is(err, fhir.ErrNotFound) {
		m.stats.errors.Add(1)
		m.log.WarnContext(ctx, "subscription status unavailable", "subscription", id, "error", err)
		return
	}
	if err == nil {
		m.sawCount(st.EventsSinceStart)
	}
	if err != nil || (st.Status != backport.StatusActive && st.Status != backport.StatusRequested) {
		m.recreate(ctx)
	}
}

func (m *Manager) status(ctx context.Context, id string) (backport.Status, error) {
	b, err := m.src.Search(ctx, "Subscription/"+id+"/"+backport.OperationStatus, nil)
	if err != nil {
		return backport.Status{}, err
	}
	for _, e := range b.Entry {
		if st, err := backport.ParseStatus(e.Resource); err == nil {
			return st, nil
		}
	}
	return backport.Status{}, errors.New("the $status answer holds no status")
}

// sawCount records that the server has produced count events: those not
// taken within GapWait are recovered.
func (m *Manager) sawCount(count int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.highest = max(m.highest, count)
}

// create makes a new subscription and registers its endpoint; the current
// one, if any, is retired (caught up later).
func (m *Manager) create(ctx context.Context) error {
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	req := backport.SubscriptionRequest{Topic: m.o.Topic, Filter: m.o.Filter, Endpoint: m.o.Endpoint(NotifyPath + token),
		Header: "Authorization: Bearer " + m.secret(token), Payload: m.o.Payload, Heartbeat: m.o.Heartbeat,
		Reason: "ehrgate keeps " + m.o.Connection + " current"}
	if req.Heartbeat < time.Second {
		req.Heartbeat = time.Second
	}
	body, err := req.Resource()
	if err != nil {
		return err
	}
	// Registered first: the server sends the handshake before it answers.
	// Saved as pending too: the handshake may reach another replica.
	m.o.Hub.register(token, m)
	m.mu.Lock()
	m.s.Pending, m.dirty = token, true
	m.mu.Unlock()
	m.save(ctx)
	resp, err := m.src.Create(ctx, "Subscription", body, "")
	m.mu.Lock()
	m.s.Pending, m.dirty = "", true
	m.mu.Unlock()
	if err != nil {
		m.o.Hub.unregister(token, m)
		if m.o.Filter != "" && errors.Is(err, fhir.ErrBadRequest) {
			err = fmt.Errorf("%w: %w", ErrFilterNotSupported, err)
		}
		return fmt.Errorf("subscriptions: creating the subscription on %s: %w", m.o.Connection, err)
	}
	id, status, _, err := backport.ParseSubscription(resp.Body)
	if err != nil || id == "" {
		m.o.Hub.unregister(token, m)
		return fmt.Errorf("subscriptions: the server's answer to the create on %s: %w", m.o.Connection, errors.Join(err, errors.New("no id")))
	}
	m.mu.Lock()
	old := m.s
	if old.ID != "" {
		m.s.Retired = append(m.s.Retired, retired{ID: old.ID, Watermark: old.Watermark, LastGood: old.LastGood})
		m.o.Hub.unregister(old.Token, m)
	}
	m.s.ID, m.s.Token, m.s.Watermark = id, token, 0
	if m.s.LastGood.IsZero() {
		m.s.LastGood = m.clock()
	}
	m.highest, m.seen, m.marks, m.lastHeard, m.dirty = 0, map[int64]time.Time{}, nil, m.clock(), true
	// Created in error (its handshake failed): checked, and re-created, at
	// the next Check rather than after a silence.
	m.needStatus = status == backport.StatusError || status == backport.StatusOff
	m.mu.Unlock()
	m.save(ctx)
	m.log.InfoContext(ctx, "subscription created", "subscription", id, "status", status, "payload", m.o.Payload)
	return nil
}

// recreate replaces the current subscription (in error, off or gone).
func (m *Manager) recreate(ctx context.Context) {
	if err := m.create(ctx); err != nil {
		m.stats.errors.Add(1)
		m.mu.Lock()
		m.backoff = min(max(2*m.backoff, m.o.HeartbeatWait), 5*time.Minute)
		m.retryAt = m.clock().Add(m.backoff)
		m.mu.Unlock()
		m.log.ErrorContext(ctx, "ALERT: the subscription is unhealthy and could not be re-created; polling until it is", "retry_in", m.backoff, "error", err)
		return
	}
	m.mu.Lock()
	m.retryAt, m.backoff = time.Time{}, 0
	m.mu.Unlock()
	m.stats.recreated.Add(1)
	m.log.WarnContext(ctx, "subscription re-created: the old one was in error, off or gone")
	m.catchUpRetired(ctx)
}

// catchUpRetired takes the events of retired subscriptions after their
// watermark, then deletes them on the server.
func (m *Manager) catchUpRetired(ctx context.Context) {
	m.mu.Lock()
	list := slices.Clone(m.s.Retired)
	m.mu.Unlock()
	for _, r := range list {
		if !m.catchUp(ctx, r) {
			continue
		}
		if err := m.src.Delete(ctx, "Subscription", r.ID); err != nil && !errors.Is(err, fhir.ErrNotFound) {
			m.log.WarnContext(ctx, "deleting a retired subscription", "subscription", r.ID, "error", err)
		}
		m.mu.Lock()
		m.s.Retired = slices.DeleteFunc(m.s.Retired, func(x retired) bool { return x.ID == r.ID })
		m.dirty = true
		m.mu.Unlock()
	}
}

// catchUp takes a retired subscription's events after its watermark.
func (m *Manager) catchUp(ctx context.Context, r retired) bool {
	st, err := m.status(ctx, r.ID)
	if err == nil && m.hasEvents && st.EventsSinceStart > r.Watermark {
		_, missing, err := m.fetchEvents(ctx, r.ID, r.Watermark+1, st.EventsSinceStart)
		if err == nil && len(missing) == 0 {
			return true
		}
	}
	if err == nil && st.EventsSinceStart <= r.Watermark {
		return true
	}
	// Without its events, everything changed since its last good event.
	return m.refreshSince(ctx, r.LastGood) == nil
}

// poll refreshes what changed since the last good event while the
// subscription is unhealthy; after it, everything up to start is had.
func (m *Manager) poll(ctx context.Context, start time.Time) {
	m.mu.Lock()
	since := m.s.LastGood
	m.mu.Unlock()
	if err := m.refreshSince(ctx, since); err != nil {
		m.stats.errors.Add(1)
		m.log.WarnContext(ctx, "polling while the subscription is unhealthy", "error", err)
		return
	}
	m.mu.Lock()
	if start.After(m.s.LastGood) {
		m.s.LastGood, m.dirty = start, true
	}
	m.mu.Unlock()
}

// recover takes events from..to of the current subscription that did not
// arrive, by $events or a refresh since the last good event.
func (m *Manager) recover(ctx context.Context, from, to int64) {
	m.stats.recoveries.Add(1)
	id := m.SubscriptionID()
	if m.hasEvents {
		_, missing, err := m.fetchEvents(ctx, id, from, to)
		if err == nil && len(missing) == 0 {
			return
		}
		if err != nil {
			m.log.WarnContext(ctx, "$events failed; refreshing instead", "subscription", id, "error", err)
		}
	}
	m.mu.Lock()
	since := m.s.LastGood
	m.mu.Unlock()
	if err := m.refreshSince(ctx, since); err != nil {
		m.stats.errors.Add(1)
		m.log.WarnContext(ctx, "recovery by refresh failed", "error", err)
		return
	}
	m.mu.Lock()
	for n := from; n <= to; n++ {
		if _, ok := m.seen[n]; !ok && n > m.s.Watermark {
			m.seen[n] = time.Time{}
		}
	}
	m.advanceLocked()
	m.mu.Unlock()
}

// fetchEvents applies subscription id's events from..to read by $events
// and returns the numbers the server did not return.
func (m *Manager) fetchEvents(ctx context.Context, id string, from, to int64) (int, []int64, error) {
	q := fhir.NewQuery().Set(backport.ParamSinceNumber, strconv.FormatInt(from, 10)).
		Set(backport.ParamUntilNumber, strconv.FormatInt(to, 10))
	b, err := m.src.Search(ctx, "Subscription/"+id+"/"+backport.OperationEvents, q)
	if err != nil {
		return 0, nil, err
	}
	n, err := backport.FromBundle(b)
	if err != nil {
		return 0, nil, err
	}
	current := id == m.SubscriptionID()
	got := map[int64]bool{}
	for i, ev := range n.Status.Events {
		var entries []backport.Entry
		if len(n.Status.Events) == len(n.Resources) {
			entries = n.Resources[i : i+1]
		} else {
			for _, r := range n.Resources {
				if r.Ref == ev.Focus {
					entries = append(entries, r)
				}
			}
		}
		if err := m.applyEvent(ctx, ev, entries, "subscription:"+id+"/$events"); err != nil {
			continue
		}
		got[ev.Number] = true
		m.stats.recovered.Add(1)
		if current {
			m.took(ev)
		}
	}
	var missing []int64
	for k := from; k <= to; k++ {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	return len(got), missing, nil
}

// loadState reads the state kept in the store (zero when there is none).
func (m *Manager) loadState(ctx context.Context) (state, error) {
	var s state
	d, err := m.st.GetDocument(ctx, docKind, m.o.Connection)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return s, fmt.Errorf("subscriptions: reading the state of %s: %w", m.o.Connection, err)
	default:
		if err := json.Unmarshal(d.Body, &s); err != nil {
			return s, fmt.Errorf("subscriptions: reading the state of %s: %w", m.o.Connection, err)
		}
	}
	return s, nil
}

// refreshSince reads, for every type, what changed since t (less a margin
// for clock skew) and stores it.
func (m *Manager) refreshSince(ctx context.Context, t time.Time) error {
	return m.refreshTypes(ctx, m.o.Types, t)
}

// refreshTypes reads, for each of types, what changed since t (less a
// margin for clock skew) and stores it.
func (m *Manager) refreshTypes(ctx context.Context, types []string, t time.Time) error {
	m.stats.refreshes.Add(1)
	since := t.Add(-time.Minute)
	for _, typ := range types {
		q := fhir.NewQuery().LastUpdated(fhir.GE, since).Count(200)
		err := m.src.SearchAll(ctx, typ, q, func(ctx context.Context, b *fhir.Bundle, pageURL string) error {
			for _, e := range b.Entry {
				if len(e.Resource) == 0 || (e.Search != nil && e.Search.Mode == "outcome") {
					continue
				}
				if err := m.applyResource(ctx, e.Resource, "refresh:"+typ, time.Time{}, true); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, fhir.ErrNotSupported) && !errors.Is(err, fhir.ErrNotFound) {
			return fmt.Errorf("refreshing %s since the last good event: %w", typ, err)
		}
	}
	return nil
}

// secret is the secret of the endpoint token: HMAC(Key, connection, token).
func (m *Manager) secret(token string) string {
	h := hmac.New(sha256.New, m.o.Key)
	h.Write([]byte(m.o.Connection))
	h.Write([]byte{0})
	h.Write([]byte(token))
	return hex.EncodeToString(h.Sum(nil))
}

// maxNotification bounds a notification body.
const maxNotification = 16 << 20

// serveNotification takes one notification on token's endpoint.
func (m *Manager) serveNotification(w http.ResponseWriter, r *http.Request, token, rest string) {
	if !m.authentic(r, token) {
		m.stats.forged.Add(1)
		fhir.WriteOutcome(w, http.StatusUnauthorized, "error", "security", "the notification is not authenticated")
		return
	}
	m.mu.Lock()
	criteria := m.s.Mode == ModeCriteria
	m.mu.Unlock()
	if criteria {
		m.serveCriteria(w, r, token, rest)
		return
	}
	if r.Method != http.MethodPost || rest != "" {
		m.stats.malformed.Add(1)
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "topic-based notifications are POSTed to the endpoint itself")
		return
	}
	body, read := m.readNotification(w, r)
	if !read {
		return
	}
	n, err := backport.ParseNotification(body)
	var current, handshake bool
	var subID string
	ours := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		current = token == m.s.Token
		handshake = err == nil && token == m.s.Pending && n.Status.Type == backport.TypeHandshake
		subID = m.s.ID
		return handshake || (err == nil && current && backport.SubscriptionID(n.Status.Subscription) == subID)
	}
	ok := ours()
	if !ok && err == nil && !m.leading.Load() {
		// A follower may not have read the leader's latest state yet.
		if ferr := m.Follow(r.Context()); ferr == nil {
			ok = ours()
		}
	}
	if !ok {
		m.stats.malformed.Add(1)
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "not a notification of this endpoint's subscription")
		return
	}
	m.stats.notifications.Add(1)
	m.mu.Lock()
	m.lastHeard = m.clock()
	m.mu.Unlock()
	switch n.Status.Type {
	case backport.TypeHandshake:
	case backport.TypeHeartbeat:
		m.stats.heartbeats.Add(1)
		m.sawCount(n.Status.EventsSinceStart)
	case backport.TypeEvent:
		m.sawCount(n.Status.EventsSinceStart)
		for _, ev := range n.Status.Events {
			if m.taken(ev.Number) {
				m.stats.duplicates.Add(1)
				continue
			}
			entries := n.Resources
			if len(n.Status.Events) > 1 {
				entries = nil
				for _, e := range n.Resources {
					if e.Ref == ev.Focus {
						entries = append(entries, e)
					}
				}
			}
			if err := m.applyEvent(r.Context(), ev, entries, "subscription:"+subID); err != nil {
				// Not taken: the gap recovery gets it.
				m.log.WarnContext(r.Context(), "applying a notification failed", "event", ev.Number, "error", err)
				continue
			}
			m.took(ev)
		}
	}
	if n.Status.Status == backport.StatusError || n.Status.Status == backport.StatusOff {
		m.mu.Lock()
		m.needStatus = true
		m.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// taken reports whether event number n of the current subscription was
// applied already.
func (m *Manager) taken(n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seen[n]
	return n <= m.s.Watermark || ok
}

// took marks ev of the current subscription applied.
func (m *Manager) took(ev backport.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[ev.Number]; ok || ev.Number <= m.s.Watermark {
		return
	}
	m.stats.events.Add(1)
	m.seen[ev.Number] = ev.Timestamp
	m.highest = max(m.highest, ev.Number)
	m.advanceLocked()
}

// advanceLocked moves the watermark over the taken numbers.
func (m *Manager) advanceLocked() {
	for {
		t, ok := m.seen[m.s.Watermark+1]
		if !ok {
			break
		}
		delete(m.seen, m.s.Watermark+1)
		m.s.Watermark++
		if !t.IsZero() {
			m.s.LastGood = t
		}
		m.dirty = true
	}
}

// applyEvent applies one event's payload: full resources as they came
// (read again when older than stored), id-only ones read from the server;
// an empty payload refreshes what changed since the last good event.
func (m *Manager) applyEvent(ctx context.Context, ev backport.Event, entries []backport.Entry, source string) error {
	if len(entries) == 0 {
		if ev.Focus != "" {
			entries = []backport.Entry{{Ref: ev.Focus}}
		} else {
			m.mu.Lock()
			since := m.s.LastGood
			m.mu.Unlock()
			return m.refreshSince(ctx, since)
		}
	}
	for _, e := range entries {
		raw := e.Resource
		if len(raw) == 0 {
			var err error
			if raw, err = m.read(ctx, e.Ref); err != nil {
				return err
			}
		}
		if err := m.applyResource(ctx, raw, source, ev.Timestamp, false); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) read(ctx context.Context, ref string) ([]byte, error) {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok || typ == "" || id == "" {
		return nil, fmt.Errorf("notification names %q, not a resource", ref)
	}
	resp, err := m.src.Read(ctx, typ, id)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", typ, err)
	}
	return resp.Body, nil
}

// applyResource stores one resource version through the sync's path,
// unless the store holds it or a newer one already; a version older than
// stored is checked against the server (fresh: it came from the server
// just now, do not ask again).
func (m *Manager) applyResource(ctx context.Context, raw []byte, source string, eventTime time.Time, fresh bool) error {
	now := m.clock()
	rec, err := refresh.NewRecord(m.o.Connection, raw, now, source)
	if err != nil {
		if rec.Type == "" {
			m.stats.malformed.Add(1)
			return nil
		}
		m.stats.quarantined.Add(1)
		return m.st.Quarantine(ctx, store.QuarantineItem{Connection: m.o.Connection, Type: rec.Type, ResourceID: rec.ID,
			Source: source, Reason: err.Error(), Raw: raw, ReceivedAt: now})
	}
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	cur, err := m.st.Get(ctx, m.o.Connection, rec.Type, rec.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reading stored %s: %w", rec.Type, err)
	default:
		switch c := compareVersions(rec, cur); {
		case c == 0:
			m.stats.unchanged.Add(1)
			return nil
		case c < 0 && fresh:
			m.stats.stale.Add(1)
			return nil
		case c < 0:
			m.stats.stale.Add(1)
			m.applyMu.Unlock()
			latest, err := m.read(ctx, rec.Type+"/"+rec.ID)
			if err == nil {
				err = m.applyResource(ctx, latest, "read:"+rec.Type, eventTime, true)
			}
			m.applyMu.Lock()
			return err
		}
	}
	changes, err := m.st.PutResources(ctx, []store.Record{rec})
	if err != nil {
		return fmt.Errorf("storing %s: %w", rec.Type, err)
	}
	if changes[0] == store.Unchanged {
		m.stats.unchanged.Add(1)
		return nil
	}
	m.stats.applied.Add(1)
	if m.o.Applied != nil {
		m.o.Applied(Applied{Ref: rec.Type + "/" + rec.ID, Version: rec.VersionID, PatientID: rec.PatientID,
			Change: changes[0], EventTime: eventTime, AppliedAt: m.clock()})
	}
	return nil
}

// compareVersions orders an incoming record against the stored one: by
// versionId when both are numbers, else by lastUpdated; 0 when they are
// the same version.
func compareVersions(in, cur store.Record) int {
	if in.VersionID != "" && in.VersionID == cur.VersionID {
		return 0
	}
	a, errA := strconv.ParseInt(in.VersionID, 10, 64)
	b, errB := strconv.ParseInt(cur.VersionID, 10, 64)
	if errA == nil && errB == nil {
		return cmpInt(a, b)
	}
	if !in.LastUpdated.IsZero() && !cur.LastUpdated.IsZero() {
		if c := in.LastUpdated.Compare(cur.LastUpdated); c != 0 {
			return c
		}
	}
	return 1 // unknown order: store it (the store keeps every version)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// save writes the state when it changed.
func (m *Manager) save(ctx context.Context) {
	if !m.leading.Load() {
		return // a follower never writes the leader's state
	}
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return
	}
	body, err := json.Marshal(m.s)
	m.dirty = false
	m.mu.Unlock()
	if err == nil {
		err = m.st.UpdateDocument(ctx, docKind, m.o.Connection, func([]byte) ([]byte, error) { return body, nil })
	}
	if err != nil && ctx.Err() == nil {
		m.stats.errors.Add(1)
		m.log.ErrorContext(ctx, "saving the subscription state", "error", err)
		m.mu.Lock()
		m.dirty = true
		m.mu.Unlock()
	}
}

// readNotification reads a notification's body, at most maxNotification
// bytes; a body it cannot read is refused (400) and counted as malformed.
func (m *Manager) readNotification(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxNotification+1))
	if err != nil || len(body) > maxNotification {
		m.stats.malformed.Add(1)
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "cannot read the notification")
		return nil, false
	}
	return body, true
}
