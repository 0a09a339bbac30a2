// Package audit records who touched which patient's data, when, from where
// and with what outcome: one FHIR R4 AuditEvent per access, shaped after IHE
// Basic Audit Log Patterns (BALP, https://profiles.ihe.net/ITI/BALP/), kept
// in the store's tamper-evident trail (store.AuditLog: each entry chained to
// the one before by SHA-256; `ehrgate audit verify` checks the chain).
//
// An Event says who (Agent: a user, an app's client id, or both, and the
// network address), what (Type and Subtype codes, Action), which patient
// (Patient, with its connection), which resources or which query, why
// (Purpose) and how it ended (Outcome). It never carries clinical payloads
// (no resource bodies, no names or values from the chart; a search's query
// string is the only patient-identifying text besides ids) and never
// tokens, cookies, codes or secrets: Query drops OAuth parameters, and
// nothing else in an Event has room for them.
//
// # How routes record
//
// Every route that serves or changes patient data (dashboard chart views and
// searches, /fhir reads and searches, $everything, bulk and Parquet exports,
// SMART launches, CDS calls, write-backs) calls Recorder.Record once per
// patient it touches, after it has decided what it will send and before it
// sends any of it:
//
//	ev := audit.Read(who, audit.PatientRef{Connection: conn, ID: pid},
//		audit.ResourceRef{Connection: conn, Type: "Observation", ID: id})
//	ev.Outcome = audit.OutcomeSuccess
//	ev.RequestID = requestID
//	if err := rec.Record(ctx, ev); err != nil {
//		// fail closed: the access was not recorded, so it does not happen
//		return 503 with an OperationOutcome, and no patient data
//	}
//	write the response
//
// Searches use audit.Search(who, patient, rawQuery) with the request's raw
// query string (one event per patient in the results; with no patient
// parameter, an event without Patient); refused accesses (401, 403) are
// recorded too, with OutcomeMinor or OutcomeSerious and no resources.
//
// Record fails closed: a nil error means the event is durably stored;
// any error means it is not, and the caller must refuse the access rather
// than serve data that was not audited. A route must never retry Record
// after sending data, nor send data when Record failed.
package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Code systems of the codes an Event uses.
const (
	// SystemEventType is the AuditEvent.type code system (R4).
	SystemEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	// SystemRestful holds the FHIR RESTful interactions (AuditEvent.subtype
	// of a "rest" event).
	SystemRestful = "http://hl7.org/fhir/restful-interaction"
	// SystemDICOM holds DICOM audit codes (event types such as Export,
	// agent roles such as Source and Destination Role ID).
	SystemDICOM = "http://dicom.nema.org/resources/ontology/DCM"
	// SystemPurpose holds purposes of use (TREAT, ETREAT, HOPERAT, ...).
	SystemPurpose = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
)

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// Event types.
var (
	// TypeRest is a FHIR RESTful interaction; its subtype is the
	// interaction (Interaction).
	TypeRest = Coding{SystemEventType, "rest", "Restful Operation"}
	// TypeExport is data leaving ehrgate in bulk (Bulk Data and Parquet
	// exports).
	TypeExport = Coding{SystemDICOM, "110106", "Export"}
	// TypeLogin is a user or app authenticating (SMART launches, dashboard
	// logins).
	TypeLogin = Coding{SystemDICOM, "110114", "User Authentication"}
)

// Interaction returns the subtype for a FHIR RESTful interaction code
// (read, vread, search-type, search-system, create, update, patch, delete,
// history-instance, operation, ...).
func Interaction(code string) Coding { return Coding{SystemRestful, code, code} }

// Purpose returns a purpose of use (v3 ActReason: TREAT, ETREAT, HPAYMT,
// HOPERAT, PATRQT, ...).
func Purpose(code string) Coding { return Coding{System: SystemPurpose, Code: code} }

// Action is what the agent did to the data (AuditEvent.action).
type Action string

// Actions.
const (
	ActionCreate  Action = "C"
	ActionRead    Action = "R"
	ActionUpdate  Action = "U"
	ActionDelete  Action = "D"
	ActionExecute Action = "E" // searches and operations
)

// Outcome is how the access ended (AuditEvent.outcome).
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "0"
	OutcomeMinor   Outcome = "4"  // the request was refused or invalid (4xx)
	OutcomeSerious Outcome = "8"  // the request failed (5xx)
	OutcomeMajor   Outcome = "12" // the system failed badly
)

// Agent is who accessed the data: a person (UserID), an app (ClientID), or a
// person through an app (both). It holds identifiers, never credentials.
type Agent struct {
	// UserID identifies the person: the dashboard account, or the OpenID
	// subject behind an app's token.
	UserID string
	// Name is the person's display name, if known.
	Name string
	// ClientID is the OAuth client_id of the app.
	ClientID string
	// Address is the network address the request came from (an IP address
	// or a host name).
	Address string
}

// Address returns the host of a request's remote address ("192.0.2.7"
// from "192.0.2.7:51234"), for Agent.Address.
func Address(remoteAddr string) string {
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return h
	}
	return remoteAddr
}

// ID is who the trail files the event under (store.AuditEntry.Agent): the
// user if there is one, else the client.
func (a Agent) ID() string {
	if a.UserID != "" {
		return a.UserID
	}
	return a.ClientID
}

