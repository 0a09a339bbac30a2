package ehrsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/backport"
)

// Topic-based Subscriptions (Subscriptions R5 Backport IG on R4,
// http://hl7.org/fhir/uv/subscriptions-backport/STU1.1/), as Epic offers
// them in recent versions.
//
// With SubscriptionOptions.Enabled the CapabilityStatement lists the
// simulator's one topic, TopicChartChange, on its Subscription resource, and
//
//	POST   /fhir/Subscription                  create (rest-hook; handshake before it answers)
//	GET    /fhir/Subscription/{id}             read, with the current status
//	GET    /fhir/Subscription/{id}/$status     the status (events-since-subscription-start)
//	GET    /fhir/Subscription/{id}/$events     past events by number (eventsSinceNumber, eventsUntilNumber)
//	DELETE /fhir/Subscription/{id}             stop it
//
// Every change of the change feed (RunChanges) in a patient's chart is an
// event, numbered per subscription from 1, delivered as a notification
// bundle to the subscription's endpoint with its channel header; a
// subscription asking for a heartbeat gets one each period without
// notifications. A subscription in error still numbers and keeps its events
// (for $events) but sends nothing. Notification faults (drop, duplicate,
// reorder, delay, wrong secret), stopped heartbeats and a subscription
// switched to error are knobs (SetNotificationFaults, StopHeartbeats,
// SetSubscriptionStatus).

// TopicChartChange is the simulator's SubscriptionTopic: any resource
// created or updated in a patient's compartment. Filters (one): patient
// ("Patient?_id=<id>" or "<Type>?patient=Patient/<id>") or, unless
// SubscriptionOptions.NoEncounterFilter, encounter
// ("<Type>?encounter=Encounter/<id>" or "Encounter?_id=<id>": the
// encounter and the resources whose encounter it is).
const TopicChartChange = "http://ehrgate.example/fhir/SubscriptionTopic/chart-change"

// SubscriptionOptions configure the simulator's Subscriptions. The zero
// value turns them off.
type SubscriptionOptions struct {
	Enabled bool
	// HeartbeatUnit is how long one second of a requested heartbeat period
	// lasts (default 1 s): tests run the heartbeat clock fast.
	HeartbeatUnit time.Duration
	// Client delivers notifications (default: 5 s timeout).
	Client *http.Client
	// Senders are the concurrent deliveries per subscription (default 4):
	// more than one already lets notifications overtake each other.
	Senders int
	// NoEvents leaves $events out (a server with $status only).
	NoEvents bool
	// NoEncounterFilter: the topic (and criteria) allow a patient filter
	// only; an encounter filter is refused (422 not-supported).
	NoEncounterFilter bool
	// ErrorAfter is how many deliveries in a row may fail, each after its
	// retries, before the subscription goes to error (default 5).
	ErrorAfter int
	// Criteria offers classic R4 Subscriptions by criteria instead of
	// topics (as Oracle Health's R4 API does): the CapabilityStatement
	// lists Subscription without topics or operations, a create is
	// answered active without a handshake, and each change of a resource
	// matching the criteria is PUT to endpoint/{type}/{id} (payload
	// application/fhir+json) or POSTed empty (no payload), with the
	// channel header. The notification faults apply; there are no event
	// numbers, heartbeats, $status or $events.
	Criteria bool
}

// NotifyFault is a fault injected into notification delivery.
type NotifyFault string

// The notification faults.
const (
	NotifyDrop        NotifyFault = "drop"         // the notification is never sent (its number is used)
	NotifyDuplicate   NotifyFault = "duplicate"    // sent twice
	NotifyReorder     NotifyFault = "reorder"      // held back and sent after the next one
	NotifyDelay       NotifyFault = "delay"        // sent after up to NotificationFaults.MaxDelay
	NotifyWrongSecret NotifyFault = "wrong-secret" // sent with another secret in the channel header
)

// AllNotifyFaults lists the notification faults.
var AllNotifyFaults = []NotifyFault{NotifyDrop, NotifyDuplicate, NotifyReorder, NotifyDelay, NotifyWrongSecret}

