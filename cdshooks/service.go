package cdshooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ehrgate/audit"
	"ehrgate/clients"
	"ehrgate/fhir"
	"ehrgate/normalize"
	"ehrgate/server"
	"ehrgate/store"
)

// Store is what the service reads and keeps: ehrgate's copy of patients'
// charts (for fhirServers that are configured connections), and small
// documents (seen JWT ids, feedback, client registrations).
type Store interface {
	store.Reader
	store.Documents
}

// Connection is a configured EHR connection: a call whose fhirServer is
// BaseURL is answered from ehrgate's own copy of that connection's data.
type Connection struct {
	Name    string
	BaseURL string
}

// Options configure a Service.
type Options struct {
	// BaseURL is ehrgate's base URL as CDS clients call it
	// (https://ehrgate.example.org). A service call's JWT must carry
	// BaseURL + "/cds-services/" + id as its aud. Required.
	BaseURL string
	// Store is required.
	Store Store
	// Clients are the registered CDS clients (default: the registry kept in
	// Store).
	Clients ClientLookup
	// Audit records one event per call that reads patient data; a call
	// whose event cannot be recorded is refused (fail closed). Required.
	Audit audit.Recorder
	// Connections are the configured EHR connections; ConnectionsFunc, if
	// set, is asked instead on every call (connections added at run time).
	Connections     []Connection
	ConnectionsFunc func() []Connection
	// JKUAllowList lists JWKS URLs a JWT header's jku may name besides the
	// client's registered JWKS URL (exact match).
	JKUAllowList []string
	// AllowHTTPFHIRServer lets the service search a fhirServer over plain
	// http (the simulator, tests); otherwise only https.
	AllowHTTPFHIRServer bool
	// HTTPClient fetches client JWKS and searches fhirServers (default: a
	// client with a 10 s timeout).
	HTTPClient *http.Client
	// Registerer receives the service's metrics (nil: not registered).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Knowledge is the drug-allergy table (default BundledKnowledge);
	// Normalizer reads resources (default normalize.Default()).
	Knowledge  *Knowledge
	Normalizer *normalize.Normalizer
	// ClockSkew tolerated on JWT times (default 60 s); MaxTokenLifetime
	// bounds how far ahead a JWT's exp may be (default 5 minutes).
	ClockSkew        time.Duration
	MaxTokenLifetime time.Duration
	// AppLaunchURL, if set, is added to allergy cards as a SMART app link
	// (type smart: the EHR launches it with the patient in context), such
	// as ehrgate's own /smart/launch.
	AppLaunchURL string
	// SourceURL, if set, is the cards' source.url (a page about the check).
	SourceURL string
}

// ServiceInfo is one CDS service as discovery describes it.
type ServiceInfo struct {
	Hook              string            `json:"hook"`
	Title             string            `json:"title,omitempty"`
	Description       string            `json:"description"`
	ID                string            `json:"id"`
	Prefetch          map[string]string `json:"prefetch,omitempty"`
	UsageRequirements string            `json:"usageRequirements,omitempty"`
}

// Service IDs.
const (
	ServiceOrderSelect     = "drug-allergy-select"
	ServiceOrderSign       = "drug-allergy-sign"
	ServicePrescribe       = "drug-allergy-prescribe"
	ServicePatientView     = "allergy-review"
	ServiceDuplicateSelect = "duplicate-therapy-select"
	ServiceDuplicateSign   = "duplicate-therapy-sign"
)

// prefetch templates: the patient and the list each check needs, no more.
var (
	prefetchTemplates = map[string]string{
		prefetchPatient:   "Patient/{{context.patientId}}",
		prefetchAllergies: allergyTemplate,
	}
	duplicatePrefetch = map[string]string{
		prefetchPatient:     "Patient/{{context.patientId}}",
		prefetchMedications: medicationTemplate,
	}
)

const duplicateUsage = "Prefetch the active medication orders, or pass fhirAuthorization with MedicationRequest read scope; " +
	"without either (and without a fhirServer ehrgate syncs) the service answers 412."

