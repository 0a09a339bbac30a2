package backport

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"ehrgate/fhir"
)

// Classic R4 Subscriptions (http://hl7.org/fhir/R4/subscription.html):
// no topic, Subscription.criteria is a search URL ("Observation?patient=123"
// or a type alone), channel.type rest-hook, channel.payload a MIME type or
// absent. Servers that list Subscription in their CapabilityStatement but
// no SubscriptionTopic offer these (Oracle Health's R4 Millennium API, for
// one, lists Subscription without the backport extensions). A notification
// is, per R4 "rest-hook": with a payload, the resource PUT to
// endpoint/{type}/{id} (some servers POST it to the endpoint); without, an
// empty POST to the endpoint. There is no event number and no handshake:
// a client detects what it missed by reconciling.

// PayloadMIME is the R4 channel.payload asking for the resource in the
// notification.
const PayloadMIME = "application/fhir+json"

// CriteriaRequest is what a client asks for when it creates a classic R4
// criteria Subscription.
type CriteriaRequest struct {
	Criteria string // "Observation?patient=123" or "Observation"
	Endpoint string
	Header   string // e.g. "Authorization: Bearer <secret>"
	Payload  string // PayloadMIME, or "" for empty notifications
	Reason   string
}

type criteriaSubscription struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id,omitempty"`
	Status       string `json:"status"`
	Reason       string `json:"reason"`
	Criteria     string `json:"criteria"`
	Error        string `json:"error,omitempty"`
	Channel      struct {
		Type     string   `json:"type"`
		Endpoint string   `json:"endpoint,omitempty"`
		Payload  string   `json:"payload,omitempty"`
		Header   []string `json:"header,omitempty"`
	} `json:"channel"`
}

// Resource builds the R4 Subscription for r, status requested.
func (r CriteriaRequest) Resource() ([]byte, error) {
	s := criteriaSubscription{ResourceType: "Subscription", Status: StatusRequested, Reason: r.Reason, Criteria: r.Criteria}
	if s.Reason == "" {
		s.Reason = "ehrgate"
	}
	s.Channel.Type, s.Channel.Endpoint, s.Channel.Payload = "rest-hook", r.Endpoint, r.Payload
	if r.Header != "" {
		s.Channel.Header = []string{r.Header}
	}
	return json.Marshal(s)
}

// ParseCriteriaSubscription reads a classic R4 Subscription back into a
// request and its id and status. It refuses other channels and criteria
// that are not a resource type with an optional query.
func ParseCriteriaSubscription(raw []byte) (id, status string, r CriteriaRequest, err error) {
	var s criteriaSubscription
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", r, fmt.Errorf("reading a Subscription: %w", err)
	}
	if s.ResourceType != "Subscription" {
		return "", "", r, fmt.Errorf("reading a Subscription: resourceType %q", s.ResourceType)
	}
	r = CriteriaRequest{Criteria: s.Criteria, Endpoint: s.Channel.Endpoint, Payload: s.Channel.Payload, Reason: s.Reason}
	if len(s.Channel.Header) > 0 {
		r.Header = s.Channel.Header[0]
	}
	if s.Channel.Type != "rest-hook" {
		return s.ID, s.Status, r, fmt.Errorf("channel type %q is not supported", s.Channel.Type)
	}
	if _, _, err := ParseCriteria(s.Criteria); err != nil {
		return s.ID, s.Status, r, err
	}
	return s.ID, s.Status, r, nil
}

// ParseCriteria splits R4 Subscription criteria into its resource type and
// search parameters ("Observation?patient=123" → Observation, patient=123).
func ParseCriteria(criteria string) (typ string, q url.Values, err error) {
	typ, query, _ := strings.Cut(criteria, "?")
	if !fhir.IsResourceType(typ) {
		return "", nil, fmt.Errorf("criteria %q do not start with a resource type", criteria)
	}
	q, err = url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("criteria %q: %w", criteria, err)
	}
	return typ, q, nil
}

// OffersSubscription reports whether a CapabilityStatement lists the
// Subscription resource (with or without topics).
func OffersSubscription(capability []byte) bool {
	return len(subscriptionResources(capability)) > 0
}