// ParseNotifyFault returns the notification fault named s.
func ParseNotifyFault(s string) (NotifyFault, error) {
	for _, k := range AllNotifyFaults {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown notification fault %q (want one of %v)", s, AllNotifyFaults)
}

// NotificationFaults configure notification faults: each event
// notification gets a fault with probability Rate, drawn uniformly from
// Kinds.
type NotificationFaults struct {
	Rate     float64
	Kinds    []NotifyFault
	MaxDelay time.Duration // of NotifyDelay (default 200 ms)
	Seed     uint64
}

// NotifyStats count notification deliveries since New.
type NotifyStats struct {
	Events    int64                 // events numbered, over all subscriptions
	Sent      int64                 // notifications answered 2xx (heartbeats and duplicates included)
	Failed    int64                 // deliveries that failed after their retries
	Heartbeat int64                 // heartbeats sent
	Faults    map[NotifyFault]int64 // faults injected
}

// simSub is one Subscription the simulator holds.
type simSub struct {
	id        string
	req       backport.SubscriptionRequest
	patient   string // filter; "" = every patient
	encounter string // filter; "" = every encounter
	heartbeat time.Duration
	queue     chan outgoing
	cancel    context.CancelFunc
	// crit is set on a classic R4 criteria subscription (req is then
	// unused): critType the type its criteria name.
	crit     *backport.CriteriaRequest
	critType string

	mu       sync.Mutex
	status   string
	events   []simEvent // events[i] is event number i+1
	held     []outgoing // a reordered notification waiting for the next one
	lastSent time.Time
	failures int
}

type simEvent struct {
	at   time.Time
	ref  string
	body []byte
}

type outgoing struct {
	body   []byte
	header string
	// method and path (appended to the endpoint) of a criteria
	// notification; POST to the endpoint itself when empty.
	method, path string
}

// subState is the server's Subscription side.
type subState struct {
	mu      sync.Mutex
	subs    map[string]*simSub
	seq     int
	faults  NotificationFaults
	rng     *rand.Rand
	noBeats atomic.Bool
	stats   struct {
		events, sent, failed, heartbeat atomic.Int64
		faults                          sync.Map // NotifyFault → *atomic.Int64
	}
}

// SetNotificationFaults sets the notification faults from now on.
func (s *Server) SetNotificationFaults(f NotificationFaults) {
	if f.MaxDelay <= 0 {
		f.MaxDelay = 200 * time.Millisecond
	}
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	s.subs.faults = f
	s.subs.rng = rand.New(rand.NewPCG(f.Seed, 0x5eed))
}

// StopHeartbeats stops (true) or resumes (false) every heartbeat.
func (s *Server) StopHeartbeats(stop bool) { s.subs.noBeats.Store(stop) }

// SetSubscriptionStatus switches a subscription to status (error, off,
// active), as a server does when it gives up on an endpoint; false when
// there is no such subscription.
func (s *Server) SetSubscriptionStatus(id, status string) bool {
	sub := s.subscription(id)
	if sub == nil {
		return false
	}
	sub.mu.Lock()
	sub.status = status
	sub.failures = 0
	sub.mu.Unlock()
	return true
}

// SubscriptionIDs returns the ids of the subscriptions held (any status).
func (s *Server) SubscriptionIDs() []string {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	var ids []string
	for id := range s.subs.subs {
		ids = append(ids, id)
	}
	return ids
}

// NotifyStats returns the notification counters.
func (s *Server) NotifyStats() NotifyStats {
	st := NotifyStats{Events: s.subs.stats.events.Load(), Sent: s.subs.stats.sent.Load(), Failed: s.subs.stats.failed.Load(),
		Heartbeat: s.subs.stats.heartbeat.Load(), Faults: map[NotifyFault]int64{}}
	s.subs.stats.faults.Range(func(k, v any) bool {
		st.Faults[k.(NotifyFault)] = v.(*atomic.Int64).Load()
		return true
	})
	return st
}

// CloseSubscriptions stops every subscription's deliveries and heartbeats.
func (s *Server) CloseSubscriptions() {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	for _, sub := range s.subs.subs {
		sub.cancel()
	}
}

func (s *Server) subscription(id string) *simSub {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	return s.subs.subs[id]
}

// subscriptionRoutes adds the Subscription endpoints to mux.
func (s *Server) subscriptionRoutes(mux *http.ServeMux) {
	if !s.opts.Subscriptions.Enabled {
		return
	}
	mux.HandleFunc("POST /fhir/Subscription", s.serveSubscribe)
	// GET /fhir/Subscription/{id} is answered by serveRead (a pattern of
	// its own would overlap GET /fhir/{type}/_search).
	mux.HandleFunc("DELETE /fhir/Subscription/{id}", s.serveUnsubscribe)
	mux.HandleFunc("GET /fhir/{type}/{id}/{op}", s.serveSubscriptionOp)
}

// serveSubscribe creates a Subscription: it checks the request, sends the
// handshake and answers 201 with the subscription active, or error when
// the handshake failed.
func (s *Server) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWriteBody))
	if err != nil {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "cannot read the request body")
		return
	}
	if s.opts.Subscriptions.Criteria {
		s.serveCriteriaSubscribe(w, r, body)
		return
	}
	_, _, req, err := backport.ParseSubscription(body)
	if err != nil {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "the body is not a Subscription this server accepts")
		return
	}
	if s.answerFault(w, s.takeFault(http.MethodPost)) { // InjectWriteFault applies to creates of Subscriptions too
		return
	}
	if req.Topic != TopicChartChange {
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "not-supported", "unknown SubscriptionTopic")
		return
	}
	switch req.Payload {
	case backport.PayloadEmpty, backport.PayloadIDOnly, backport.PayloadFullResource:
	default:
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "not-supported", "unknown payload content")
		return
	}
	if u, err := url.Parse(req.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "invalid", "the channel endpoint is not an absolute http(s) URL")
		return
	}
	patient, encounter, ok := topicFilter(req.Filter)
	if !ok || (encounter != "" && s.opts.Subscriptions.NoEncounterFilter) {
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "not-supported", "the filter is not supported by the topic")
		return
	}
	o := s.opts.Subscriptions
	unit := o.HeartbeatUnit
	if unit <= 0 {
		unit = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.subs.mu.Lock()
	if s.subs.subs == nil {
		s.subs.subs = map[string]*simSub{}
	}
	s.subs.seq++
	sub := &simSub{id: "sub-" + strconv.Itoa(s.subs.seq), req: req, patient: patient, encounter: encounter,
		heartbeat: time.Duration(req.Heartbeat/time.Second) * unit, queue: make(chan outgoing, 1<<16),
		cancel: cancel, status: backport.StatusRequested}
	s.subs.subs[sub.id] = sub
	s.subs.mu.Unlock()

	hs, err := s.statusBundle(sub, baseURL(r), backport.TypeHandshake, nil)
	if err == nil {
		err = s.post(ctx, sub, outgoing{body: hs, header: req.Header})
	}
	sub.mu.Lock()
	if err != nil {
		sub.status = backport.StatusError
	} else {
		sub.status = backport.StatusActive
		sub.lastSent = time.Now()
	}
	sub.mu.Unlock()
	for range max(o.Senders, 1) {
		go s.sendLoop(ctx, sub)
	}
	if sub.heartbeat > 0 {
		go s.heartbeatLoop(ctx, sub, baseURL(r))
	}
	w.Header().Set("Location", baseURL(r)+"/Subscription/"+sub.id)
	s.writeSubscription(w, http.StatusCreated, sub)
}

