package fhirapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"ehrgate/apiauth"
	"ehrgate/audit"
	"ehrgate/fhir"
	"ehrgate/server"
	"ehrgate/smart"
	"ehrgate/store"
)

// Store is what the API reads: current resources by id and by patient,
// patients by their keys, past versions, and pages of a type for searches
// no patient narrows.
type Store interface {
	store.Reader
	store.VersionReader
	store.PagedScanner
	store.RawPatientLister
}

// Authenticator identifies the caller of a request from its bearer token
// (an *apiauth.Verifier). A refusal is an *apiauth.Error.
type Authenticator interface {
	Authenticate(r *http.Request) (apiauth.Principal, error)
}

// Options configure an API.
type Options struct {
	Store Store
	// Connections are the connections whose resources are served, by
	// name, each with its FHIR base URL ("" for an HL7 feed): what
	// meta.source says and what absolute references are resolved
	// against. Resources of other connections in the store are not
	// served.
	Connections map[string]string
	// Auth verifies bearer tokens. Nil refuses every request but
	// metadata: deny by default.
	Auth Authenticator
	// Audit records every access to patient data before the response is
	// sent; a request whose event cannot be recorded is refused. Nil
	// refuses every request but metadata.
	Audit audit.Recorder
	// Docs keeps Bulk Data export records (nil: $export is not served).
	Docs store.Documents
	// Trail is the audit trail served to auditors at /fhir/AuditEvent
	// (nil: not served).
	Trail store.AuditLog
	// BaseURL is the API's public base URL ("https://ehrgate.example.org/fhir"),
	// used in fullUrl and paging links; "" derives it from each request.
	BaseURL string
	// SMART, when set, is the authorization server's endpoints, advertised
	// in the CapabilityStatement's security section.
	SMART *SMARTEndpoints
	// MaxCount caps _count (default 1000); DefaultCount is the page size
	// without one (default 50).
	MaxCount, DefaultCount int
	// ScanBudget is how many stored resources one page of a search that
	// no patient or id narrows may examine before answering with what it
	// found and a next link (default 5,000), so one request's work is
	// bounded.
	ScanBudget int
	// Events is the durable event log app Subscriptions are delivered
	// from (nil: Subscriptions are not served); they need Docs too.
	Events EventLog
	// NotifyClient posts Subscription notifications (default: a client
	// that refuses loopback, private and link-local addresses, unless
	// AllowPrivateEndpoints; each post is bounded to 10 s).
	NotifyClient *http.Client
	// AllowPrivateEndpoints lets apps name endpoints on loopback, private
	// and link-local addresses (apps inside the site's network).
	AllowPrivateEndpoints bool
	// Authorized reports whether an app's authorization still stands: its
	// client (clientID) still registered and the token that created a
	// subscription (tokenID, its jti) not revoked. A subscription whose
	// authorization is gone is switched off and gets nothing more. Nil:
	// authorizations are not checked after creation.
	Authorized func(ctx context.Context, clientID, tokenID string) (bool, error)
	Logger     *slog.Logger
	RequestID  func(context.Context) string
	Now        func() time.Time
}

// SMARTEndpoints are an authorization server's endpoints.
type SMARTEndpoints struct {
	Authorize, Token, Introspect, Revoke string
}

// API is the FHIR R4 API. It is safe for concurrent use.
type API struct {
	o        Options
	ns       *Namespace
	notifier *http.Client // posts Subscription notifications
}

