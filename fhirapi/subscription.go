package fhirapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ehrgate/apiauth"
	"ehrgate/audit"
	"ehrgate/events"
	"ehrgate/fhir/backport"
	"ehrgate/smart"
	"ehrgate/store"
)

// Subscriptions for apps: topic-based FHIR Subscriptions on R4 as the
// Subscriptions R5 Backport IG (STU 1.1) defines them, on the one topic
// ehrgate lists in its CapabilityStatement (TopicPatientChart). An app
// whose token holds Subscription.c creates one with a rest-hook channel;
// ehrgate sends the handshake at once, then, from the durable event log
// (events.Log) and from the subscription's own position in it, one
// event-notification bundle per event about the filtered patient, numbered
// (eventsSinceSubscriptionStart) so that the app sees a gap, and
// heartbeats. A notification carries only resources the creating token's
// scopes allow; a patient/ token's subscription only ever concerns its
// patient. Subscription state is a document (docSubscription) in the
// store; delivery is at least once: an event is retried until the
// endpoint takes it, so an app that is down misses nothing, and $events
// answers the recent events again by number.

// TopicPatientChart is the SubscriptionTopic canonical of "a patient's
// chart changed": an event stored for the patient (admission, result,
// order, a resource changed on the EHR). Filter: patient.
const TopicPatientChart = "https://ehrgate.dev/fhir/SubscriptionTopic/patient-chart"

// docSubscription is the Documents kind of apps' subscriptions.
const docSubscription = "fhir-subscription"

// keptEvents is how many recent events a subscription keeps for $events.
const keptEvents = 1000

// EventLog is the durable event log subscriptions are delivered from
// (store.EventLog).
type EventLog interface {
	EventsSince(ctx context.Context, after int64, limit int) ([]store.StoredEvent, error)
	NewestEvent(ctx context.Context) (int64, error)
}

// subState is an app's subscription as stored.
type subState struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Client  string `json:"client"`
	// Patient is the creating token's patient (served id); Scopes its
	// scopes: what notifications may carry.
	Patient string   `json:"patient,omitempty"`
	Scopes  []string `json:"scopes"`
	Topic   string   `json:"topic"`
	Filter  string   `json:"filter,omitempty"`
	// FilterConn and FilterID are the filtered patient's connection and
	// source id ("" for every patient the scopes allow).
	FilterConn string `json:"filterConn,omitempty"`
	FilterID   string `json:"filterId,omitempty"`
	Endpoint   string `json:"endpoint"`
	Header     string `json:"header,omitempty"`
	Payload    string `json:"payload"`
	Heartbeat  int    `json:"heartbeat,omitempty"` // seconds
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"`
	// Cursor is the last log position examined; Count the events numbered
	// (eventsSinceSubscriptionStart); Delivered the last number the
	// endpoint took.
	Cursor    int64      `json:"cursor"`
	Count     int64      `json:"count"`
	Delivered int64      `json:"delivered"`
	Events    []subEvent `json:"events,omitempty"`
	LastSent  time.Time  `json:"lastSent"`
	// End is Subscription.end (zero: never): delivery stops after it and
	// the status is off. TokenID is the creating token's jti (revocation).
	End     time.Time `json:"end,omitzero"`
	TokenID string    `json:"tokenId,omitempty"`
	// Failures counts the notifications in a row the endpoint did not
	// take (reset when it takes one); FailedAt is the last one's time.
	Failures int       `json:"failures,omitempty"`
	FailedAt time.Time `json:"failedAt,omitzero"`
}

// subEvent is one numbered event: the resources it is about on a
// connection (source ids), those the scopes allowed when it was numbered.
type subEvent struct {
	N    int64     `json:"n"`
	Seq  int64     `json:"seq"`
	At   time.Time `json:"at"`
	Conn string    `json:"conn"`
	Refs []string  `json:"refs"`
}