// topicFilter reads the patient or encounter a topic filter names ("" for
// none); ok=false for filters the topic does not support.
func topicFilter(f string) (patient, encounter string, ok bool) {
	if f == "" {
		return "", "", true
	}
	typ, q, _ := strings.Cut(f, "?")
	vals, err := url.ParseQuery(q)
	if err != nil {
		return "", "", false
	}
	return filterParams(typ, vals)
}

// filterParams reads one patient or encounter search parameter on typ.
func filterParams(typ string, vals url.Values) (patient, encounter string, ok bool) {
	if len(vals) != 1 {
		return "", "", len(vals) == 0
	}
	switch {
	case vals.Get("patient") != "":
		return strings.TrimPrefix(vals.Get("patient"), "Patient/"), "", true
	case vals.Get("subject") != "":
		return strings.TrimPrefix(vals.Get("subject"), "Patient/"), "", true
	case vals.Get("encounter") != "":
		return "", strings.TrimPrefix(vals.Get("encounter"), "Encounter/"), true
	case typ == "Patient" && vals.Get("_id") != "":
		return vals.Get("_id"), "", true
	case typ == "Encounter" && vals.Get("_id") != "":
		return "", vals.Get("_id"), true
	}
	return "", "", false
}

// matches reports whether change e is within sub's filter.
func (sub *simSub) matches(e *entry) bool {
	if sub.patient != "" && sub.patient != e.patient {
		return false
	}
	if sub.encounter == "" {
		return true
	}
	if e.typ == "Encounter" && e.id == sub.encounter {
		return true
	}
	for _, r := range e.refs["encounter"] {
		if r.typ == "Encounter" && r.id == sub.encounter {
			return true
		}
	}
	return false
}

