package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/backport"
)

// Criteria mode: classic R4 Subscriptions (no topic) for servers whose
// CapabilityStatement lists Subscription without SubscriptionTopics. One
// subscription per chart type, criteria "Type?patient=ID" when
// Options.Filter names a patient, else the type alone; channel rest-hook
// with the endpoint's secret in channel.header; payload
// application/fhir+json for PayloadFullResource, none otherwise. There is
// no handshake: the server answers the create.
//
// A notification carrying the resource is applied like any other (same
// path as a sync, idempotent by version); an empty one refreshes the type
// by _lastUpdated since its last good refresh (concurrent empty
// notifications of one type share one refresh). With no event numbers to
// find gaps by, every type is reconciled by _lastUpdated every
// Options.Reconcile, and each subscription's status is read every
// HeartbeatWait: one in error or off (or gone) raises an alert, is
// re-created and its type refreshed; while it cannot be re-created every
// check polls.

// criteriaSub is one criteria subscription of the state.
type criteriaSub struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Token string `json:"token"`
	// Since: every change of Type before it is applied (the start of the
	// last successful refresh of the type).
	Since time.Time `json:"since"`
}

// coalesce is a running refresh of one type; again asks it for one more
// round (an empty notification came meanwhile).
type coalesce struct{ again bool }

// encounterTypes are the chart types with an encounter search parameter
// (FHIR R4 search parameters of each resource).
var encounterTypes = map[string]bool{"Observation": true, "Condition": true, "MedicationRequest": true,
	"Procedure": true, "DiagnosticReport": true, "DocumentReference": true}

// criteriaTypes are the types subscribed in criteria mode: Options.Types,
// with an encounter filter only the encounter and the types that name it.
func (m *Manager) criteriaTypes() []string {
	if filterEncounter(m.o.Filter) == "" {
		return m.o.Types
	}
	var out []string
	for _, typ := range m.o.Types {
		if typ == "Encounter" || encounterTypes[typ] {
			out = append(out, typ)
		}
	}
	return out
}

// criteria returns the criteria of type typ's subscription.
func (m *Manager) criteria(typ string) string {
	patient, encounter := filterPatient(m.o.Filter), filterEncounter(m.o.Filter)
	switch {
	case encounter != "" && typ == "Encounter":
		return "Encounter?_id=" + url.QueryEscape(encounter)
	case encounter != "":
		return typ + "?encounter=" + url.QueryEscape("Encounter/"+encounter)
	case patient == "":
		return typ
	case typ == "Patient":
		return "Patient?_id=" + url.QueryEscape(patient)
	default:
		return typ + "?patient=" + url.QueryEscape(patient)
	}
}

// filterPatient is the patient id a topic filter ("Patient?_id=ID",
// "Type?patient=[Patient/]ID") names, "" for none.
func filterPatient(f string) string { return filterRef(f, "Patient", "patient") }

// filterEncounter is the encounter id a topic filter
// ("Encounter?_id=ID", "Type?encounter=[Encounter/]ID") names, "" for none.
func filterEncounter(f string) string { return filterRef(f, "Encounter", "encounter") }

// filterRef is the id of a typ resource that filter f names, by its
// reference parameter param ("X?param=[typ/]ID") or, for typ itself, by
// _id ("typ?_id=ID"); "" for none.
func filterRef(f, typ, param string) string {
	_, q, ok := strings.Cut(f, "?")
	if !ok {
		return ""
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return ""
	}
	if ref := v.Get(param); ref != "" {
		return strings.TrimPrefix(ref, typ+"/")
	}
	if strings.HasPrefix(f, typ+"?") {
		return v.Get("_id")
	}
	return ""
}

// startCriteria takes up the criteria subscriptions kept in the store
// (their statuses are read, and everything reconciled, at the first
// Check) and creates those missing.
func (m *Manager) startCriteria(ctx context.Context) error {
	m.mu.Lock()
	kept := map[string]bool{}
	for _, c := range m.s.Criteria {
		m.o.Hub.register(c.Token, m)
		kept[c.Type] = true
	}
	resumed := len(m.s.Criteria)
	m.needStatus = resumed > 0
	m.mu.Unlock()
	for _, typ := range m.criteriaTypes() {
		if kept[typ] {
			continue
		}
		if err := m.createCriteria(ctx, typ, time.Time{}); err != nil {
			m.save(ctx)
			return err
		}
	}
	m.mu.Lock()
	m.lastStatus, m.lastReconcile = m.clock(), m.clock()
	if resumed > 0 {
		m.lastReconcile = time.Time{} // catch up what changed while down
	}
	m.mu.Unlock()
	m.save(ctx)
	m.log.InfoContext(ctx, "criteria subscriptions ready", "resumed", resumed, "types", len(m.criteriaTypes()))
	return nil
}

