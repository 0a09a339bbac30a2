// Package backport holds the wire format of topic-based FHIR Subscriptions
// on R4, as the Subscriptions R5 Backport IG defines it
// (http://hl7.org/fhir/uv/subscriptions-backport/STU1.1/): the extension
// and profile URLs, the R4 Subscription a client creates, and the
// subscription status (a Parameters resource on R4) that opens every
// notification bundle and answers $status and $events.
//
// Both sides use it: the simulated EHR (ehrsim) builds notifications with
// it and ehrgate (package subscriptions) reads them, so the two agree on
// one encoding.
package backport

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"ehrgate/fhir"
)

// Backport IG URLs (STU 1.1, "Artifacts" page).
const (
	base = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	// ExtTopicCanonical lists, on the CapabilityStatement's Subscription
	// resource, a SubscriptionTopic the server supports.
	ExtTopicCanonical = base + "capabilitystatement-subscriptiontopic-canonical"
	// ExtFilterCriteria carries a filter on Subscription.criteria.
	ExtFilterCriteria = base + "backport-filter-criteria"
	// ExtPayloadContent is on Subscription.channel.payload: empty, id-only
	// or full-resource.
	ExtPayloadContent = base + "backport-payload-content"
	// ExtHeartbeatPeriod is on Subscription.channel, in seconds.
	ExtHeartbeatPeriod = base + "backport-heartbeat-period"
	// ProfileSubscription is the R4 backport Subscription profile.
	ProfileSubscription = base + "backport-subscription"
	// ProfileStatus is the R4 subscription status Parameters profile.
	ProfileStatus = base + "backport-subscription-status-r4"
	// ProfileNotification is the notification Bundle profile.
	ProfileNotification = base + "backport-subscription-notification-r4"
)

// Payload contents (backport-payload-content).
const (
	PayloadEmpty        = "empty"
	PayloadIDOnly       = "id-only"
	PayloadFullResource = "full-resource"
)

// Notification types (SubscriptionStatus.type).
const (
	TypeHandshake    = "handshake"
	TypeHeartbeat    = "heartbeat"
	TypeEvent        = "event-notification"
	TypeQueryStatus  = "query-status"
	TypeQueryEvent   = "query-event"
	StatusRequested  = "requested"
	StatusActive     = "active"
	StatusError      = "error"
	StatusOff        = "off"
	OperationStatus  = "$status"
	OperationEvents  = "$events"
	ParamSinceNumber = "eventsSinceNumber"
	ParamUntilNumber = "eventsUntilNumber"
)

// Event is one notification event: its number in the subscription's
// sequence and the resource it is about.
type Event struct {
	Number    int64
	Timestamp time.Time
	Focus     string // "Type/id", "" when the payload is empty
}

// Status is a subscription status: what opens a notification bundle and
// answers $status.
type Status struct {
	Subscription string // "Subscription/<id>"
	Topic        string
	Status       string // requested, active, error, off
	Type         string // handshake, heartbeat, event-notification, query-status, query-event
	// EventsSinceStart is events-since-subscription-start: how many events
	// the subscription has produced; a client that saw fewer missed some.
	EventsSinceStart int64
	Events           []Event
}

type param struct {
	Name           string          `json:"name"`
	ValueString    string          `json:"valueString,omitempty"`
	ValueCode      string          `json:"valueCode,omitempty"`
	ValueCanonical string          `json:"valueCanonical,omitempty"`
	ValueInstant   string          `json:"valueInstant,omitempty"`
	ValueReference *fhir.Reference `json:"valueReference,omitempty"`
	Part           []param         `json:"part,omitempty"`
}

type parameters struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id,omitempty"`
	Meta         *fhir.Meta `json:"meta,omitempty"`
	Parameter    []param    `json:"parameter"`
}