func (s *Server) writeSubscription(w http.ResponseWriter, status int, sub *simSub) {
	var body []byte
	var err error
	if sub.crit != nil {
		body, err = sub.crit.Resource()
	} else {
		body, err = sub.req.Resource()
	}
	if err == nil {
		var m map[string]any
		if err = json.Unmarshal(body, &m); err == nil {
			sub.mu.Lock()
			m["id"], m["status"] = sub.id, sub.status
			sub.mu.Unlock()
			body, err = json.Marshal(m)
		}
	}
	if err != nil {
		fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "encoding the Subscription failed")
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) serveSubscriptionRead(w http.ResponseWriter, r *http.Request) {
	sub := s.subscription(r.PathValue("id"))
	if sub == nil {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "no such Subscription")
		return
	}
	s.writeSubscription(w, http.StatusOK, sub)
}

func (s *Server) serveUnsubscribe(w http.ResponseWriter, r *http.Request) {
	s.subs.mu.Lock()
	sub := s.subs.subs[r.PathValue("id")]
	delete(s.subs.subs, r.PathValue("id"))
	s.subs.mu.Unlock()
	if sub == nil {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "no such Subscription")
		return
	}
	sub.cancel()
	w.WriteHeader(http.StatusNoContent)
}

// serveSubscriptionOp answers $status and $events.
func (s *Server) serveSubscriptionOp(w http.ResponseWriter, r *http.Request) {
	sub := s.subscription(r.PathValue("id"))
	op := r.PathValue("op")
	switch {
	case r.PathValue("type") != "Subscription":
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "no FHIR endpoint at this path")
		return
	case op != backport.OperationStatus && (op != backport.OperationEvents || s.opts.Subscriptions.NoEvents):
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-supported", "unknown operation")
		return
	case sub == nil:
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "no such Subscription")
		return
	}
	var body []byte
	var err error
	if op == backport.OperationStatus {
		var st []byte
		if st, err = s.status(sub, backport.TypeQueryStatus, nil).Marshal(); err == nil {
			body, err = json.Marshal(fhir.Bundle{ResourceType: "Bundle", Type: "searchset",
				Entry: []fhir.BundleEntry{{FullURL: "urn:uuid:status", Resource: st, Search: &fhir.BundleSearch{Mode: "match"}}}})
		}
	} else {
		since, until, ok := eventRange(r.URL.Query())
		if !ok {
			fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "eventsSinceNumber and eventsUntilNumber must be positive integers")
			return
		}
		sub.mu.Lock()
		var nums []int64
		for n := max(since, 1); n <= min(until, int64(len(sub.events))); n++ {
			nums = append(nums, n)
		}
		sub.mu.Unlock()
		body, err = s.statusBundle(sub, baseURL(r), backport.TypeQueryEvent, nums)
	}
	if err != nil {
		fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "encoding the answer failed")
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(body)
}