// createCriteria creates typ's subscription and puts it in the state in
// place of the current one (deleted on the server); since is where its
// next refresh starts (zero: now).
func (m *Manager) createCriteria(ctx context.Context, typ string, since time.Time) error {
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	req := backport.CriteriaRequest{Criteria: m.criteria(typ), Endpoint: m.o.Endpoint(NotifyPath + token),
		Header: "Authorization: Bearer " + m.secret(token), Reason: "ehrgate keeps " + m.o.Connection + " current"}
	if m.o.Payload == backport.PayloadFullResource {
		req.Payload = backport.PayloadMIME
	}
	body, err := req.Resource()
	if err != nil {
		return err
	}
	m.o.Hub.register(token, m)
	resp, err := m.src.Create(ctx, "Subscription", body, "")
	if err != nil {
		m.o.Hub.unregister(token, m)
		if m.o.Filter != "" && errors.Is(err, fhir.ErrBadRequest) {
			err = fmt.Errorf("%w: %w", ErrFilterNotSupported, err)
		}
		return fmt.Errorf("subscriptions: creating the %s subscription on %s: %w", typ, m.o.Connection, err)
	}
	id, status, _, err := backport.ParseCriteriaSubscription(resp.Body)
	if err != nil || id == "" {
		m.o.Hub.unregister(token, m)
		return fmt.Errorf("subscriptions: the server's answer to the create on %s: %w", m.o.Connection, errors.Join(err, errors.New("no id")))
	}
	if since.IsZero() {
		since = m.clock()
	}
	m.mu.Lock()
	var old *criteriaSub
	for i := range m.s.Criteria {
		if m.s.Criteria[i].Type == typ {
			o := m.s.Criteria[i]
			old = &o
			m.s.Criteria = append(m.s.Criteria[:i], m.s.Criteria[i+1:]...)
			break
		}
	}
	m.s.Criteria = append(m.s.Criteria, criteriaSub{Type: typ, ID: id, Token: token, Since: since})
	m.dirty = true
	m.mu.Unlock()
	m.save(ctx) // at once: other replicas take its notifications
	if old != nil {
		m.o.Hub.unregister(old.Token, m)
		if err := m.src.Delete(ctx, "Subscription", old.ID); err != nil && !errors.Is(err, fhir.ErrNotFound) {
			m.log.WarnContext(ctx, "deleting a replaced subscription", "subscription", old.ID, "error", err)
		}
	}
	m.log.InfoContext(ctx, "criteria subscription created", "subscription", id, "type", typ, "status", status)
	return nil
}

// criteriaByToken returns the subscription whose endpoint has token.
func (m *Manager) criteriaByToken(token string) (criteriaSub, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.s.Criteria {
		if c.Token == token {
			return c, true
		}
	}
	return criteriaSub{}, false
}

// checkCriteria reads the statuses every HeartbeatWait (re-creating the
// unhealthy), polls while one cannot be re-created, and reconciles every
// Reconcile.
func (m *Manager) checkCriteria(ctx context.Context, now time.Time) {
	m.mu.Lock()
	retry := m.retryAt
	retryDue := !retry.IsZero() && now.After(retry)
	// While a re-creation failed, the next attempt waits for its backoff.
	statusDue := (m.needStatus || now.Sub(m.lastStatus) >= m.o.HeartbeatWait) && (retry.IsZero() || retryDue)
	reconcileDue := now.Sub(m.lastReconcile) >= m.o.Reconcile || retryDue
	if statusDue {
		m.needStatus, m.lastStatus = false, now
	}
	subs := append([]criteriaSub(nil), m.s.Criteria...)
	m.mu.Unlock()
	if statusDue || retryDue {
		healthy := true
		for _, c := range subs {
			if m.criteriaHealthy(ctx, c) {
				continue
			}
			if !m.recreateCriteria(ctx, c) {
				healthy = false
			}
		}
		m.mu.Lock()
		if healthy {
			m.retryAt, m.backoff = time.Time{}, 0
		}
		m.mu.Unlock()
	}
	if reconcileDue {
		m.stats.reconciled.Add(1)
		ok := true
		for _, c := range subs {
			if err := m.refreshCriteriaType(ctx, c.Type); err != nil {
				ok = false
				m.failed(ctx, "reconciling by _lastUpdated", err)
			}
		}
		if ok {
			m.mu.Lock()
			m.lastReconcile = now
			m.mu.Unlock()
		}
	}
}

// criteriaHealthy reads c's status: false when error, off or gone; a read
// that fails otherwise counts as healthy (tried again next time).
func (m *Manager) criteriaHealthy(ctx context.Context, c criteriaSub) bool {
	resp, err := m.src.Read(ctx, "Subscription", c.ID)
	if errors.Is(err, fhir.ErrNotFound) {
		return false
	}
	if err != nil {
		m.failed(ctx, "reading a subscription's status", err)
		return true
	}
	_, status, _, err := backport.ParseCriteriaSubscription(resp.Body)
	if err != nil {
		m.failed(ctx, "reading a subscription's status", err)
		return true
	}
	return status == backport.StatusActive || status == backport.StatusRequested
}

