package cdshooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Hook names this package serves. HookMedicationPrescribe is the legacy
// (CDS Hooks 1.0) name that order-select and order-sign replaced; it is
// accepted and answered like order-sign.
const (
	HookOrderSelect           = "order-select"
	HookOrderSign             = "order-sign"
	HookPatientView           = "patient-view"
	HookMedicationPrescribe   = "medication-prescribe"
	maxRequestBytes           = 4 << 20 // a request with full prefetch fits easily
	maxSummaryRunes           = 140
	fhirAuthorizationBearer   = "Bearer"
	systemOverrideReason      = "https://ehrgate.dev/fhir/CodeSystem/cds-override-reason"
	systemTopic               = "https://ehrgate.dev/fhir/CodeSystem/cds-topic"
	feedbackOutcomeAccepted   = "accepted"
	feedbackOutcomeOverridden = "overridden"
)

// Request is a CDS Hooks 2.0 service call (specification "HTTP Request").
// Context and Prefetch keep their members as raw JSON: a hook's context
// fields and a service's prefetch keys are read where they are used.
type Request struct {
	Hook              string                     `json:"hook"`
	HookInstance      string                     `json:"hookInstance"`
	FHIRServer        string                     `json:"fhirServer,omitempty"`
	FHIRAuthorization *FHIRAuthorization         `json:"fhirAuthorization,omitempty"`
	Context           map[string]json.RawMessage `json:"context"`
	Prefetch          map[string]json.RawMessage `json:"prefetch,omitempty"`
	Extension         json.RawMessage            `json:"extension,omitempty"`
}

// FHIRAuthorization is the access token a CDS client passes for the
// service's own FHIR calls (specification "Passing the Access Token to the
// CDS Service"). AccessToken is a credential: never log or store it.
type FHIRAuthorization struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Subject     string `json:"subject"`
	Patient     string `json:"patient,omitempty"`
}

// ErrBadRequest is wrapped by every error ParseRequest and ParseFeedback
// return; the messages name fields, never their values.
var ErrBadRequest = errors.New("cdshooks: invalid request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// ParseRequest decodes and checks a service call body: a JSON object with
// hook, hookInstance and context (an object), fhirServer an absolute URL
// when present, fhirAuthorization complete when present (access_token,
// token_type Bearer, expires_in, scope, subject) and only with fhirServer.
// Unknown top-level members are ignored, as the specification's
// extensibility rules ask.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > maxRequestBytes {
		return nil, badRequest("the body is larger than %d bytes", maxRequestBytes)
	}
	var req Request
	if err := decodeJSON(body, &req); err != nil {
		return nil, badRequest("not a CDS Hooks request object: %s", jsonProblem(err))
	}
	var errs []string
	if req.Hook == "" {
		errs = append(errs, "hook is required")
	}
	if req.HookInstance == "" {
		errs = append(errs, "hookInstance is required")
	}
	if req.Context == nil {
		errs = append(errs, "context is required and must be an object")
	}
	if req.FHIRServer != "" && !absoluteHTTPURL(req.FHIRServer) {
		errs = append(errs, "fhirServer must be an absolute http(s) URL")
	}
	if a := req.FHIRAuthorization; a != nil {
		if req.FHIRServer == "" {
			errs = append(errs, "fhirAuthorization is given without fhirServer")
		}
		if a.AccessToken == "" || a.Scope == "" || a.Subject == "" {
			errs = append(errs, "fhirAuthorization needs access_token, scope and subject")
		}
		if !strings.EqualFold(a.TokenType, fhirAuthorizationBearer) {
			errs = append(errs, "fhirAuthorization.token_type must be Bearer")
		}
		if a.ExpiresIn <= 0 {
			errs = append(errs, "fhirAuthorization.expires_in must be a positive number of seconds")
		}
	}
	for k, v := range req.Prefetch {
		if k == "" {
			errs = append(errs, "a prefetch key is empty")
			continue
		}
		switch jsonType(v) {
		case "null":
		case "object":
			var h struct {
				ResourceType string `json:"resourceType"`
			}
			if decodeJSON(v, &h) != nil || h.ResourceType == "" {
				errs = append(errs, fmt.Sprintf("prefetch %q has no resourceType", k))
			}
		default:
			errs = append(errs, fmt.Sprintf("prefetch %q must be a FHIR resource or null", k))
		}
	}
	if len(errs) > 0 {
		return nil, badRequest("%s", strings.Join(errs, "; "))
	}
	return &req, nil
}