func eventRange(q url.Values) (since, until int64, ok bool) {
	since, until = 1, 1<<62
	for name, p := range map[string]*int64{backport.ParamSinceNumber: &since, backport.ParamUntilNumber: &until} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				return 0, 0, false
			}
			*p = n
		}
	}
	return since, until, true
}

// status is sub's status of the given type listing events nums.
func (s *Server) status(sub *simSub, typ string, nums []int64) backport.Status {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	st := backport.Status{Subscription: "Subscription/" + sub.id, Topic: sub.req.Topic, Status: sub.status, Type: typ,
		EventsSinceStart: int64(len(sub.events))}
	for _, n := range nums {
		e := sub.events[n-1]
		ev := backport.Event{Number: n, Timestamp: e.at}
		if sub.req.Payload != backport.PayloadEmpty {
			ev.Focus = e.ref
		}
		st.Events = append(st.Events, ev)
	}
	return st
}

// statusBundle builds a notification bundle of sub's events nums, with the
// payload the subscription asked for.
func (s *Server) statusBundle(sub *simSub, base, typ string, nums []int64) ([]byte, error) {
	st := s.status(sub, typ, nums)
	var entries []backport.Entry
	if sub.req.Payload != backport.PayloadEmpty {
		sub.mu.Lock()
		for _, n := range nums {
			e := sub.events[n-1]
			ent := backport.Entry{Ref: e.ref}
			if sub.req.Payload == backport.PayloadFullResource {
				ent.Resource = e.body
			}
			entries = append(entries, ent)
		}
		sub.mu.Unlock()
	}
	return backport.Bundle(st, base, entries)
}

// notifyChange numbers an event for e on every subscription it matches and
// queues the notifications of the active ones, with faults. base is the
// FHIR base named in id-only payloads.
func (s *Server) notifyChange(e *entry, base string) {
	if e.patient == "" {
		return
	}
	s.subs.mu.Lock()
	subs := make([]*simSub, 0, len(s.subs.subs))
	for _, sub := range s.subs.subs {
		if sub.matches(e) {
			subs = append(subs, sub)
		}
	}
	s.subs.mu.Unlock()
	for _, sub := range subs {
		if sub.crit != nil {
			s.notifyCriteria(sub, e)
			continue
		}
		sub.mu.Lock()
		if sub.status != backport.StatusActive && sub.status != backport.StatusError {
			sub.mu.Unlock()
			continue
		}
		sub.events = append(sub.events, simEvent{at: e.lastUpdated, ref: e.typ + "/" + e.id, body: e.body})
		n := int64(len(sub.events))
		active := sub.status == backport.StatusActive
		sub.mu.Unlock()
		s.subs.stats.events.Add(1)
		if !active {
			continue
		}
		body, err := s.statusBundle(sub, base, backport.TypeEvent, []int64{n})
		if err != nil {
			s.log.Error("ehrsim: building a notification", "subscription", sub.id, "err", err)
			continue
		}
		s.enqueue(sub, outgoing{body: body, header: sub.req.Header})
	}
}