func (s *subState) resource() ([]byte, error) {
	req := backport.SubscriptionRequest{Topic: s.Topic, Filter: s.Filter, Endpoint: s.Endpoint, Payload: s.Payload,
		Heartbeat: time.Duration(s.Heartbeat) * time.Second, Reason: "app subscription", End: s.End}
	raw, err := req.Resource() // the channel header is a secret: never echoed
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["id"], m["status"] = s.ID, s.Status
	if s.Error != "" {
		m["error"] = s.Error
	}
	return json.Marshal(m)
}

func (s *subState) principal() apiauth.Principal {
	p := apiauth.Principal{Subject: s.Subject, ClientID: s.Client, Patient: s.Patient}
	for _, t := range s.Scopes {
		if sc, err := smart.ParseScope(t); err == nil {
			p.Scopes = append(p.Scopes, sc)
		}
	}
	return p
}

// subscriptionRoutes are added to Routes when Options.Events is set.
func (a *API) subscriptionRoutes() []routeSpec {
	return []routeSpec{
		{"POST /fhir/Subscription", "create a topic-based Subscription, rest-hook (scope Subscription.c; notifications carry what the token's scopes allow; patient/ scopes: the token's patient only)", a.subCreate},
		{"GET /fhir/Subscription/{id}", "read a Subscription (the client that created it)", a.subRead},
		{"DELETE /fhir/Subscription/{id}", "delete a Subscription: delivery stops (the client that created it)", a.subDelete},
		{"GET /fhir/Subscription/{id}/$status", "a Subscription's status Parameters (the client that created it)", a.subStatus},
		{"GET /fhir/Subscription/{id}/$events", "a Subscription's recent events by number, as a bundle (the client that created it; its current scopes apply)", a.subEvents},
	}
}

type routeSpec struct {
	pattern, serves string
	fn              func(http.ResponseWriter, *http.Request)
}

func subAudit(c *call, code string, action audit.Action, id string) audit.Event {
	return audit.Event{Type: audit.TypeRest, Subtype: []audit.Coding{audit.Interaction(code)}, Action: action, Agent: c.agent,
		Resources: []audit.ResourceRef{{Type: "Subscription", ID: id}}}
}

