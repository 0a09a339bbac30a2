package ehrsim

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"ehrgate/fhir"
	"ehrgate/fhir/backport"
)

// serveCriteriaSubscribe creates a classic R4 criteria Subscription
// (SubscriptionOptions.Criteria): active at once, no handshake.
func (s *Server) serveCriteriaSubscribe(w http.ResponseWriter, r *http.Request, body []byte) {
	_, _, req, err := backport.ParseCriteriaSubscription(body)
	if err != nil {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "the body is not a Subscription this server accepts")
		return
	}
	if s.answerFault(w, s.takeFault(http.MethodPost)) {
		return
	}
	switch req.Payload {
	case "", backport.PayloadMIME, "application/json+fhir", "application/json":
	default:
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "not-supported", "unknown channel payload")
		return
	}
	if u, err := url.Parse(req.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "invalid", "the channel endpoint is not an absolute http(s) URL")
		return
	}
	typ, q, _ := backport.ParseCriteria(req.Criteria)
	patient, encounter, ok := filterParams(typ, q)
	if !ok || (encounter != "" && s.opts.Subscriptions.NoEncounterFilter) {
		fhir.WriteOutcome(w, http.StatusUnprocessableEntity, "error", "not-supported", "the criteria are not supported (a type, optionally with patient or encounter)")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.subs.mu.Lock()
	if s.subs.subs == nil {
		s.subs.subs = map[string]*simSub{}
	}
	s.subs.seq++
	sub := &simSub{id: "sub-" + strconv.Itoa(s.subs.seq), crit: &req, critType: typ, patient: patient, encounter: encounter,
		queue: make(chan outgoing, 1<<16), cancel: cancel, status: backport.StatusActive, lastSent: time.Now()}
	s.subs.subs[sub.id] = sub
	s.subs.mu.Unlock()
	for range max(s.opts.Subscriptions.Senders, 1) {
		go s.sendLoop(ctx, sub)
	}
	w.Header().Set("Location", baseURL(r)+"/Subscription/"+sub.id)
	s.writeSubscription(w, http.StatusCreated, sub)
}

// notifyCriteria queues the notification of change e to criteria
// subscription sub when e matches its criteria and sub is active.
func (s *Server) notifyCriteria(sub *simSub, e *entry) {
	if e.typ != sub.critType {
		return
	}
	sub.mu.Lock()
	active := sub.status == backport.StatusActive
	sub.mu.Unlock()
	if !active {
		return
	}
	s.subs.stats.events.Add(1)
	o := outgoing{header: sub.crit.Header}
	if sub.crit.Payload != "" {
		o.body, o.method, o.path = e.body, http.MethodPut, "/"+e.typ+"/"+e.id
	}
	s.enqueue(sub, o)
}