// CheckContext checks the context fields of the hooks this package
// serves, as their definitions in the CDS Hooks library type them:
// patientId and encounterId FHIR ids (not references), userId
// ResourceType/id, selections references, draftOrders (medications for
// the legacy medication-prescribe) a Bundle. Other hooks' contexts are
// not checked.
func (r *Request) CheckContext() error {
	switch r.Hook {
	case HookOrderSelect, HookOrderSign, HookPatientView, HookMedicationPrescribe:
	default:
		return nil
	}
	var errs []string
	if id, ok := r.ContextString("patientId"); !ok || !fhirIDRE.MatchString(id) {
		errs = append(errs, "context.patientId must be the patient's FHIR id")
	}
	if raw, ok := r.Context["encounterId"]; ok {
		var id string
		if json.Unmarshal(raw, &id) != nil || !fhirIDRE.MatchString(id) {
			errs = append(errs, "context.encounterId must be the encounter's FHIR id")
		}
	}
	if u, ok := r.ContextString("userId"); !ok || !referenceRE.MatchString(u) {
		errs = append(errs, "context.userId must be ResourceType/id")
	}
	if raw, ok := r.Context["selections"]; ok {
		var sel []string
		if json.Unmarshal(raw, &sel) != nil {
			errs = append(errs, "context.selections must be an array of references")
		}
		for _, s := range sel {
			if !referenceRE.MatchString(s) {
				errs = append(errs, "context.selections must hold ResourceType/id references")
				break
			}
		}
	}
	orders := ""
	switch r.Hook {
	case HookOrderSelect, HookOrderSign:
		orders = "draftOrders"
	case HookMedicationPrescribe:
		orders = "medications"
	}
	if orders != "" {
		var b struct {
			ResourceType string `json:"resourceType"`
		}
		if raw, ok := r.Context[orders]; !ok || decodeJSON(raw, &b) != nil || b.ResourceType != "Bundle" {
			errs = append(errs, "context."+orders+" must be a FHIR Bundle")
		}
	}
	if len(errs) > 0 {
		return badRequest("%s", strings.Join(errs, "; "))
	}
	return nil
}