func (a *API) subCreate(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	ev := subAudit(c, "create", audit.ActionCreate, "")
	if _, err := a.grantsFor(c, "Subscription", smart.PermCreate); err != nil {
		a.fail(c, ev, http.StatusForbidden, "forbidden", err.Error()+".")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		a.fail(c, ev, http.StatusBadRequest, "invalid", "The request body could not be read.")
		return
	}
	_, _, req, err := backport.ParseSubscription(raw)
	if err != nil {
		a.fail(c, ev, http.StatusBadRequest, "invalid", "Not a backport Subscription: "+err.Error()+".")
		return
	}
	if req.Topic != TopicPatientChart {
		a.fail(c, ev, http.StatusUnprocessableEntity, "not-supported", "Unknown topic; this server's topics are listed in its CapabilityStatement: "+TopicPatientChart+".")
		return
	}
	if u, err := url.Parse(req.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		a.fail(c, ev, http.StatusUnprocessableEntity, "invalid", "channel.endpoint must be an absolute http(s) URL.")
		return
	}
	switch req.Payload {
	case backport.PayloadEmpty, backport.PayloadIDOnly, backport.PayloadFullResource:
	default:
		a.fail(c, ev, http.StatusUnprocessableEntity, "invalid", "The payload content must be empty, id-only or full-resource.")
		return
	}
	s := &subState{Subject: c.who.Subject, Client: c.who.ClientID, Patient: c.who.Patient, Topic: req.Topic,
		Endpoint: req.Endpoint, Header: req.Header, Payload: req.Payload, Heartbeat: int(req.Heartbeat / time.Second),
		Status: backport.StatusRequested, End: req.End, TokenID: c.who.TokenID}
	if !s.End.IsZero() && !s.End.After(a.o.Now()) {
		a.fail(c, ev, http.StatusUnprocessableEntity, "invalid", "Subscription.end is in the past.")
		return
	}
	for _, sc := range c.who.Scopes {
		s.Scopes = append(s.Scopes, sc.String())
	}
	patient := c.who.Patient
	if req.Filter != "" {
		p, ok := filterPatient(req.Filter)
		if !ok {
			a.fail(c, ev, http.StatusUnprocessableEntity, "invalid", "The topic's only filter is patient (\"patient=Patient/ID\").")
			return
		}
		if c.who.Patient != "" && p != c.who.Patient {
			a.fail(c, ev, http.StatusForbidden, "forbidden", "A patient token may subscribe to its own patient only.")
			return
		}
		patient = p
	}
	if patient != "" {
		conn, id, ok := a.ns.Parse(patient)
		if !ok {
			a.fail(c, ev, http.StatusUnprocessableEntity, "invalid", "The filtered patient is not known.")
			return
		}
		s.FilterConn, s.FilterID, s.Filter = conn, id, "patient=Patient/"+patient
		ev.Patient = audit.PatientRef{Connection: conn, ID: id}
	}
	if s.Cursor, err = a.o.Events.NewestEvent(r.Context()); err != nil {
		a.o.Logger.ErrorContext(r.Context(), "subscription: reading the event log", "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The subscription could not be created.")
		return
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	s.ID = hex.EncodeToString(b[:])
	ev.Resources[0].ID = s.ID
	// The handshake (backport IG, "Handshake"): the endpoint must take it
	// for the subscription to become active; otherwise it is in error
	// and the handshake is retried by the deliverer.
	a.handshake(r.Context(), s)
	if err := a.saveSub(r.Context(), s); err != nil {
		a.o.Logger.ErrorContext(r.Context(), "subscription: saving", "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The subscription could not be created.")
		return
	}
	body, err := s.resource()
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The subscription could not be served.")
		return
	}
	c.w.Header().Set("Location", a.base(r)+"/Subscription/"+s.ID)
	a.succeed(c, ev, http.StatusCreated, body)
}

// filterPatient reads "patient=Patient/ID" (optionally "Type?" before it,
// and the reference with or without "Patient/").
func filterPatient(f string) (string, bool) {
	if _, q, ok := strings.Cut(f, "?"); ok {
		f = q
	}
	vals, err := url.ParseQuery(f)
	if err != nil || len(vals) != 1 || len(vals["patient"]) != 1 {
		return "", false
	}
	p := strings.TrimPrefix(vals["patient"][0], "Patient/")
	return p, p != "" && !strings.Contains(p, "/")
}

func (a *API) handshake(ctx context.Context, s *subState) {
	st := backport.Status{Subscription: "Subscription/" + s.ID, Topic: s.Topic, Status: s.Status, Type: backport.TypeHandshake}
	if err := a.notify(ctx, s, st, nil); err != nil {
		s.Status, s.Error = backport.StatusError, "handshake: "+err.Error()
		return
	}
	s.Status, s.Error = backport.StatusActive, ""
}

// notify posts one notification bundle to s's endpoint.
func (a *API) notify(ctx context.Context, s *subState, st backport.Status, entries []backport.Entry) error {
	body, err := backport.Bundle(st, a.publicBase(), entries)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	if k, v, ok := strings.Cut(s.Header, ":"); ok {
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	client := a.notifier
	resp, err := client.Do(req)
	if err != nil {
		return errors.New("the endpoint could not be reached") // the URL may carry secrets
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the endpoint answered %d", resp.StatusCode)
	}
	s.LastSent = a.o.Now()
	return nil
}

func (a *API) publicBase() string { return strings.TrimSuffix(a.o.BaseURL, "/") }

func (a *API) saveSub(ctx context.Context, s *subState) error {
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return a.o.Docs.UpdateDocument(ctx, docSubscription, s.ID, func([]byte) ([]byte, error) { return body, nil })
}

var errSubGone = errors.New("subscription deleted")

// updateSub saves s unless it was deleted meanwhile.
func (a *API) updateSub(ctx context.Context, s *subState) error {
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return a.o.Docs.UpdateDocument(ctx, docSubscription, s.ID, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errSubGone
		}
		return body, nil
	})
}