const usage = "Prefetch the allergy list, or pass fhirAuthorization with AllergyIntolerance read scope; " +
	"without either (and without a fhirServer ehrgate syncs) the service answers 412."

// Services are the CDS services this package serves.
var Services = []ServiceInfo{
	{Hook: HookOrderSelect, ID: ServiceOrderSelect, Title: "Drug-allergy check (order select)",
		Description: "Checks newly selected medication orders against the patient's documented allergies: same ingredient, same drug class, and cross-sensitivity.",
		Prefetch:    prefetchTemplates, UsageRequirements: usage},
	{Hook: HookOrderSign, ID: ServiceOrderSign, Title: "Drug-allergy check (order sign)",
		Description: "Checks every draft medication order against the patient's documented allergies before signing.",
		Prefetch:    prefetchTemplates, UsageRequirements: usage},
	{Hook: HookMedicationPrescribe, ID: ServicePrescribe, Title: "Drug-allergy check (medication-prescribe, legacy)",
		Description: "The order-sign check for CDS clients still on the CDS Hooks 1.0 medication-prescribe hook.",
		Prefetch:    prefetchTemplates, UsageRequirements: usage},
	{Hook: HookPatientView, ID: ServicePatientView, Title: "Allergy list review",
		Description: "Points out allergies that medication orders cannot be checked against (not coded), or a missing allergy list.",
		Prefetch:    prefetchTemplates, UsageRequirements: usage},
	{Hook: HookOrderSelect, ID: ServiceDuplicateSelect, Title: "Duplicate therapy (order select)",
		Description: "Warns when a newly selected medication order contains an ingredient the patient already has an active order for.",
		Prefetch:    duplicatePrefetch, UsageRequirements: duplicateUsage},
	{Hook: HookOrderSign, ID: ServiceDuplicateSign, Title: "Duplicate therapy (order sign)",
		Description: "Warns when a draft medication order contains an ingredient the patient already has an active order for.",
		Prefetch:    duplicatePrefetch, UsageRequirements: duplicateUsage},
	{Hook: HookPatientView, ID: ServiceCareGap, Title: "Atrial fibrillation: anticoagulation care gap",
		Description: "On opening the chart: atrial fibrillation whose CHA2DS2-VASc score calls for oral anticoagulation (men >= 2, women >= 3) with no active anticoagulant, or a score that cannot be computed.",
		Prefetch:    careGapPrefetch, UsageRequirements: careGapUsage},
}

// duplicateServices run the duplicate-therapy check; the others the
// drug-allergy check.
var duplicateServices = map[string]bool{ServiceDuplicateSelect: true, ServiceDuplicateSign: true}

// hooksFor are the hook names each service accepts.
var hooksFor = map[string][]string{
	ServiceOrderSelect:     {HookOrderSelect},
	ServiceOrderSign:       {HookOrderSign, HookMedicationPrescribe},
	ServicePrescribe:       {HookMedicationPrescribe, HookOrderSign},
	ServicePatientView:     {HookPatientView},
	ServiceDuplicateSelect: {HookOrderSelect},
	ServiceDuplicateSign:   {HookOrderSign, HookMedicationPrescribe},
	ServiceCareGap:         {HookPatientView},
}

// Service is ehrgate's CDS Hooks 2.0 service. It is safe for concurrent
// use. Lifecycle: New checks the options and registers the metrics; Routes
// are mounted on the HTTP server; nothing runs in the background.
type Service struct {
	opts       Options
	log        *slog.Logger
	now        func() time.Time
	know       *Knowledge
	norm       *normalize.Normalizer
	httpClient *http.Client
	auth       *authenticator
	met        *Metrics
	issued     *issuedCards
}