// ValidateResponse checks a service response document: an object with a
// cards array (possibly empty) of valid cards (Card.Validate), and
// systemActions, if any, of known types.
func ValidateResponse(raw []byte) error {
	var v struct {
		Cards         *[]Card  `json:"cards"`
		SystemActions []Action `json:"systemActions"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return badRequest("not a CDS Hooks response: %s", jsonProblem(err))
	}
	if v.Cards == nil {
		return badRequest("a response needs a cards array")
	}
	for i, c := range *v.Cards {
		if err := c.Validate(); err != nil {
			return badRequest("cards[%d]: %v", i, err)
		}
	}
	for _, a := range v.SystemActions {
		if a.Type != "create" && a.Type != "update" && a.Type != "delete" {
			return badRequest("systemActions: type %q is not create, update or delete", a.Type)
		}
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("%s must be a JSON %s", te.Field, friendlyKind(te.Type.Kind().String()))
		}
		return "the body must be a JSON object"
	}
	return "malformed JSON"
}

func friendlyKind(k string) string {
	switch k {
	case "map", "struct", "ptr":
		return "object"
	case "int64", "int":
		return "number"
	}
	return k
}

// jsonType returns the JSON type of raw: object, array, string, number,
// true, false, null, or "" when empty.
func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// ContextString returns the context field name when it is a JSON string.
func (r *Request) ContextString(name string) (string, bool) {
	raw, ok := r.Context[name]
	if !ok || jsonType(raw) != "string" {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

var uuidishRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Response is a service's answer: cards and, optionally, system actions.
// Cards is never nil, so it encodes as [] when there are none (the
// specification's "no decision support" answer).
type Response struct {
	Cards         []Card   `json:"cards"`
	SystemActions []Action `json:"systemActions,omitempty"`
}

// Card is one piece of guidance (specification "Card Attributes"). Empty
// optional members are left out: the specification's JSON has no nulls,
// empty strings or empty arrays.
type Card struct {
	UUID              string       `json:"uuid,omitempty"`
	Summary           string       `json:"summary"`
	Detail            string       `json:"detail,omitempty"`
	Indicator         string       `json:"indicator"`
	Source            Source       `json:"source"`
	Suggestions       []Suggestion `json:"suggestions,omitempty"`
	SelectionBehavior string       `json:"selectionBehavior,omitempty"`
	OverrideReasons   []Coding     `json:"overrideReasons,omitempty"`
	Links             []Link       `json:"links,omitempty"`

	// kind is the rule that made the card (a Finding's Kind, or
	// "no-allergy-list"/"no-medication-list"), remembered with the card's
	// uuid so feedback can be counted per kind of card. Not sent.
	kind string
}

// Card indicators, in increasing urgency.
const (
	IndicatorInfo     = "info"
	IndicatorWarning  = "warning"
	IndicatorCritical = "critical"
)

// Source is where a card's guidance comes from.
type Source struct {
	Label string  `json:"label"`
	URL   string  `json:"url,omitempty"`
	Icon  string  `json:"icon,omitempty"`
	Topic *Coding `json:"topic,omitempty"`
}

// Coding is a CDS Hooks Coding (code, system, display).
type Coding struct {
	Code    string `json:"code"`
	System  string `json:"system,omitempty"`
	Display string `json:"display,omitempty"`
}

// Suggestion is a set of actions the user may accept together.
type Suggestion struct {
	Label         string   `json:"label"`
	UUID          string   `json:"uuid,omitempty"`
	IsRecommended bool     `json:"isRecommended,omitempty"`
	Actions       []Action `json:"actions,omitempty"`
}

// Action is a suggested change: create, update or delete.
type Action struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Resource    json.RawMessage `json:"resource,omitempty"`
	ResourceID  string          `json:"resourceId,omitempty"`
}

// Link is a link to a web page ("absolute") or a SMART app ("smart").
type Link struct {
	Label      string `json:"label"`
	URL        string `json:"url"`
	Type       string `json:"type"`
	AppContext string `json:"appContext,omitempty"`
}

// Validate reports what keeps c from being a card the specification
// allows: summary present and under 140 characters, a known indicator, a
// source label, selectionBehavior with suggestions, override reasons with
// a display, actions of a known type with a description, links absolute.
func (c Card) Validate() error {
	var errs []string
	if c.Summary == "" {
		errs = append(errs, "summary is required")
	}
	if n := len([]rune(c.Summary)); n >= maxSummaryRunes {
		errs = append(errs, fmt.Sprintf("summary has %d characters, want fewer than %d", n, maxSummaryRunes))
	}
	switch c.Indicator {
	case IndicatorInfo, IndicatorWarning, IndicatorCritical:
	default:
		errs = append(errs, fmt.Sprintf("indicator %q is not info, warning or critical", c.Indicator))
	}
	if c.Source.Label == "" {
		errs = append(errs, "source.label is required")
	}
	if len(c.Suggestions) > 0 && c.SelectionBehavior != "at-most-one" && c.SelectionBehavior != "any" {
		errs = append(errs, "suggestions need selectionBehavior at-most-one or any")
	}
	for _, r := range c.OverrideReasons {
		if r.Display == "" || r.Code == "" {
			errs = append(errs, "every override reason needs a code and a display")
		}
	}
	for _, s := range c.Suggestions {
		if s.Label == "" {
			errs = append(errs, "a suggestion has no label")
		}
		for _, a := range s.Actions {
			switch a.Type {
			case "create", "update":
				if len(a.Resource) == 0 {
					errs = append(errs, a.Type+" action without a resource")
				}
			case "delete":
				if a.ResourceID == "" {
					errs = append(errs, "delete action without resourceId")
				}
			default:
				errs = append(errs, fmt.Sprintf("action type %q is not create, update or delete", a.Type))
			}
			if a.Description == "" {
				errs = append(errs, "an action has no description")
			}
		}
	}
	for _, l := range c.Links {
		if l.Label == "" || (l.Type != "absolute" && l.Type != "smart") || !absoluteHTTPURL(l.URL) {
			errs = append(errs, "a link needs a label, type absolute or smart, and an absolute URL")
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// FeedbackRequest is the body of a feedback call.
type FeedbackRequest struct {
	Feedback []Feedback `json:"feedback"`
}

// Feedback is what the user did with one card.
type Feedback struct {
	Card                string               `json:"card"`
	Outcome             string               `json:"outcome"`
	AcceptedSuggestions []AcceptedSuggestion `json:"acceptedSuggestions,omitempty"`
	OverrideReason      *OverrideReason      `json:"overrideReason,omitempty"`
	OutcomeTimestamp    string               `json:"outcomeTimestamp"`
}

// AcceptedSuggestion names an accepted suggestion by its uuid.
type AcceptedSuggestion struct {
	ID string `json:"id"`
}

// OverrideReason is why a card was overridden; UserComment is free text
// that may hold patient data and is never stored.
type OverrideReason struct {
	Reason      *Coding `json:"reason,omitempty"`
	UserComment string  `json:"userComment,omitempty"`
}

// ParseFeedback decodes and checks a feedback body: each entry with a card
// uuid, outcome accepted (with at least one accepted suggestion) or
// overridden, and an outcomeTimestamp.
func ParseFeedback(body []byte) (*FeedbackRequest, error) {
	if len(body) > maxRequestBytes {
		return nil, badRequest("the body is larger than %d bytes", maxRequestBytes)
	}
	var fr FeedbackRequest
	if err := json.Unmarshal(body, &fr); err != nil {
		return nil, badRequest("not a CDS Hooks feedback object: %s", jsonProblem(err))
	}
	if len(fr.Feedback) == 0 {
		return nil, badRequest("feedback must be a non-empty array")
	}
	for i, f := range fr.Feedback {
		switch {
		case !uuidishRE.MatchString(f.Card):
			return nil, badRequest("feedback[%d].card must be the card's uuid", i)
		case f.Outcome != feedbackOutcomeAccepted && f.Outcome != feedbackOutcomeOverridden:
			return nil, badRequest("feedback[%d].outcome must be accepted or overridden", i)
		case f.Outcome == feedbackOutcomeAccepted && len(f.AcceptedSuggestions) == 0:
			return nil, badRequest("feedback[%d]: accepted needs acceptedSuggestions", i)
		case f.OutcomeTimestamp == "":
			return nil, badRequest("feedback[%d].outcomeTimestamp is required", i)
		}
		for j, s := range f.AcceptedSuggestions {
			if !uuidishRE.MatchString(s.ID) {
				return nil, badRequest("feedback[%d].acceptedSuggestions[%d].id must be a suggestion uuid", i, j)
			}
		}
	}
	return &fr, nil
}

// decodeJSON decodes raw into v as encoding/json does, with
// go-json-experiment's encoding/json v1 emulation first: the same values,
// about twice as fast (fhirapi and normalize use it too). On an error it
// decodes again with encoding/json, so errors (and jsonProblem's reading
// of them) are encoding/json's.
func decodeJSON(raw []byte, v any) error {
	if jsonv1.Unmarshal(raw, v) == nil {
		return nil
	}
	return json.Unmarshal(raw, v)
}