func (a *API) loadSub(ctx context.Context, id string) (*subState, error) {
	d, err := a.o.Docs.GetDocument(ctx, docSubscription, id)
	if err != nil {
		return nil, err
	}
	var s subState
	if err := json.Unmarshal(d.Body, &s); err != nil {
		return nil, fmt.Errorf("reading subscription %s: %w", id, err)
	}
	return &s, nil
}

// ownSub loads the caller's subscription {id}; it answers and returns nil
// when there is none (another client's is answered as unknown).
// beginOwnSub starts a call on the Subscription the path names (the
// caller's own; nil when the call has been answered already).
func (a *API) beginOwnSub(w http.ResponseWriter, r *http.Request, code string, action audit.Action) (*call, audit.Event, *subState) {
	c, ok := a.begin(w, r)
	if !ok {
		return nil, audit.Event{}, nil
	}
	ev := subAudit(c, code, action, r.PathValue("id"))
	return c, ev, a.ownSub(c, ev)
}

func (a *API) ownSub(c *call, ev audit.Event) *subState {
	id := c.r.PathValue("id")
	s, err := a.loadSub(c.r.Context(), id)
	if err == nil && (s.Client != c.who.ClientID || s.Subject != c.who.Subject) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, ev, http.StatusNotFound, "not-found", "Subscription/"+id+" is not known.")
		return nil
	}
	if err != nil {
		a.o.Logger.ErrorContext(c.r.Context(), "subscription: reading", "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The subscription could not be read.")
		return nil
	}
	return s
}

func (a *API) subRead(w http.ResponseWriter, r *http.Request) {
	c, ev, s := a.beginOwnSub(w, r, "read", audit.ActionRead)
	if s == nil {
		return
	}
	body, err := s.resource()
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The subscription could not be served.")
		return
	}
	a.succeed(c, ev, http.StatusOK, body)
}

func (a *API) subDelete(w http.ResponseWriter, r *http.Request) {
	c, ev, s := a.beginOwnSub(w, r, "delete", audit.ActionDelete)
	if s == nil {
		return
	}
	if _, err := a.o.Docs.DeleteDocument(r.Context(), docSubscription, s.ID); err != nil {
		a.o.Logger.ErrorContext(r.Context(), "subscription: deleting", "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The subscription could not be deleted.")
		return
	}
	a.succeed(c, ev, http.StatusNoContent, nil)
}

func (a *API) subStatus(w http.ResponseWriter, r *http.Request) {
	c, ev, s := a.beginOwnSub(w, r, "operation", audit.ActionExecute)
	if s == nil {
		return
	}
	st := backport.Status{Subscription: "Subscription/" + s.ID, Topic: s.Topic, Status: s.Status, Type: backport.TypeQueryStatus, EventsSinceStart: s.Count}
	body, err := backport.Bundle(st, a.base(r), nil)
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The status could not be served.")
		return
	}
	a.succeed(c, ev, http.StatusOK, searchset(body))
}

// searchset makes a notification bundle the searchset the $status and
// $events operations answer with.
func searchset(body []byte) []byte {
	return bytes.Replace(body, []byte(`"type":"history"`), []byte(`"type":"searchset"`), 1)
}

func (a *API) subEvents(w http.ResponseWriter, r *http.Request) {
	c, ev, s := a.beginOwnSub(w, r, "operation", audit.ActionExecute)
	if s == nil {
		return
	}
	since, until := int64(1), s.Count
	for name, dst := range map[string]*int64{backport.ParamSinceNumber: &since, backport.ParamUntilNumber: &until} {
		if v := r.URL.Query().Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				a.fail(c, ev, http.StatusBadRequest, "invalid", name+" must be a positive integer.")
				return
			}
			*dst = n
		}
	}
	var picked []subEvent
	for _, e := range s.Events {
		if e.N >= since && e.N <= until {
			picked = append(picked, e)
		}
	}
	// The caller's current token decides what the answer carries.
	st, entries, patient := a.renderEvents(r.Context(), c.who, s, picked, backport.TypeQueryEvent)
	ev.Patient = patient
	body, err := backport.Bundle(st, a.base(r), entries)
	if err != nil {
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The events could not be served.")
		return
	}
	a.succeed(c, ev, http.StatusOK, searchset(body))
}