// New returns a Service; BaseURL, Store and Audit are required.
func New(o Options) (*Service, error) {
	var errs []error
	if !absoluteHTTPURL(o.BaseURL) {
		errs = append(errs, errors.New("cdshooks: BaseURL must be ehrgate's absolute base URL"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("cdshooks: a Store is required"))
	}
	if o.Audit == nil {
		errs = append(errs, errors.New("cdshooks: an audit Recorder is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.Clients == nil {
		o.Clients = clients.NewRegistry(o.Store)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Knowledge == nil {
		o.Knowledge = BundledKnowledge()
	}
	if o.Normalizer == nil {
		o.Normalizer = normalize.Default()
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = 60 * time.Second
	}
	if o.MaxTokenLifetime <= 0 {
		o.MaxTokenLifetime = 5 * time.Minute
	}
	s := &Service{opts: o, log: o.Logger, now: o.Now, know: o.Knowledge, norm: o.Normalizer, httpClient: o.HTTPClient,
		met: NewMetrics(o.Registerer), issued: newIssuedCards()}
	s.auth = &authenticator{clients: o.Clients, docs: o.Store, jkuAllow: o.JKUAllowList, http: o.HTTPClient, now: o.Now,
		skew: o.ClockSkew, maxLifetime: o.MaxTokenLifetime, jwks: map[string]cachedKeys{}}
	return s, nil
}

// Routes are the service's HTTP routes: discovery (public), the service
// calls and their feedback (each call authenticated by the CDS client's
// JWT, checked here). Browser-based CDS clients (the CDS Hooks sandbox)
// reach them cross-origin through the server's CORS rule for public and
// token routes (package server).
func (s *Service) Routes() []server.Route {
	rs := []server.Route{
		{Pattern: "GET /cds-services", Access: server.Public, Serves: "CDS Hooks discovery (no patient data)",
			Handler: http.HandlerFunc(s.serveDiscovery)},
		{Pattern: "POST /cds-services/{id}", Access: server.Token, Serves: "CDS Hooks service calls: drug-allergy and duplicate-therapy cards (CDS client JWT checked by the handler)",
			Handler: http.HandlerFunc(s.serveCall)},
		{Pattern: "POST /cds-services/{id}/feedback", Access: server.Token, Serves: "CDS Hooks feedback on cards (CDS client JWT checked by the handler)",
			Handler: http.HandlerFunc(s.serveFeedback)},
	}
	return rs
}

// ServiceURL is the URL of service id: the aud its calls' JWTs carry.
func (s *Service) ServiceURL(id string) string { return s.opts.BaseURL + "/cds-services/" + id }

func serviceByID(id string) (ServiceInfo, bool) {
	for _, si := range Services {
		if si.ID == id {
			return si, true
		}
	}
	return ServiceInfo{}, false
}

func (s *Service) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"services": Services})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeProblem answers an error as an OperationOutcome with a message safe
// for the caller.
func writeProblem(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	fhir.WriteOutcome(w, status, "error", code, msg)
}

func (s *Service) unauthorized(w http.ResponseWriter, r *http.Request, svc string, ae *AuthError) {
	s.met.AuthFailures.WithLabelValues(ae.Class).Inc()
	s.log.WarnContext(r.Context(), "cds call refused", "service", svc, "reason", ae.Class, "request_id", server.RequestIDFrom(r.Context()))
	// Refusals are recorded too (no patient: nothing was read).
	ev := audit.Event{Type: audit.TypeRest, Subtype: []audit.Coding{audit.Interaction("operation")}, Action: audit.ActionExecute,
		Outcome: audit.OutcomeMinor, OutcomeDesc: "unauthenticated CDS call: " + ae.Class,
		Agent: audit.Agent{ClientID: "unauthenticated-cds-client", Address: audit.Address(r.RemoteAddr)}, RequestID: server.RequestIDFrom(r.Context())}
	if err := s.opts.Audit.Record(r.Context(), ev); err != nil {
		s.log.ErrorContext(r.Context(), "cds: recording a refused call failed", "error", err)
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, ae.Reason))
	writeProblem(w, http.StatusUnauthorized, "login", "CDS client authentication failed: "+ae.Reason)
}

func (s *Service) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, "too-costly", "the request body is too large or could not be read")
		return nil, false
	}
	return body, true
}

