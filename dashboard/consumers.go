package dashboard

import (
	"context"
	"html/template"
	"net/http"
	"time"

	"ehrgate/login"
)

// EventConsumers is the state of the event log's consumers and of the
// EHR Subscriptions that feed it, as the consumers page shows it.
type EventConsumers struct {
	Head     int64     // the event log's newest event
	HeadAt   time.Time // when it was recorded (zero: empty log)
	Outgoing []EventConsumer
	Inbound  []InboundSubscription
}

// EventConsumer is one consumer of the event log: a webhook or an app's
// FHIR Subscription. No patient data: URLs without their query, ids.
type EventConsumer struct {
	Kind   string // "webhook" or "app subscription"
	Name   string // the webhook URL without query; the subscription id
	Client string // an app subscription's client
	Status string // an app subscription's status (active, error, off)
	// Behind is how many events of the log it has not taken;
	// OldestUndelivered when the first of them was recorded (zero: none).
	Behind            int64
	OldestUndelivered time.Time
	Failures          int // deliveries in a row that failed
	LastError         string
	NextRetry         time.Time // zero when not failing
}

// InboundSubscription is one connection's FHIR Subscription health.
type InboundSubscription struct {
	Connection string
	SubscriptionStatus
}

// ConsumersOptions configure the consumers page.
type ConsumersOptions struct {
	// Load reads the consumers' state.
	Load func(ctx context.Context) (EventConsumers, error)
}

// ConsumersRoutes are the consumers page's routes, served by Consumers'
// handler:
//
//	GET /events/consumers   each event consumer's lag and failures; each connection's Subscription health
var ConsumersRoutes = []struct{ Pattern, Serves string }{
	{"GET /events/consumers", "event consumers: each webhook's and app Subscription's lag and failures, each connection's inbound Subscription health (no patient data)"},
}

type consumersBody struct {
	EventConsumers
	Ref string
}

// Consumers returns the handler of the consumers page (ConsumersRoutes),
// for people who see operations.
func (d *Dashboard) Consumers(o ConsumersOptions) http.Handler {
	t := template.New("layout.html").Funcs(d.funcs())
	d.pages["consumers"] = template.Must(t.ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/consumers.html"))
	mux := http.NewServeMux()
	mux.Handle("GET /events/consumers", d.need(login.SeeOperations, func(w http.ResponseWriter, r *http.Request) {
		var b consumersBody
		c, err := o.Load(r.Context())
		if err != nil {
			b.Ref = d.reference(r.Context())
			d.log.ErrorContext(r.Context(), "dashboard: reading the event consumers", "err", err, "ref", b.Ref)
		}
		b.EventConsumers = c
		d.render(w, r, http.StatusOK, "consumers", "Event consumers", b)
	}))
	return secure(mux)
}