// renderEvents builds the status and entries for evs, with the payload
// s asks for and only resources who's scopes allow.
func (a *API) renderEvents(ctx context.Context, who apiauth.Principal, s *subState, evs []subEvent, typ string) (backport.Status, []backport.Entry, audit.PatientRef) {
	st := backport.Status{Subscription: "Subscription/" + s.ID, Topic: s.Topic, Status: s.Status, Type: typ, EventsSinceStart: s.Count}
	var entries []backport.Entry
	var patient audit.PatientRef
	seen := map[string]bool{}
	for _, e := range evs {
		recs := a.visible(ctx, who, e.Conn, e.Refs)
		be := backport.Event{Number: e.N, Timestamp: e.At}
		if len(recs) > 0 && s.Payload != backport.PayloadEmpty {
			be.Focus = recs[0].Type + "/" + ServedID(recs[0].Connection, recs[0].ID)
		}
		st.Events = append(st.Events, be)
		if s.Payload == backport.PayloadEmpty {
			continue
		}
		for i := range recs {
			rec := &recs[i]
			ref := rec.Type + "/" + ServedID(rec.Connection, rec.ID)
			if seen[ref] {
				continue
			}
			seen[ref] = true
			patient = patientOf(rec)
			ent := backport.Entry{Ref: ref}
			if s.Payload == backport.PayloadFullResource {
				body, err := a.render(rec, nil, false)
				if err != nil {
					continue
				}
				ent.Resource = body
			}
			entries = append(entries, ent)
		}
	}
	return st, entries, patient
}

// visible reads the resources refs ("Type/id" on conn) and keeps those
// who's scopes allow.
func (a *API) visible(ctx context.Context, who apiauth.Principal, conn string, refs []string) []store.Record {
	c := &call{who: who}
	var out []store.Record
	for _, ref := range refs {
		typ, id, ok := strings.Cut(ref, "/")
		if !ok || !isServed(typ) {
			continue
		}
		g, err := a.grantsFor(c, typ, smart.PermRead)
		if err != nil {
			continue
		}
		rec, err := a.o.Store.Get(ctx, conn, typ, id)
		if err != nil {
			continue
		}
		if sub, err := decode(&rec); err == nil && g.allows(sub, a.o.Now()) {
			out = append(out, rec)
		}
	}
	return out
}

// DeliverSubscriptions brings every app subscription up to date: a
// pending handshake is retried; the events logged after a subscription's
// position that concern its patient and that its scopes allow are
// numbered and sent, one notification each, in log order; a subscription
// whose endpoint refuses stops there until the next call (nothing is
// skipped); one idle past its heartbeat period gets a heartbeat. It
// returns how many notifications were delivered. Only one process at a
// time should call it (events.AcquireLease).
func (a *API) DeliverSubscriptions(ctx context.Context) (int, error) {
	if a.o.Events == nil || a.o.Docs == nil {
		return 0, nil
	}
	ids, err := a.o.Docs.ListDocuments(ctx, docSubscription)
	if err != nil {
		return 0, fmt.Errorf("listing subscriptions: %w", err)
	}
	sent := 0
	var errs []error
	for _, id := range ids {
		n, err := a.deliverOne(ctx, id)
		sent += n
		if err != nil && !errors.Is(err, errSubGone) && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("subscription %s: %w", id, err))
		}
	}
	return sent, errors.Join(errs...)
}