// PatientRef names a patient: the resource id on a connection.
type PatientRef struct {
	Connection string
	ID         string
}

// ResourceRef names a resource that was read, created, changed or removed.
type ResourceRef struct {
	Connection string
	Type       string
	ID         string
	Version    string // optional
}

// Reference returns "Type/ID" or "Type/ID/_history/Version".
func (r ResourceRef) Reference() string {
	s := r.Type + "/" + r.ID
	if r.Version != "" {
		s += "/_history/" + r.Version
	}
	return s
}

// Event is one access to patient data. Read, Search, Export and Launch make
// the common shapes; set Outcome (and Recorded, or let the Recorder's clock)
// before recording.
type Event struct {
	Type    Coding
	Subtype []Coding
	Action  Action
	// Recorded is when the access happened (zero: the Recorder's clock).
	// Kept at microsecond precision.
	Recorded time.Time
	Outcome  Outcome
	// OutcomeDesc is a short reason for a failure ("forbidden: scope
	// lacks Observation.rs"); never patient data or internal errors.
	OutcomeDesc string
	Agent       Agent
	// Patient is whose data it was (zero: no one patient, such as a search
	// across patients that found none, or a system-level export).
	Patient PatientRef
	// Resources are what was returned, created, changed or removed.
	Resources []ResourceRef
	// Query is the raw query string of a search ("code=...&_count=10"),
	// recorded base64-encoded as FHIR asks; OAuth parameters are dropped.
	Query string
	// Purpose is why (purposeOfEvent), when the request says.
	Purpose []Coding
	// RequestID is the request's id in ehrgate's logs.
	RequestID string
}

// Read is a RESTful read of resources of patient (BALP PatientRead; Read
// when patient is zero): type rest, subtype read, action R.
func Read(who Agent, patient PatientRef, resources ...ResourceRef) Event {
	return Event{Type: TypeRest, Subtype: []Coding{Interaction("read")}, Action: ActionRead, Agent: who,
		Patient: patient, Resources: resources}
}

// Search is a RESTful search (BALP PatientQuery; Query when patient is
// zero): type rest, subtype search-type, action E, the query string as the
// query entity.
func Search(who Agent, patient PatientRef, rawQuery string) Event {
	return Event{Type: TypeRest, Subtype: []Coding{Interaction("search-type")}, Action: ActionExecute, Agent: who,
		Patient: patient, Query: rawQuery}
}

// Export is data of patient leaving in bulk (DICOM Export, action R; BALP
// has no export profile).
func Export(who Agent, patient PatientRef) Event {
	return Event{Type: TypeExport, Action: ActionRead, Agent: who, Patient: patient}
}

// Launch is a SMART launch giving an app access to patient (DICOM User
// Authentication, action E).
func Launch(who Agent, patient PatientRef) Event {
	return Event{Type: TypeLogin, Action: ActionExecute, Agent: who, Patient: patient}
}

// ErrInvalid is returned (wrapped) for an event that cannot be recorded as
// it is.
var ErrInvalid = errors.New("audit: invalid event")

// Validate reports what keeps e from being recorded (Recorded may be zero).
func (e Event) Validate() error {
	var errs []error
	if e.Type.Code == "" {
		errs = append(errs, errors.New("no type"))
	}
	switch e.Action {
	case ActionCreate, ActionRead, ActionUpdate, ActionDelete, ActionExecute:
	default:
		errs = append(errs, fmt.Errorf("action %q is not C, R, U, D or E", e.Action))
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeMinor, OutcomeSerious, OutcomeMajor:
	default:
		errs = append(errs, fmt.Errorf("outcome %q is not 0, 4, 8 or 12", e.Outcome))
	}
	if e.Agent.ID() == "" {
		errs = append(errs, errors.New("no agent: neither a user nor a client"))
	}
	if e.Patient.Connection != "" && e.Patient.ID == "" {
		errs = append(errs, errors.New("patient has a connection but no id"))
	}
	for _, r := range e.Resources {
		if r.Type == "" || r.ID == "" {
			errs = append(errs, fmt.Errorf("resource %q lacks a type or id", r.Reference()))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// secretParams are query parameters never recorded: OAuth and session
// credentials that a careless client may put in a URL.
var secretParams = map[string]bool{
	"access_token": true, "refresh_token": true, "id_token": true, "token": true,
	"client_secret": true, "client_assertion": true, "code_verifier": true, "state": true, "password": true,
}

// cleanQuery drops credential parameters from a raw query string, keeping
// the rest as it was sent. ("code" is a FHIR search parameter and stays.)
func cleanQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var kept []string
	for _, part := range strings.Split(raw, "&") {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if secretParams[strings.ToLower(name)] {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// encodedQuery is Query as AuditEvent.entity.query carries it.
func (e Event) encodedQuery() string {
	q := cleanQuery(e.Query)
	if q == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(q))
}

// networkType is AuditEvent.agent.network.type: 2 for an IP address, 1
// for a machine name.
func networkType(addr string) string {
	if _, err := netip.ParseAddr(addr); err == nil {
		return "2"
	}
	return "1"
}

// Recorder records audit events.
//
// Contract (fail closed): Record returns nil only when e is durably in the
// trail. When it returns an error the access must not happen: the caller
// refuses the request and sends no patient data. Implementations are safe
// for concurrent use and never keep e's slices.
type Recorder interface {
	Record(ctx context.Context, e Event) error
}