// serveCall answers a service call. Order: the service exists; the JWT is
// valid; the request parses and is for the service's hook; the allergy
// list is found (else 412); the check runs; the access is audited (else
// 503 and no cards); the cards are sent.
func (s *Service) serveCall(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	id := r.PathValue("id")
	si, ok := serviceByID(id)
	if !ok {
		writeProblem(w, http.StatusNotFound, "not-found", "no CDS service with this id; see /cds-services")
		return
	}
	status := http.StatusOK
	defer func() {
		s.met.Calls.WithLabelValues(id, fmt.Sprint(status)).Inc()
		s.met.Latency.WithLabelValues(id).Observe(s.now().Sub(start).Seconds())
	}()
	body, ok := s.readBody(w, r)
	if !ok {
		status = http.StatusRequestEntityTooLarge
		return
	}
	caller, ae := s.auth.authenticate(r.Context(), r, []string{s.ServiceURL(id)})
	if ae != nil {
		status = http.StatusUnauthorized
		s.unauthorized(w, r, id, ae)
		return
	}
	resp, patient, err := s.call(r.Context(), si, body, start)
	who := audit.Agent{ClientID: caller.Client.ID, Address: audit.Address(r.RemoteAddr)}
	ev := audit.Event{Type: audit.TypeRest, Subtype: []audit.Coding{audit.Interaction("operation")}, Action: audit.ActionExecute,
		Agent: who, Purpose: []audit.Coding{audit.Purpose("TREAT")}, RequestID: server.RequestIDFrom(r.Context())}
	if patient != nil {
		ev.Patient = audit.PatientRef{Connection: patient.conn, ID: patient.id}
		ev.Resources = patient.refs
		ev.Agent.UserID = patient.user
	}
	var pe *PreconditionError
	switch {
	case errors.Is(err, ErrBadRequest):
		status = http.StatusBadRequest
		writeProblem(w, status, "invalid", strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
		return
	case errors.As(err, &pe):
		status = http.StatusPreconditionFailed
		ev.Outcome, ev.OutcomeDesc = audit.OutcomeMinor, "required data unavailable"
		if aerr := s.opts.Audit.Record(r.Context(), ev); aerr != nil {
			status = http.StatusServiceUnavailable
			s.log.ErrorContext(r.Context(), "cds: audit trail unavailable", "service", id, "error", aerr)
			writeProblem(w, status, "transient", "the access could not be recorded; try again")
			return
		}
		writeProblem(w, status, "not-found", pe.Reason)
		return
	case err != nil:
		status = http.StatusInternalServerError
		s.log.ErrorContext(r.Context(), "cds call failed", "service", id, "error", err, "request_id", ev.RequestID)
		ev.Outcome, ev.OutcomeDesc = audit.OutcomeSerious, "internal error"
		if patient != nil {
			_ = s.opts.Audit.Record(r.Context(), ev)
		}
		writeProblem(w, status, "exception", "internal error; request id "+ev.RequestID)
		return
	}
	ev.Outcome = audit.OutcomeSuccess
	if patient == nil {
		// Nothing of the patient's was read (no medication to check).
	} else if err := s.opts.Audit.Record(r.Context(), ev); err != nil {
		status = http.StatusServiceUnavailable
		s.log.ErrorContext(r.Context(), "cds: audit trail unavailable", "service", id, "error", err)
		writeProblem(w, status, "transient", "the access could not be recorded; try again")
		return
	}
	for _, c := range resp.Cards {
		s.met.Cards.WithLabelValues(id, c.Indicator).Inc()
	}
	s.issued.add(resp.Cards)
	s.log.InfoContext(r.Context(), "cds call", "service", id, "client", caller.Client.ID, "cards", len(resp.Cards), "request_id", ev.RequestID)
	writeJSON(w, http.StatusOK, resp)
}

// patientAccess is whose data a call read, for its audit event.
type patientAccess struct {
	conn, id, user string
	refs           []audit.ResourceRef
}

// call runs one service call on an authenticated body. patient is set as
// soon as the call knows whose data it reads.
func (s *Service) call(ctx context.Context, si ServiceInfo, body []byte, received time.Time) (*Response, *patientAccess, error) {
	req, err := ParseRequest(body)
	if err != nil {
		return nil, nil, err
	}
	if !contains(hooksFor[si.ID], req.Hook) {
		return nil, nil, badRequest("service %s answers the %s hook, not %q", si.ID, si.Hook, req.Hook)
	}
	if err := req.CheckContext(); err != nil {
		return nil, nil, err
	}
	patientID, _ := req.ContextString("patientId")
	user, _ := req.ContextString("userId")
	if raw, ok := req.Prefetch[prefetchPatient]; ok && jsonType(raw) == "object" {
		var p struct {
			ResourceType, ID string
		}
		if decodeJSON(raw, &p) != nil || p.ResourceType != "Patient" || (p.ID != "" && p.ID != patientID) {
			return nil, nil, badRequest("prefetch patient is not the Patient context.patientId names")
		}
	}
	drafts, err := s.drafts(req)
	if err != nil {
		return nil, nil, err
	}
	if si.Hook != HookPatientView && len(drafts) == 0 {
		// No medication among the orders: nothing to check, no patient
		// data read.
		return &Response{Cards: []Card{}}, nil, nil
	}
	pa := &patientAccess{id: patientID, user: user}
	if si.ID == ServiceCareGap {
		cards, err := s.careGap(ctx, req, patientID, received, pa)
		return &Response{Cards: cards}, pa, err
	}
	if duplicateServices[si.ID] {
		cards, err := s.duplicateTherapy(ctx, req, patientID, received, drafts, pa)
		return &Response{Cards: cards}, pa, err
	}
	data, err := s.allergies(ctx, req, patientID, received)
	pa.conn, pa.refs = data.Connection, data.Refs
	if err != nil {
		return nil, pa, err
	}
	var findings []Finding
	if data.Prov.Unavailable == "" {
		findings = s.know.Check(drafts, data.Allergies)
	}
	src := cardSource
	src.URL = s.opts.SourceURL
	o := cardOptions{PatientID: patientID, Prov: data.Prov, Allergies: data.Allergies, Source: src}
	if s.opts.AppLaunchURL != "" {
		o.Link = &Link{Label: "Open the patient's chart in ehrgate", URL: s.opts.AppLaunchURL, Type: "smart"}
	}
	if si.Hook == HookPatientView {
		drafts = nil
	}
	cards := s.know.cards(findings, drafts, o)
	if si.Hook == HookPatientView && data.Prov.Unavailable != "" {
		cards[0].Summary = "No allergy list available from the EHR's source"
	}
	for _, c := range cards {
		if err := c.Validate(); err != nil {
			return nil, pa, fmt.Errorf("building a card: %w", err)
		}
	}
	return &Response{Cards: cards}, pa, nil
}

// duplicateTherapy runs the duplicate-therapy check of drafts against the
// patient's active medication orders, noting in pa what it read.
func (s *Service) duplicateTherapy(ctx context.Context, req *Request, patientID string, received time.Time, drafts []Draft, pa *patientAccess) ([]Card, error) {
	meds, err := s.list(ctx, req, patientID, received, medicationList)
	pa.conn, pa.refs = meds.Connection, meds.Refs
	if err != nil {
		return nil, err
	}
	var active []Draft
	for _, raw := range meds.Resources {
		d, err := ParseDraft(s.norm, raw)
		if err != nil {
			return nil, &PreconditionError{Reason: "a medication order in the list from " + meds.Prov.From + " cannot be read"}
		}
		active = append(active, d)
	}
	var findings []DuplicateFinding
	if meds.Prov.Unavailable == "" {
		findings = s.know.Duplicates(drafts, active)
	}
	src := duplicateSource
	src.URL = s.opts.SourceURL
	cards := duplicateCards(findings, drafts, meds.Prov, src)
	for _, c := range cards {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("building a card: %w", err)
		}
	}
	return cards, nil
}