func (a *API) deliverOne(ctx context.Context, id string) (int, error) {
	s, err := a.loadSub(ctx, id)
	if err != nil {
		return 0, err
	}
	if s.Status == backport.StatusOff {
		return 0, nil
	}
	if off, err := a.subOver(ctx, s); err != nil || off {
		return 0, err
	}
	if s.Status == backport.StatusError && s.Delivered == s.Count {
		a.handshake(ctx, s)
		if err := a.updateSub(ctx, s); err != nil || s.Status != backport.StatusActive {
			return 0, err
		}
	}
	who := s.principal()
	sent := 0
	for {
		// Number the events logged since the position (persisted before
		// sending, so a number is never given twice).
		if s.Delivered == s.Count {
			evs, err := a.o.Events.EventsSince(ctx, s.Cursor, 100)
			if err != nil {
				return sent, err
			}
			if len(evs) == 0 {
				break
			}
			for _, se := range evs {
				s.Cursor = se.Seq
				if e, ok := a.matchEvent(ctx, who, s, se); ok {
					s.Count++
					e.N = s.Count
					s.Events = append(s.Events, e)
					if len(s.Events) > keptEvents {
						s.Events = s.Events[len(s.Events)-keptEvents:]
					}
					break
				}
			}
			if err := a.updateSub(ctx, s); err != nil {
				return sent, err
			}
			if s.Delivered == s.Count {
				continue
			}
		}
		e := s.Events[len(s.Events)-1]
		st, entries, patient := a.renderEvents(ctx, who, s, []subEvent{e}, backport.TypeEvent)
		// Recorded before it leaves (fail closed, as every API access).
		if err := a.auditNotification(ctx, s, entries, patient); err != nil {
			return sent, err
		}
		if err := a.notify(ctx, s, st, entries); err != nil {
			s.Error = "notification " + strconv.FormatInt(e.N, 10) + ": " + err.Error()
			s.Failures, s.FailedAt = s.Failures+1, a.o.Now()
			_ = a.updateSub(ctx, s)
			return sent, nil // retried on the next call
		}
		s.Delivered, s.Error, s.Failures = e.N, "", 0
		if err := a.updateSub(ctx, s); err != nil {
			return sent, err
		}
		sent++
	}
	if s.Heartbeat > 0 && s.Status == backport.StatusActive && a.o.Now().Sub(s.LastSent) >= time.Duration(s.Heartbeat)*time.Second {
		st := backport.Status{Subscription: "Subscription/" + s.ID, Topic: s.Topic, Status: s.Status, Type: backport.TypeHeartbeat, EventsSinceStart: s.Count}
		if a.notify(ctx, s, st, nil) == nil {
			return sent, a.updateSub(ctx, s)
		}
	}
	return sent, nil
}

// SubscriptionHealth is an app subscription's delivery state, for the
// dashboard: no patient data (no filter, no payload).
type SubscriptionHealth struct {
	ID, Client, Status string
	// Position is the last event of the log it has taken or passed over
	// (not its patient's, or nothing its scopes allow); Head the log's
	// newest; OldestUndelivered when the first event after Position was
	// recorded (zero: up to date).
	Position, Head    int64
	OldestUndelivered time.Time
	Numbered          int64 // events numbered (eventsSinceSubscriptionStart)
	Delivered         int64 // the last number the endpoint took
	Failures          int   // notifications in a row not taken
	LastError         string
	FailedAt          time.Time
	LastSent          time.Time
}

// Behind is how many events of the log the subscription has not been
// brought past yet.
func (h SubscriptionHealth) Behind() int64 { return max(h.Head-h.Position, 0) }