// Marshal encodes s as the R4 status Parameters resource.
func (s Status) Marshal() ([]byte, error) {
	p := parameters{ResourceType: "Parameters", Meta: &fhir.Meta{Profile: []string{ProfileStatus}}}
	p.Parameter = append(p.Parameter,
		param{Name: "subscription", ValueReference: &fhir.Reference{Reference: s.Subscription}},
		param{Name: "topic", ValueCanonical: s.Topic},
		param{Name: "status", ValueCode: s.Status},
		param{Name: "type", ValueCode: s.Type},
		// The IG encodes the 64-bit counts as strings on R4.
		param{Name: "events-since-subscription-start", ValueString: strconv.FormatInt(s.EventsSinceStart, 10)})
	for _, e := range s.Events {
		ev := param{Name: "notification-event", Part: []param{
			{Name: "event-number", ValueString: strconv.FormatInt(e.Number, 10)},
			{Name: "timestamp", ValueInstant: e.Timestamp.UTC().Format(time.RFC3339Nano)}}}
		if e.Focus != "" {
			ev.Part = append(ev.Part, param{Name: "focus", ValueReference: &fhir.Reference{Reference: e.Focus}})
		}
		p.Parameter = append(p.Parameter, ev)
	}
	return json.Marshal(p)
}

// ParseStatus reads a status Parameters resource.
func ParseStatus(raw []byte) (Status, error) {
	var p parameters
	if err := json.Unmarshal(raw, &p); err != nil {
		return Status{}, fmt.Errorf("reading a subscription status: %w", err)
	}
	if p.ResourceType != "Parameters" && p.ResourceType != "SubscriptionStatus" {
		return Status{}, fmt.Errorf("reading a subscription status: resourceType %q", p.ResourceType)
	}
	var s Status
	var err error
	for _, pm := range p.Parameter {
		switch pm.Name {
		case "subscription":
			if pm.ValueReference != nil {
				s.Subscription = pm.ValueReference.Reference
			}
		case "topic":
			s.Topic = pm.ValueCanonical
		case "status":
			s.Status = pm.ValueCode
		case "type":
			s.Type = pm.ValueCode
		case "events-since-subscription-start":
			if s.EventsSinceStart, err = strconv.ParseInt(pm.ValueString, 10, 64); err != nil {
				return Status{}, fmt.Errorf("events-since-subscription-start %q: %w", pm.ValueString, err)
			}
		case "notification-event":
			var e Event
			for _, pt := range pm.Part {
				switch pt.Name {
				case "event-number":
					if e.Number, err = strconv.ParseInt(pt.ValueString, 10, 64); err != nil {
						return Status{}, fmt.Errorf("event-number %q: %w", pt.ValueString, err)
					}
				case "timestamp":
					e.Timestamp, _ = time.Parse(time.RFC3339Nano, pt.ValueInstant)
				case "focus":
					if pt.ValueReference != nil {
						e.Focus = pt.ValueReference.Reference
					}
				}
			}
			if e.Number <= 0 {
				return Status{}, errors.New("a notification-event has no event-number")
			}
			s.Events = append(s.Events, e)
		}
	}
	if s.Subscription == "" || s.Type == "" {
		return Status{}, errors.New("a subscription status needs subscription and type")
	}
	return s, nil
}

// SubscriptionID is the id in a "Subscription/<id>" reference (also
// absolute ones).
func SubscriptionID(ref string) string {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	return ref[strings.LastIndex(ref, "/")+1:]
}

// Notification is a decoded notification bundle (or an $events or $status
// answer): its status and the resources it carries, by "Type/id".
type Notification struct {
	Status Status
	// Resources are the entries after the status: full resources by their
	// "Type/id" (from the resource, or from fullUrl for id-only).
	Resources []Entry
}

// Entry is one resource entry of a notification.
type Entry struct {
	Ref      string          // "Type/id"
	Resource json.RawMessage // nil for id-only
}

// ParseNotification reads a notification Bundle: the first entry is the
// status, the others are the payload.
func ParseNotification(raw []byte) (Notification, error) {
	var b fhir.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return Notification{}, fmt.Errorf("reading a notification: %w", err)
	}
	return FromBundle(&b)
}