// New returns the API; two connections whose served ids would clash are
// an error.
func New(o Options) (*API, error) {
	if o.Store == nil {
		return nil, errors.New("fhirapi: no store")
	}
	names := make([]string, 0, len(o.Connections))
	for n := range o.Connections {
		names = append(names, n)
	}
	ns, err := NewNamespace(names...)
	if err != nil {
		return nil, fmt.Errorf("fhirapi: %w", err)
	}
	if o.MaxCount <= 0 {
		o.MaxCount = 1000
	}
	if o.DefaultCount <= 0 {
		o.DefaultCount = 50
	}
	if o.ScanBudget <= 0 {
		o.ScanBudget = 5000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RequestID == nil {
		o.RequestID = func(context.Context) string { return "" }
	}
	notify := o.NotifyClient
	switch {
	case notify != nil:
	case o.AllowPrivateEndpoints:
		notify = http.DefaultClient
	default:
		notify = publicNotifyClient()
	}
	return &API{o: o, ns: ns, notifier: notify}, nil
}

// Routes are the API's HTTP routes, each with its access rule.
func (a *API) Routes() []server.Route {
	h := func(f func(http.ResponseWriter, *http.Request)) http.Handler { return http.HandlerFunc(f) }
	var subs []server.Route
	if a.o.Events != nil && a.o.Docs != nil {
		for _, s := range a.subscriptionRoutes() {
			subs = append(subs, server.Route{Pattern: s.pattern, Access: server.Token, Serves: s.serves, Handler: h(s.fn)})
		}
	}
	return append(subs, []server.Route{
		{Pattern: "GET /fhir/metadata", Access: server.Public, Serves: "the CapabilityStatement: what the API serves (no patient data)", Handler: h(a.metadata)},
		{Pattern: "GET /fhir/{type}", Access: server.Token, Serves: "search a type (scope TYPE.s; patient/ scopes: the patient's compartment only)", Handler: h(a.search)},
		{Pattern: "POST /fhir/{type}/_search", Access: server.Token, Serves: "search a type, parameters in a form body (as GET)", Handler: h(a.search)},
		{Pattern: "GET /fhir/{type}/{id}", Access: server.Token, Serves: "read (scope TYPE.r; patient/ scopes: the patient's compartment only)", Handler: h(a.read)},
		{Pattern: "GET /fhir/{type}/{id}/_history/{vid}", Access: server.Token, Serves: "vread: a stored version (scope TYPE.r, compartment as read)", Handler: h(a.read)},
		{Pattern: "GET /fhir/$export", Access: server.Token, Serves: "Bulk Data export of everything (system/ scopes per type)", Handler: h(a.exportKickoff)},
		{Pattern: "POST /fhir/$export", Access: server.Token, Serves: "Bulk Data export, Parameters body (as GET)", Handler: h(a.exportKickoff)},
		{Pattern: "GET /fhir/Patient/$export", Access: server.Token, Serves: "Bulk Data export of patients' compartments (scopes per type; patient/ scopes: the token's patient)", Handler: h(a.exportKickoff)},
		{Pattern: "POST /fhir/Patient/$export", Access: server.Token, Serves: "Bulk Data Patient export, Parameters body", Handler: h(a.exportKickoff)},
		{Pattern: "GET /fhir/Group/{id}/$export", Access: server.Token, Serves: "Bulk Data export of a connection's patients (Group id: the connection's prefix)", Handler: h(a.exportKickoff)},
		{Pattern: "POST /fhir/Group/{id}/$export", Access: server.Token, Serves: "Bulk Data Group export, Parameters body", Handler: h(a.exportKickoff)},
		{Pattern: "GET /fhir/$export-status/{job}", Access: server.Token, Serves: "an export's status and manifest (the client that started it)", Handler: h(a.exportStatus)},
		{Pattern: "DELETE /fhir/$export-status/{job}", Access: server.Token, Serves: "cancel an export (the client that started it)", Handler: h(a.exportStatus)},
		{Pattern: "GET /fhir/$export-file/{job}/{file}", Access: server.Token, Serves: "an export's NDJSON file, streamed from the store (the client that started it; scopes applied per resource)", Handler: h(a.exportFile)},
		{Pattern: "GET /fhir/AuditEvent", Access: server.Token, Serves: "the audit trail, to auditors (scope user/ or system/AuditEvent.rs, never a wildcard)", Handler: h(a.auditEvents)},
		{Pattern: "POST /fhir/Patient/$match", Access: server.Token, Serves: "Patient/$match: stored patients scored against a Patient (scope Patient.s; patient/ scopes: the patient's own only)", Handler: h(a.patientMatch)},
		{Pattern: "GET /fhir/Patient/{id}/$context", Access: server.Token, Serves: "Patient/ID/$context: the patient's clinical summary as Markdown or JSON, within max-tokens (scope Patient.r; sections need their types' read scopes)", Handler: h(a.patientContext)},
		{Pattern: "GET /fhir/Patient/{id}/$summary", Access: server.Token, Serves: "Patient/ID/$summary: the patient's International Patient Summary document Bundle (scope Patient.r; sections need their types' read scopes)", Handler: h(a.patientSummary)},
		{Pattern: "GET /fhir/Patient/{id}/{op}", Access: server.Token, Serves: "Patient/ID/$everything: the patient's record (scopes per type, compartment)", Handler: h(a.everything)},
		{Pattern: "/fhir/", Access: server.Token, Serves: "anything else under /fhir: an OperationOutcome (not supported)", Handler: h(a.unsupported)},
	}...)
}

// call is one authenticated request.
type call struct {
	clean bool // the cleaned form was asked for (FormHeader)
	w     http.ResponseWriter
	r     *http.Request
	who   apiauth.Principal
	agent audit.Agent
}

// begin authenticates a request; it answers and returns false when the
// caller may not go on.
func (a *API) begin(w http.ResponseWriter, r *http.Request) (*call, bool) {
	if f := r.URL.Query().Get("_format"); f != "" && !jsonFormat(f) {
		fhir.WriteOutcome(w, http.StatusNotAcceptable, "error", "not-supported", "This server answers in JSON only (_format json or application/fhir+json).")
		return nil, false
	}
	if a.o.Auth == nil || a.o.Audit == nil {
		fhir.WriteOutcome(w, http.StatusUnauthorized, "error", "security", "The API is not configured: no authorization server or audit trail (see the README, api:).")
		return nil, false
	}
	if r.Header.Get("Authorization") == "" {
		// No credentials at all: a plain challenge (RFC 6750 section 3.1).
		w.Header().Set("WWW-Authenticate", `Bearer realm="ehrgate"`)
		fhir.WriteOutcome(w, http.StatusUnauthorized, "error", "login", "This API needs a bearer access token (SMART on FHIR).")
		return nil, false
	}
	p, err := a.o.Auth.Authenticate(r)
	if err != nil {
		var ae *apiauth.Error
		status, msg := http.StatusUnauthorized, "The access token was refused."
		if errors.As(err, &ae) {
			w.Header().Set("WWW-Authenticate", ae.WWWAuthenticate())
			status, msg = ae.Status(), "The access token was refused: "+ae.Reason
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			a.o.Logger.WarnContext(r.Context(), "token check failed", "error", err)
		}
		fhir.WriteOutcome(w, status, "error", "security", msg)
		return nil, false
	}
	w.Header().Add("Vary", FormHeader)
	form := r.Header.Get(FormHeader)
	if form != "" && form != "cleaned" && form != "as-received" {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", FormHeader+" is cleaned or as-received.")
		return nil, false
	}
	return &call{clean: form == "cleaned", w: w, r: r, who: p, agent: audit.Agent{UserID: p.Subject, ClientID: p.ClientID, Address: audit.Address(r.RemoteAddr)}}, true
}

func jsonFormat(f string) bool {
	switch f {
	case "json", "application/json", "application/fhir+json", "application/json+fhir":
		return true
	}
	return false
}

// fail answers with an OperationOutcome and records the refused or failed
// access (only accesses by an authenticated caller are recorded).
func (a *API) fail(c *call, ev audit.Event, status int, code, msg string) {
	ev.Outcome = audit.OutcomeMinor
	if status >= 500 {
		ev.Outcome = audit.OutcomeSerious
	}
	ev.OutcomeDesc = msg
	ev.RequestID = a.o.RequestID(c.r.Context())
	if err := a.o.Audit.Record(c.r.Context(), ev); err != nil {
		a.o.Logger.ErrorContext(c.r.Context(), "could not record a refused API access", "error", err)
	}
	fhir.WriteOutcome(c.w, status, "error", code, msg)
}

// succeed records the access, then sends body; when the event cannot be
// recorded nothing is sent (fail closed).
func (a *API) succeed(c *call, ev audit.Event, status int, body []byte) {
	ev.Outcome = audit.OutcomeSuccess
	ev.RequestID = a.o.RequestID(c.r.Context())
	if err := a.o.Audit.Record(c.r.Context(), ev); err != nil {
		a.o.Logger.ErrorContext(c.r.Context(), "could not record an API access; refusing it", "error", err)
		fhir.WriteOutcome(c.w, http.StatusServiceUnavailable, "error", "transient", "The access could not be recorded in the audit trail, so it was refused; try again.")
		return
	}
	if c.w.Header().Get("Content-Type") == "" {
		c.w.Header().Set("Content-Type", "application/fhir+json")
	}
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

// served reports whether typ is served.
func isServed(typ string) bool { return slices.Contains(ServedTypes, typ) }

// grants are the scopes that let the caller do perm on typ, with the
// compartment and restrictions they carry.
type grants struct {
	scopes  []smart.Scope
	patient ref // the token's patient (for patient/ scopes)
	typ     string
	restr   map[int][]filter // parsed v2 restrictions by scope index
}

// grantsFor collects the caller's scopes that grant perm on typ. An
// error means the caller may not (403).
func (a *API) grantsFor(c *call, typ string, perm smart.Perm) (grants, error) {
	g := grants{typ: typ, restr: map[int][]filter{}}
	if c.who.Patient != "" {
		conn, id, ok := a.ns.Parse(c.who.Patient)
		if ok {
			g.patient = ref{conn, "Patient", id}
		}
	}
	for _, s := range c.who.Scopes {
		if !s.IsResource() || (s.Type != "*" && s.Type != typ) || s.Perms&perm != perm {
			continue
		}
		if s.Context == smart.ContextPatient && g.patient.id == "" {
			continue // a patient scope without a (served) patient grants nothing
		}
		if s.Query != "" {
			fs, err := a.restriction(typ, s.Query)
			if err != nil {
				continue // a restriction this server cannot apply grants nothing
			}
			g.restr[len(g.scopes)] = fs
		}
		g.scopes = append(g.scopes, s)
	}
	if len(g.scopes) == 0 {
		return g, fmt.Errorf("the token's scopes do not allow %s on %s", permName(perm), typ)
	}
	return g, nil
}

func permName(p smart.Perm) string {
	switch p {
	case smart.PermRead:
		return "read (r)"
	case smart.PermSearch:
		return "search (s)"
	}
	return p.String()
}

// restriction parses a SMART v2 scope's query ("category=...|laboratory").
func (a *API) restriction(typ, q string) ([]filter, error) {
	vals, err := url.ParseQuery(q)
	if err != nil {
		return nil, err
	}
	var fs []filter
	for k, vs := range vals {
		name, mod, _ := strings.Cut(k, ":")
		p, ok := lookupParam(typ, name)
		if !ok {
			return nil, fmt.Errorf("unknown parameter %q", name)
		}
		for _, v := range vs {
			f, err := newFilter(a.ns, typ, p, mod, v)
			if err != nil {
				return nil, err
			}
			fs = append(fs, f)
		}
	}
	return fs, nil
}

// patientOnly reports whether every grant is limited to the token's
// patient: then only that patient's compartment is searched.
func (g grants) patientOnly() bool {
	for _, s := range g.scopes {
		if s.Context != smart.ContextPatient {
			return false
		}
	}
	return true
}

// unrestricted reports whether some grant covers every resource of the
// type (no compartment, no restriction), so that allows need not look.
func (g grants) unrestricted() bool {
	for i, sc := range g.scopes {
		if sc.Context != smart.ContextPatient && len(g.restr[i]) == 0 {
			return true
		}
	}
	return false
}

// allows reports whether some grant covers the resource: its compartment
// (patient/ scopes) and its restriction (v2 queries).
func (g grants) allows(s subject, now time.Time) bool {
	for i, sc := range g.scopes {
		if sc.Context == smart.ContextPatient && !inCompartment(s.rec, g.patient) {
			continue
		}
		ok := true
		for _, f := range g.restr[i] {
			ok = ok && f.matches(s, now)
		}
		if ok {
			return true
		}
	}
	return false
}

// inCompartment reports whether rec is in the patient's compartment.
func inCompartment(rec *store.Record, p ref) bool {
	if p.id == "" || rec.Connection != p.connection {
		return false
	}
	if rec.Type == "Patient" {
		return rec.ID == p.id
	}
	return rec.PatientID == p.id
}

// patientOf is whose data rec is, for the audit trail.
func patientOf(rec *store.Record) audit.PatientRef {
	if rec.Type == "Patient" {
		return audit.PatientRef{Connection: rec.Connection, ID: rec.ID}
	}
	if rec.PatientID != "" {
		return audit.PatientRef{Connection: rec.Connection, ID: rec.PatientID}
	}
	return audit.PatientRef{}
}

// decode makes a stored resource a subject for matching (parsed when
// first asked).
func decode(rec *store.Record) (subject, error) {
	return subject{rec: rec, doc: &lazyDoc{}}, nil
}

// read serves read and vread.
func (a *API) read(w http.ResponseWriter, r *http.Request) {
	c, ok := a.begin(w, r)
	if !ok {
		return
	}
	typ, id, vid := r.PathValue("type"), r.PathValue("id"), r.PathValue("vid")
	ev := audit.Read(c.agent, audit.PatientRef{}, audit.ResourceRef{Type: typ, ID: id, Version: vid})
	if vid != "" {
		ev.Subtype = []audit.Coding{audit.Interaction("vread")}
	}
	if !isServed(typ) {
		a.fail(c, ev, http.StatusNotFound, "not-supported", fmt.Sprintf("%s is not a resource type this API serves.", typ))
		return
	}
	g, err := a.grantsFor(c, typ, smart.PermRead)
	if err != nil {
		a.fail(c, ev, http.StatusForbidden, "forbidden", err.Error()+".")
		return
	}
	conn, srcID, ok := a.ns.Parse(id)
	notFound := fmt.Sprintf("%s/%s is not known.", typ, id)
	if !ok {
		a.fail(c, ev, http.StatusNotFound, "not-found", notFound)
		return
	}
	var rec store.Record
	if vid != "" {
		rec, err = a.o.Store.GetVersion(r.Context(), conn, typ, srcID, vid)
	} else {
		rec, err = a.o.Store.Get(r.Context(), conn, typ, srcID)
	}
	if errors.Is(err, store.ErrNotFound) {
		a.fail(c, ev, http.StatusNotFound, "not-found", notFound)
		return
	}
	if err != nil {
		a.o.Logger.ErrorContext(r.Context(), "API read failed", "type", typ, "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The resource could not be read.")
		return
	}
	ev.Resources = []audit.ResourceRef{{Connection: conn, Type: typ, ID: srcID, Version: rec.VersionID}}
	s, err := decode(&rec)
	if err == nil && !g.allows(s, a.o.Now()) {
		// Outside what the token may see: answered as unknown, so its
		// existence is not disclosed.
		a.fail(c, ev, http.StatusNotFound, "not-found", notFound)
		return
	}
	ev.Patient = patientOf(&rec)
	body, err := a.render(&rec, nil, c.clean)
	if err != nil {
		a.o.Logger.ErrorContext(r.Context(), "API read: stored resource unreadable", "type", typ, "error", err)
		a.fail(c, ev, http.StatusInternalServerError, "exception", "The stored resource could not be served.")
		return
	}
	c.w.Header().Set("ETag", `W/"`+rec.VersionID+`"`)
	if t := rec.LastUpdated; !t.IsZero() {
		c.w.Header().Set("Last-Modified", t.UTC().Format(http.TimeFormat))
	}
	a.succeed(c, ev, http.StatusOK, body)
}

// render serves a record, in the cleaned form when asked, subset to
// elements when given.
func (a *API) render(rec *store.Record, elements []string, clean bool) ([]byte, error) {
	return a.appendRendered(nil, rec, elements, clean)
}

// appendRendered appends what render returns to dst.
func (a *API) appendRendered(dst []byte, rec *store.Record, elements []string, clean bool) ([]byte, error) {
	if clean {
		raw, err := cleaned(rec)
		if err != nil {
			return nil, err
		}
		r := *rec
		r.Raw = raw
		rec = &r
	}
	if len(elements) == 0 {
		return appendServed(dst, rec, a.o.Connections[rec.Connection])
	}
	body, err := served(rec, a.o.Connections[rec.Connection])
	if err == nil {
		body, err = subset(body, elements)
	}
	if err != nil {
		return dst, err
	}
	return append(dst, body...), nil
}

// subset keeps the named top-level elements (and resourceType, id, meta)
// and tags the resource SUBSETTED, as _elements asks (R4 search 3.1.1.5.9).
func subset(body []byte, elements []string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	keep := map[string]bool{"resourceType": true, "id": true, "meta": true}
	for _, e := range elements {
		keep[e] = true
	}
	for k := range m {
		if !keep[k] {
			delete(m, k)
		}
	}
	var meta map[string]any
	if err := json.Unmarshal(m["meta"], &meta); err == nil {
		tags, _ := meta["tag"].([]any)
		meta["tag"] = append(tags, map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
		if b, err := json.Marshal(meta); err == nil {
			m["meta"] = b
		}
	}
	return json.Marshal(m)
}

// unsupported answers what the API does not do.
func (a *API) unsupported(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.begin(w, r); !ok {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fhir.WriteOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "This API is read-only: read, vread, search and Patient/$everything.")
		return
	}
	fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-supported", "No such interaction; see /fhir/metadata for what this API serves.")
}

// base is the API's base URL for a request.
func (a *API) base(r *http.Request) string {
	if a.o.BaseURL != "" {
		return strings.TrimSuffix(a.o.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}