// enqueue queues a notification after drawing its fault.
func (s *Server) enqueue(sub *simSub, o outgoing) {
	fault := s.drawNotifyFault()
	if fault != "" {
		v, _ := s.subs.stats.faults.LoadOrStore(fault, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	sub.mu.Lock()
	held := sub.held
	sub.held = nil
	sub.mu.Unlock()
	send := func(o outgoing) {
		select {
		case sub.queue <- o:
		default:
			s.subs.stats.failed.Add(1) // queue full: lost like a drop
		}
	}
	switch fault {
	case NotifyDrop:
	case NotifyDuplicate:
		send(o)
		send(o)
	case NotifyReorder:
		sub.mu.Lock()
		sub.held = append(sub.held, o)
		sub.mu.Unlock()
	case NotifyDelay:
		s.subs.mu.Lock()
		d := time.Duration(s.subs.rng.Int64N(int64(s.subs.faults.MaxDelay) + 1))
		s.subs.mu.Unlock()
		time.AfterFunc(d, func() { send(o) })
	case NotifyWrongSecret:
		o.header = "Authorization: Bearer not-the-secret"
		send(o)
	default:
		send(o)
	}
	for _, h := range held {
		send(h)
	}
}

func (s *Server) drawNotifyFault() NotifyFault {
	s.subs.mu.Lock()
	defer s.subs.mu.Unlock()
	f := s.subs.faults
	if f.Rate <= 0 || len(f.Kinds) == 0 || s.subs.rng == nil {
		return ""
	}
	if s.subs.rng.Float64() >= f.Rate {
		return ""
	}
	return f.Kinds[s.subs.rng.IntN(len(f.Kinds))]
}

// sendLoop delivers sub's queued notifications until ctx ends.
func (s *Server) sendLoop(ctx context.Context, sub *simSub) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-sub.queue:
			sub.mu.Lock()
			active := sub.status == backport.StatusActive
			sub.mu.Unlock()
			if !active {
				continue
			}
			err := s.post(ctx, sub, o)
			sub.mu.Lock()
			if err != nil {
				s.subs.stats.failed.Add(1)
				sub.failures++
				if sub.failures >= s.errorAfter() && sub.status == backport.StatusActive {
					sub.status = backport.StatusError
				}
			} else {
				sub.failures = 0
				sub.lastSent = time.Now()
			}
			sub.mu.Unlock()
		}
	}
}

func (s *Server) errorAfter() int {
	if n := s.opts.Subscriptions.ErrorAfter; n > 0 {
		return n
	}
	return 5
}

// heartbeatLoop sends a heartbeat each period without notifications.
func (s *Server) heartbeatLoop(ctx context.Context, sub *simSub, base string) {
	t := time.NewTicker(sub.heartbeat / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sub.mu.Lock()
		due := sub.status == backport.StatusActive && time.Since(sub.lastSent) >= sub.heartbeat
		held := sub.held
		sub.held = nil
		sub.mu.Unlock()
		for _, h := range held { // a reordered notification waits no longer than a heartbeat
			sub.queue <- h
		}
		if !due || s.subs.noBeats.Load() {
			continue
		}
		body, err := s.statusBundle(sub, base, backport.TypeHeartbeat, nil)
		if err != nil {
			continue
		}
		if s.post(ctx, sub, outgoing{body: body, header: sub.req.Header}) == nil {
			s.subs.stats.heartbeat.Add(1)
			sub.mu.Lock()
			sub.lastSent = time.Now()
			sub.mu.Unlock()
		}
	}
}

// post sends one notification, trying three times.
func (s *Server) post(ctx context.Context, sub *simSub, o outgoing) error {
	client := s.opts.Subscriptions.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
			}
		}
		var req *http.Request
		method, endpoint := http.MethodPost, sub.req.Endpoint
		if sub.crit != nil {
			endpoint = strings.TrimSuffix(sub.crit.Endpoint, "/") + o.path
		}
		if o.method != "" {
			method = o.method
		}
		var body io.Reader
		if len(o.body) > 0 {
			body = bytes.NewReader(o.body)
		}
		req, err = http.NewRequestWithContext(ctx, method, endpoint, body)
		if err != nil {
			return err
		}
		if len(o.body) > 0 {
			req.Header.Set("Content-Type", contentType)
		}
		if name, value, ok := strings.Cut(o.header, ":"); ok {
			req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
		}
		var resp *http.Response
		resp, err = client.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			s.subs.stats.sent.Add(1)
			return nil
		}
		err = fmt.Errorf("endpoint answered %d", resp.StatusCode)
		if resp.StatusCode/100 == 4 {
			return err // refused: trying again does not help
		}
	}
	return err
}