// FromBundle reads a decoded notification Bundle.
func FromBundle(b *fhir.Bundle) (Notification, error) {
	if b.ResourceType != "Bundle" || len(b.Entry) == 0 {
		return Notification{}, errors.New("a notification is a Bundle whose first entry is the subscription status")
	}
	st, err := ParseStatus(b.Entry[0].Resource)
	if err != nil {
		return Notification{}, err
	}
	n := Notification{Status: st}
	for _, e := range b.Entry[1:] {
		ent := Entry{Resource: e.Resource}
		if len(e.Resource) > 0 {
			h, err := fhir.ParseHeader(e.Resource)
			if err != nil || h.ID == "" {
				return Notification{}, errors.New("a notification entry has no resource id")
			}
			ent.Ref = h.ResourceType + "/" + h.ID
		} else {
			ent.Ref = RelativeRef(e.FullURL)
		}
		if ent.Ref == "" {
			return Notification{}, errors.New("a notification entry names no resource")
		}
		n.Resources = append(n.Resources, ent)
	}
	return n, nil
}

// RelativeRef turns an absolute or relative resource URL into "Type/id"
// ("" when it is not one).
func RelativeRef(u string) string {
	if i := strings.Index(u, "/_history/"); i >= 0 {
		u = u[:i]
	}
	parts := strings.Split(strings.TrimSuffix(u, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	typ, id := parts[len(parts)-2], parts[len(parts)-1]
	if !fhir.IsResourceType(typ) || id == "" {
		return ""
	}
	return typ + "/" + id
}

// Bundle builds a notification bundle (type history) from a status and its
// entries: full resources, or, for id-only, their URLs under fullURLBase
// (the server's FHIR base).
func Bundle(s Status, fullURLBase string, entries []Entry) ([]byte, error) {
	st, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	b := fhir.Bundle{ResourceType: "Bundle", Type: "history", Meta: &fhir.Meta{Profile: []string{ProfileNotification}},
		Entry: []fhir.BundleEntry{{FullURL: "urn:uuid:status", Resource: st}}}
	for _, e := range entries {
		be := fhir.BundleEntry{FullURL: fullURLBase + "/" + e.Ref, Resource: e.Resource}
		method := "PUT"
		be.Request = &fhir.BundleRequest{Method: method, URL: e.Ref}
		b.Entry = append(b.Entry, be)
	}
	return json.Marshal(b)
}

// SubscriptionRequest is what a client asks for when it creates a
// topic-based Subscription on R4.
type SubscriptionRequest struct {
	Topic    string
	Filter   string // e.g. "Observation?patient=Patient/123"; "" for none
	Endpoint string
	Header   string // e.g. "Authorization: Bearer <secret>"; sent with every notification
	Payload  string // PayloadEmpty, PayloadIDOnly or PayloadFullResource
	// Heartbeat is the heartbeat period; 0 asks for none.
	Heartbeat time.Duration
	Reason    string
	// End is when the subscription ends (Subscription.end); zero for never.
	End time.Time
}

type extension struct {
	URL              string `json:"url"`
	ValueString      string `json:"valueString,omitempty"`
	ValueCode        string `json:"valueCode,omitempty"`
	ValueUnsignedInt int    `json:"valueUnsignedInt,omitempty"`
	ValueCanonical   string `json:"valueCanonical,omitempty"`
}

type element struct {
	Extension []extension `json:"extension,omitempty"`
}

// Subscription is an R4 backport Subscription resource (the subset used).
type Subscription struct {
	ResourceType    string     `json:"resourceType"`
	ID              string     `json:"id,omitempty"`
	Meta            *fhir.Meta `json:"meta,omitempty"`
	Status          string     `json:"status"`
	Reason          string     `json:"reason"`
	Criteria        string     `json:"criteria"`
	End             string     `json:"end,omitempty"`
	CriteriaElement *element   `json:"_criteria,omitempty"`
	Error           string     `json:"error,omitempty"`
	Channel         channel    `json:"channel"`
}

type channel struct {
	Extension      []extension `json:"extension,omitempty"`
	Type           string      `json:"type"`
	Endpoint       string      `json:"endpoint,omitempty"`
	Payload        string      `json:"payload,omitempty"`
	PayloadElement *element    `json:"_payload,omitempty"`
	Header         []string    `json:"header,omitempty"`
}

// Resource builds the Subscription resource for r, status requested.
func (r SubscriptionRequest) Resource() ([]byte, error) {
	s := Subscription{ResourceType: "Subscription", Meta: &fhir.Meta{Profile: []string{ProfileSubscription}},
		Status: StatusRequested, Reason: r.Reason, Criteria: r.Topic,
		Channel: channel{Type: "rest-hook", Endpoint: r.Endpoint, Payload: "application/fhir+json",
			PayloadElement: &element{Extension: []extension{{URL: ExtPayloadContent, ValueCode: r.Payload}}}}}
	if s.Reason == "" {
		s.Reason = "ehrgate"
	}
	if !r.End.IsZero() {
		s.End = r.End.UTC().Format(time.RFC3339)
	}
	if r.Filter != "" {
		s.CriteriaElement = &element{Extension: []extension{{URL: ExtFilterCriteria, ValueString: r.Filter}}}
	}
	if r.Header != "" {
		s.Channel.Header = []string{r.Header}
	}
	if r.Heartbeat > 0 {
		s.Channel.Extension = []extension{{URL: ExtHeartbeatPeriod, ValueUnsignedInt: int(r.Heartbeat / time.Second)}}
	}
	return json.Marshal(s)
}

// ParseSubscription reads an R4 backport Subscription back into a request
// and its status.
func ParseSubscription(raw []byte) (id, status string, r SubscriptionRequest, err error) {
	var s Subscription
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", r, fmt.Errorf("reading a Subscription: %w", err)
	}
	if s.ResourceType != "Subscription" {
		return "", "", r, fmt.Errorf("reading a Subscription: resourceType %q", s.ResourceType)
	}
	r = SubscriptionRequest{Topic: s.Criteria, Endpoint: s.Channel.Endpoint, Reason: s.Reason, Payload: PayloadEmpty}
	if s.End != "" {
		end, err := time.Parse(time.RFC3339Nano, s.End)
		if err != nil {
			return s.ID, s.Status, r, fmt.Errorf("Subscription.end %q is not an instant", s.End)
		}
		r.End = end
	}
	if s.CriteriaElement != nil {
		for _, e := range s.CriteriaElement.Extension {
			if e.URL == ExtFilterCriteria {
				r.Filter = e.ValueString
			}
		}
	}
	if s.Channel.PayloadElement != nil {
		for _, e := range s.Channel.PayloadElement.Extension {
			if e.URL == ExtPayloadContent {
				r.Payload = e.ValueCode
			}
		}
	}
	for _, e := range s.Channel.Extension {
		if e.URL == ExtHeartbeatPeriod {
			r.Heartbeat = time.Duration(e.ValueUnsignedInt) * time.Second
		}
	}
	if len(s.Channel.Header) > 0 {
		r.Header = s.Channel.Header[0]
	}
	if s.Channel.Type != "rest-hook" {
		return s.ID, s.Status, r, fmt.Errorf("channel type %q is not supported", s.Channel.Type)
	}
	return s.ID, s.Status, r, nil
}

// subscriptionResources decodes the Subscription entries of a
// CapabilityStatement's rest.resource.
func subscriptionResources(capability []byte) []capResource {
	var cs struct {
		Rest []struct {
			Resource []capResource `json:"resource"`
		} `json:"rest"`
	}
	if json.Unmarshal(capability, &cs) != nil {
		return nil
	}
	var out []capResource
	for _, r := range cs.Rest {
		for _, res := range r.Resource {
			if res.Type == "Subscription" {
				out = append(out, res)
			}
		}
	}
	return out
}

type capResource struct {
	Type      string      `json:"type"`
	Extension []extension `json:"extension"`
	Operation []struct {
		Name string `json:"name"`
	} `json:"operation"`
}

// Topics returns the SubscriptionTopic canonicals a CapabilityStatement
// lists on its Subscription resource; nil when it supports none.
func Topics(capability []byte) []string {
	var out []string
	for _, res := range subscriptionResources(capability) {
		for _, e := range res.Extension {
			if e.URL == ExtTopicCanonical && e.ValueCanonical != "" {
				out = append(out, e.ValueCanonical)
			}
		}
	}
	return out
}

// HasOperation reports whether a CapabilityStatement lists the named
// operation ("events", "status") on its Subscription resource.
func HasOperation(capability []byte, name string) bool {
	for _, res := range subscriptionResources(capability) {
		for _, op := range res.Operation {
			if op.Name == name {
				return true
			}
		}
	}
	return false
}