// SubscriptionHealth reports every app subscription's delivery state, by
// id.
func (a *API) SubscriptionHealth(ctx context.Context) ([]SubscriptionHealth, error) {
	if a.o.Events == nil || a.o.Docs == nil {
		return nil, nil
	}
	head, err := a.o.Events.NewestEvent(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the event log's head: %w", err)
	}
	ids, err := a.o.Docs.ListDocuments(ctx, docSubscription)
	if err != nil {
		return nil, fmt.Errorf("listing subscriptions: %w", err)
	}
	var out []SubscriptionHealth
	for _, id := range ids {
		s, err := a.loadSub(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h := SubscriptionHealth{ID: s.ID, Client: s.Client, Status: s.Status, Position: s.Cursor, Head: head,
			Numbered: s.Count, Delivered: s.Delivered, Failures: s.Failures, LastError: s.Error, FailedAt: s.FailedAt, LastSent: s.LastSent}
		if s.Delivered < s.Count && len(s.Events) > 0 {
			h.Position = s.Events[len(s.Events)-1].Seq - 1 // numbered, not taken yet
		}
		if s.Status != backport.StatusOff {
			if h.OldestUndelivered, err = events.OldestAfter(ctx, a.o.Events, h.Position); err != nil {
				return nil, err
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// subOver switches s off (and saves it) when it has ended
// (Subscription.end) or the app's authorization is gone (its client
// removed or its token revoked: Options.Authorized).
func (a *API) subOver(ctx context.Context, s *subState) (bool, error) {
	switch {
	case !s.End.IsZero() && !a.o.Now().Before(s.End):
		s.Error = "the subscription ended (Subscription.end)"
	case a.o.Authorized != nil:
		ok, err := a.o.Authorized(ctx, s.Client, s.TokenID)
		if err != nil {
			return false, fmt.Errorf("checking the app's authorization: %w", err)
		}
		if ok {
			return false, nil
		}
		s.Error = "the app's authorization was revoked or its client removed"
	default:
		return false, nil
	}
	s.Status = backport.StatusOff
	a.o.Logger.InfoContext(ctx, "app subscription switched off", "subscription", s.ID, "reason", s.Error)
	return true, a.updateSub(ctx, s)
}

// matchEvent reports whether a logged event concerns s's patient (and,
// for a patient/ token, its patient) and has something the scopes allow.
func (a *API) matchEvent(ctx context.Context, who apiauth.Principal, s *subState, se store.StoredEvent) (subEvent, bool) {
	var e events.Event
	if json.Unmarshal(se.Body, &e) != nil || e.PatientRef == "" {
		return subEvent{}, false
	}
	if _, served := a.o.Connections[e.Connection]; !served {
		return subEvent{}, false
	}
	if s.FilterID != "" && (e.Connection != s.FilterConn || e.PatientRef != "Patient/"+s.FilterID) {
		return subEvent{}, false
	}
	refs := e.Resources
	if len(refs) == 0 {
		refs = []string{e.PatientRef}
	}
	if len(a.visible(ctx, who, e.Connection, refs)) == 0 {
		return subEvent{}, false // nothing the token may see: not its event
	}
	at := se.Recorded
	if at.IsZero() {
		at = e.Time
	}
	return subEvent{Seq: se.Seq, At: at, Conn: e.Connection, Refs: refs}, true
}

// auditNotification records the disclosure of a notification's resources.
func (a *API) auditNotification(ctx context.Context, s *subState, entries []backport.Entry, patient audit.PatientRef) error {
	if len(entries) == 0 {
		return nil
	}
	if a.o.Audit == nil {
		return errors.New("no audit trail")
	}
	ev := audit.Event{Type: audit.TypeRest, Subtype: []audit.Coding{audit.Interaction("operation")}, Action: audit.ActionRead,
		Agent: audit.Agent{UserID: s.Subject, ClientID: s.Client}, Patient: patient, Outcome: audit.OutcomeSuccess}
	for _, e := range entries {
		typ, id, _ := strings.Cut(e.Ref, "/")
		if conn, src, ok := a.ns.Parse(id); ok {
			ev.Resources = append(ev.Resources, audit.ResourceRef{Connection: conn, Type: typ, ID: src})
		}
	}
	if err := a.o.Audit.Record(ctx, ev); err != nil {
		return fmt.Errorf("recording a notification in the audit trail: %w", err)
	}
	return nil
}