// drafts reads the draft medication orders of the request:
// context.draftOrders (order-select, order-sign) or context.medications
// (medication-prescribe), Bundles of resources of which MedicationRequests
// are checked. On order-select only the orders named in
// context.selections are checked (the others were checked when selected).
func (s *Service) drafts(req *Request) ([]Draft, error) {
	var field string
	switch req.Hook {
	case HookOrderSelect, HookOrderSign:
		field = "draftOrders"
	case HookMedicationPrescribe:
		field = "medications"
	default:
		return nil, nil
	}
	raw, ok := req.Context[field]
	if !ok {
		return nil, badRequest("context.%s is required for %s", field, req.Hook)
	}
	var b fhir.Bundle
	if err := decodeJSON(raw, &b); err != nil || b.ResourceType != "Bundle" {
		return nil, badRequest("context.%s must be a FHIR Bundle", field)
	}
	var selected map[string]bool
	if req.Hook == HookOrderSelect {
		if rawSel, ok := req.Context["selections"]; ok {
			var sel []string
			if err := json.Unmarshal(rawSel, &sel); err != nil {
				return nil, badRequest("context.selections must be an array of references")
			}
			selected = map[string]bool{}
			for _, ref := range sel {
				selected[ref] = true
			}
		}
	}
	var out []Draft
	for i, e := range b.Entry {
		var h struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := decodeJSON(e.Resource, &h); err != nil {
			return nil, badRequest("context.%s.entry[%d] has no resource", field, i)
		}
		if h.ResourceType != "MedicationRequest" {
			continue
		}
		if selected != nil && !selected["MedicationRequest/"+h.ID] && !selected[h.ID] {
			continue
		}
		d, err := ParseDraft(s.norm, e.Resource)
		if err != nil {
			return nil, badRequest("context.%s.entry[%d] is not a readable MedicationRequest", field, i)
		}
		// Checking another patient's order against this patient's allergies
		// would reassure wrongly: refuse it.
		if patientID, _ := req.ContextString("patientId"); d.Subject != "" && referencedPatient(d.Subject) != patientID {
			return nil, badRequest("context.%s.entry[%d] is for another subject than context.patientId", field, i)
		}
		out = append(out, d)
	}
	return out, nil
}