// recreateCriteria raises an alert for c (in error, off or gone),
// re-creates it and refreshes its type since its last good refresh; false
// when the re-creation failed (retried with backoff, polling meanwhile).
func (m *Manager) recreateCriteria(ctx context.Context, c criteriaSub) bool {
	m.stats.alerts.Add(1)
	m.log.ErrorContext(ctx, "ALERT: a criteria subscription is in error, off or gone; re-creating it and refreshing its type",
		"subscription", c.ID, "type", c.Type)
	if err := m.createCriteria(ctx, c.Type, c.Since); err != nil {
		m.failed(ctx, "re-creating a subscription", err)
		m.mu.Lock()
		m.backoff = min(max(2*m.backoff, m.o.HeartbeatWait), 5*time.Minute)
		m.retryAt = m.clock().Add(m.backoff)
		m.mu.Unlock()
		if err := m.refreshCriteriaType(ctx, c.Type); err != nil {
			m.failed(ctx, "polling while a subscription is unhealthy", err)
		}
		return false
	}
	m.stats.recreated.Add(1)
	if err := m.refreshCriteriaType(ctx, c.Type); err != nil {
		m.failed(ctx, "refreshing a re-created subscription's type", err)
	}
	return true
}

// failed counts and logs an error and keeps it for Health.
func (m *Manager) failed(ctx context.Context, what string, err error) {
	m.stats.errors.Add(1)
	m.mu.Lock()
	m.lastError = what + " failed"
	m.mu.Unlock()
	m.log.WarnContext(ctx, "subscriptions: "+what, "error", err)
}

// refreshCriteriaType refreshes typ by _lastUpdated since its last good
// refresh and moves that forward. A refresh of the type already running
// is asked for one more round instead (it then covers what the caller
// wanted).
func (m *Manager) refreshCriteriaType(ctx context.Context, typ string) error {
	m.mu.Lock()
	if c := m.refreshing[typ]; c != nil {
		c.again = true
		m.mu.Unlock()
		return nil
	}
	c := &coalesce{}
	m.refreshing[typ] = c
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.refreshing, typ)
		m.mu.Unlock()
	}()
	for {
		start := m.clock()
		var since time.Time
		m.mu.Lock()
		for _, s := range m.s.Criteria {
			if s.Type == typ {
				since = s.Since
			}
		}
		c.again = false
		m.mu.Unlock()
		if since.IsZero() {
			since = start
		}
		if err := m.refreshTypes(ctx, []string{typ}, since); err != nil {
			return err
		}
		m.mu.Lock()
		for i := range m.s.Criteria {
			if s := &m.s.Criteria[i]; s.Type == typ && start.After(s.Since) {
				s.Since, m.dirty = start, true
			}
		}
		again := c.again
		m.mu.Unlock()
		if !again {
			return nil
		}
	}
}

// serveCriteria takes one authenticated criteria notification: empty (a
// refresh of the type), or the resource (PUT to endpoint/{type}/{id} or
// POSTed to the endpoint; a Bundle of them is taken too).
func (m *Manager) serveCriteria(w http.ResponseWriter, r *http.Request, token, rest string) {
	sub, ok := m.criteriaByToken(token)
	if !ok {
		m.stats.malformed.Add(1)
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "not a notification of this endpoint's subscription")
		return
	}
	body, ok := m.readNotification(w, r)
	if !ok {
		return
	}
	resources, err := criteriaResources(body, sub.Type, rest)
	if err != nil {
		m.stats.malformed.Add(1)
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "not a notification of this endpoint's subscription: "+err.Error())
		return
	}
	m.stats.notifications.Add(1)
	now := m.clock()
	m.mu.Lock()
	m.lastHeard = now
	m.mu.Unlock()
	if len(resources) == 0 {
		m.stats.emptyRefresh.Add(1)
		if err := m.refreshCriteriaType(r.Context(), sub.Type); err != nil {
			m.failed(r.Context(), "refreshing for an empty notification", err)
			fhir.WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "the notification could not be applied; send it again")
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, raw := range resources {
		m.stats.events.Add(1)
		if err := m.applyResource(r.Context(), raw, "subscription:"+sub.ID, now, false); err != nil {
			m.failed(r.Context(), "applying a notification", err)
			fhir.WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "the notification could not be applied; send it again")
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// criteriaResources reads a criteria notification body: none when empty,
// else the resource (or a Bundle's resources), each of type typ; rest is
// the "{type}/{id}" a PUT names, checked against the resource.
func criteriaResources(body []byte, typ, rest string) ([]json.RawMessage, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil
	}
	h, err := fhir.ParseHeader(body)
	if err != nil {
		return nil, errors.New("the body is not a FHIR resource")
	}
	var out []json.RawMessage
	if h.ResourceType == "Bundle" {
		var b fhir.Bundle
		if err := json.Unmarshal(body, &b); err != nil {
			return nil, errors.New("the body is not a FHIR Bundle")
		}
		for _, e := range b.Entry {
			if len(e.Resource) > 0 {
				out = append(out, e.Resource)
			}
		}
	} else {
		out = []json.RawMessage{body}
		if rest != "" && rest != h.ResourceType+"/"+h.ID {
			return nil, errors.New("the path names another resource")
		}
	}
	for _, raw := range out {
		h, err := fhir.ParseHeader(raw)
		if err != nil || h.ResourceType != typ || h.ID == "" {
			return nil, fmt.Errorf("a resource that is not a %s with an id", typ)
		}
	}
	return out, nil
}