// DocFeedback is the store.Documents kind of card feedback: one document
// per service and card ("SERVICE/CARD-UUID"), a JSON array of
// FeedbackRecords. Free-text comments are not kept (they may hold patient
// data): only whether there was one.
const DocFeedback = "cds-feedback"

// FeedbackRecord is one recorded outcome of a card.
type FeedbackRecord struct {
	Service string `json:"service"`
	Card    string `json:"card"`
	// Kind and Indicator are the rule that made the card (an allergy
	// match: ingredient, class, cross-sensitivity; drug-unchecked,
	// duplicate, ...) and its urgency, when this process sent the card;
	// empty otherwise.
	Kind                string    `json:"kind,omitempty"`
	Indicator           string    `json:"indicator,omitempty"`
	Outcome             string    `json:"outcome"`
	AcceptedSuggestions []string  `json:"acceptedSuggestions,omitempty"`
	OverrideReason      *Coding   `json:"overrideReason,omitempty"`
	HadComment          bool      `json:"hadComment,omitempty"`
	OutcomeTimestamp    string    `json:"outcomeTimestamp"`
	Client              string    `json:"client"`
	Received            time.Time `json:"received"`
}

func (s *Service) serveFeedback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := serviceByID(id); !ok {
		writeProblem(w, http.StatusNotFound, "not-found", "no CDS service with this id; see /cds-services")
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	caller, ae := s.auth.authenticate(r.Context(), r, []string{s.ServiceURL(id), s.ServiceURL(id) + "/feedback"})
	if ae != nil {
		s.unauthorized(w, r, id, ae)
		return
	}
	fr, err := ParseFeedback(body)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid", strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
		return
	}
	// One audit event per feedback call (which client, when; no patient,
	// the body names none), recorded before anything is stored: a call that
	// cannot be audited is refused (fail closed).
	ev := audit.Event{Type: audit.TypeRest, Subtype: []audit.Coding{audit.Interaction("operation")}, Action: audit.ActionCreate,
		Outcome: audit.OutcomeSuccess, Agent: audit.Agent{ClientID: caller.Client.ID, Address: audit.Address(r.RemoteAddr)},
		RequestID: server.RequestIDFrom(r.Context())}
	if err := s.opts.Audit.Record(r.Context(), ev); err != nil {
		s.log.ErrorContext(r.Context(), "cds: audit trail unavailable", "service", id, "error", err)
		writeProblem(w, http.StatusServiceUnavailable, "transient", "the feedback could not be recorded; try again")
		return
	}
	now := s.now().UTC()
	for _, f := range fr.Feedback {
		rec := FeedbackRecord{Service: id, Card: f.Card, Outcome: f.Outcome, OutcomeTimestamp: f.OutcomeTimestamp,
			Client: caller.Client.ID, Received: now}
		if ic, ok := s.issued.get(f.Card); ok {
			rec.Kind, rec.Indicator = ic.Kind, ic.Indicator
		}
		for _, a := range f.AcceptedSuggestions {
			rec.AcceptedSuggestions = append(rec.AcceptedSuggestions, a.ID)
		}
		if f.OverrideReason != nil {
			rec.OverrideReason = f.OverrideReason.Reason
			rec.HadComment = f.OverrideReason.UserComment != ""
		}
		err := s.opts.Store.UpdateDocument(r.Context(), DocFeedback, id+"/"+f.Card, func(old []byte) ([]byte, error) {
			var recs []FeedbackRecord
			if old != nil {
				if err := json.Unmarshal(old, &recs); err != nil {
					return nil, err
				}
			}
			return json.Marshal(append(recs, rec))
		})
		if err != nil {
			s.log.ErrorContext(r.Context(), "cds: storing feedback failed", "service", id, "error", err)
			writeProblem(w, http.StatusServiceUnavailable, "transient", "the feedback could not be stored; try again")
			return
		}
		s.met.Feedback.WithLabelValues(id, f.Outcome).Inc()
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// Feedback returns the feedback recorded for service id (every service
// when id is ""), by card and then time received.
func (s *Service) Feedback(ctx context.Context, id string) ([]FeedbackRecord, error) {
	return ReadFeedback(ctx, s.opts.Store, id)
}

// ReadFeedback returns the feedback kept in docs for service id (every
// service when id is ""): what a dashboard page shows per service.
func ReadFeedback(ctx context.Context, docs store.Documents, id string) ([]FeedbackRecord, error) {
	names, err := docs.ListDocuments(ctx, DocFeedback)
	if err != nil {
		return nil, err
	}
	var out []FeedbackRecord
	for _, n := range names {
		if id != "" && !strings.HasPrefix(n, id+"/") {
			continue
		}
		d, err := docs.GetDocument(ctx, DocFeedback, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var recs []FeedbackRecord
		if err := json.Unmarshal(d.Body, &recs); err != nil {
			return nil, fmt.Errorf("decoding feedback %s: %w", n, err)
		}
		out = append(out, recs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Card != out[j].Card {
			return out[i].Card < out[j].Card
		}
		return out[i].Received.Before(out[j].Received)
	})
	return out, nil
}

// Metrics are the service's Prometheus instruments. Labels carry service
// ids, statuses, indicators and outcomes only: never patient or client
// data.
type Metrics struct {
	Calls        *prometheus.CounterVec
	Cards        *prometheus.CounterVec
	Latency      *prometheus.HistogramVec
	Feedback     *prometheus.CounterVec
	AuthFailures *prometheus.CounterVec
}

// NewMetrics creates the instruments and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_cds_calls_total",
			Help: "CDS Hooks service calls, by service and HTTP status.",
		}, []string{"service", "code"}),
		Cards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_cds_cards_total",
			Help: "Cards returned by CDS Hooks services, by service and indicator.",
		}, []string{"service", "indicator"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ehrgate_cds_call_duration_seconds",
			Help:    "Time to answer a CDS Hooks service call, by service.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"service"}),
		Feedback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_cds_feedback_total",
			Help: "Card feedback received, by service and outcome (accepted, overridden).",
		}, []string{"service", "outcome"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrgate_cds_auth_failures_total",
			Help: "CDS calls refused for authentication, by reason class.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Calls, m.Cards, m.Latency, m.Feedback, m.AuthFailures)
	}
	return m
}
