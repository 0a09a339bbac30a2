package cdshooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"ehrgate/audit"
	"ehrgate/fhir"
	"ehrgate/smart"
	"ehrgate/store"
)

// Prefetch keys the services ask for (Options can't change them: the
// checks read them by name).
const (
	prefetchPatient     = "patient"
	prefetchAllergies   = "allergies"
	prefetchMedications = "medications"
)

// allergyTemplate is the prefetch template of the allergy list; the
// service runs it itself against fhirServer when the client did not
// prefetch it.
const allergyTemplate = "AllergyIntolerance?patient={{context.patientId}}"

// medicationTemplate is the prefetch template of the active medication
// orders (duplicate therapy).
const medicationTemplate = "MedicationRequest?patient={{context.patientId}}&status=active"

// listSpec says which of the patient's lists a check needs and how to
// find it.
type listSpec struct {
	Type        string // the resource type: AllergyIntolerance, MedicationRequest
	PrefetchKey string
	Template    string
	Name        string // "allergy list", for messages
	Plural      string // "allergies", for messages
}

var (
	allergyList    = listSpec{Type: "AllergyIntolerance", PrefetchKey: prefetchAllergies, Template: allergyTemplate, Name: "allergy list", Plural: "allergies"}
	medicationList = listSpec{Type: "MedicationRequest", PrefetchKey: prefetchMedications, Template: medicationTemplate, Name: "medication list", Plural: "medication orders"}
)

// PreconditionError is a call the service cannot answer because the data
// it needs cannot be had (CDS Hooks: 412 Precondition Failed). Reason is
// safe to show the caller.
type PreconditionError struct{ Reason string }

func (e *PreconditionError) Error() string { return "cdshooks: precondition failed: " + e.Reason }

// listData is one of the patient's lists and where it came from.
type listData struct {
	Resources []json.RawMessage
	Prov      Provenance
	// Connection and Refs name what was read from ehrgate's own store (for
	// the audit event); empty otherwise.
	Connection string
	Refs       []audit.ResourceRef
}

// list finds one of the patient's lists: the prefetch, else ehrgate's own
// store when fhirServer is a configured connection's base URL, else a
// search of fhirServer with fhirAuthorization (within its scopes and
// before it expires). It fails with a *PreconditionError when none of
// these can give it.
func (s *Service) list(ctx context.Context, req *Request, patientID string, received time.Time, spec listSpec) (listData, error) {
	var tried []string
	if raw, ok := req.Prefetch[spec.PrefetchKey]; ok {
		d, why, ok := fromPrefetch(raw, patientID, spec)
		if ok {
			return d, nil
		}
		tried = append(tried, why)
	} else {
		tried = append(tried, "the request has no "+spec.PrefetchKey+" prefetch")
	}
	if conn, ok := s.connectionFor(req.FHIRServer); ok {
		d, why, ok, err := s.fromStore(ctx, conn, patientID, spec)
		if err != nil {
			return listData{}, err
		}
		if ok {
			return d, nil
		}
		tried = append(tried, why)
	}
	if req.FHIRAuthorization != nil {
		d, why, ok := s.fromFHIRServer(ctx, req, patientID, received, spec)
		if ok {
			return d, nil
		}
		tried = append(tried, why)
	} else {
		tried = append(tried, "no fhirAuthorization to fetch it with")
	}
	return listData{}, &PreconditionError{Reason: "the patient's " + spec.Name + " could not be had: " + strings.Join(tried, "; ")}
}

// allergyData is the allergy list, read.
type allergyData struct {
	Allergies []Allergy
	Prov      Provenance
	// Connection and Refs name what was read from ehrgate's own store.
	Connection string
	Refs       []audit.ResourceRef
}

// allergies finds and reads the patient's allergy list (list).
func (s *Service) allergies(ctx context.Context, req *Request, patientID string, received time.Time) (allergyData, error) {
	l, err := s.list(ctx, req, patientID, received, allergyList)
	if err != nil {
		return allergyData{}, err
	}
	d := allergyData{Prov: l.Prov, Connection: l.Connection, Refs: l.Refs}
	for _, raw := range l.Resources {
		a, err := ParseAllergy(s.norm, raw)
		if err != nil {
			return allergyData{}, &PreconditionError{Reason: "an allergy in the list from " + l.Prov.From + " cannot be read"}
		}
		d.Allergies = append(d.Allergies, a)
	}
	return d, nil
}

// fromPrefetch reads a list's prefetch: a searchset Bundle (every page; a
// Bundle with a next link other than self is incomplete), or null, which CDS Hooks 2.0
// ("Prefetch Template") gives when the client has no data for the key, in
// place of a Bundle with no entries: an empty list. (A client that could
// not get the data omits the key instead.) Entries of other patients are
// dropped.
func fromPrefetch(raw json.RawMessage, patientID string, spec listSpec) (listData, string, bool) {
	if jsonType(raw) == "null" {
		return listData{Prov: Provenance{From: "the EHR's prefetch (none recorded: the prefetch was null)"}}, "", true
	}
	var b fhir.Bundle
	if err := decodeJSON(raw, &b); err != nil || b.ResourceType != "Bundle" {
		return listData{}, "the " + spec.PrefetchKey + " prefetch is not a Bundle", false
	}
	// A next link that repeats self ends the search: a known server quirk
	// (ehrsim's personalities reproduce it), read as fhir.Client reads it.
	if next := b.LinkURL("next"); next != "" && next != b.LinkURL("self") {
		return listData{}, "the " + spec.PrefetchKey + " prefetch has further pages", false
	}
	d := listData{Prov: Provenance{From: "the EHR's prefetch"}}
	for _, e := range b.Entry {
		if e.Search != nil && e.Search.Mode == "outcome" {
			continue
		}
		var h struct {
			ResourceType string `json:"resourceType"`
		}
		if decodeJSON(e.Resource, &h) != nil {
			continue
		}
		switch h.ResourceType {
		case spec.Type:
		case "OperationOutcome":
			return listData{}, "the " + spec.PrefetchKey + " prefetch holds an OperationOutcome", false
		default:
			continue
		}
		if p := resourcePatient(e.Resource); p != "" && p != patientID {
			continue // another patient's: not this patient's list
		}
		d.Resources = append(d.Resources, e.Resource)
	}
	return d, "", true
}

// resourcePatient returns the patient a resource's patient or subject
// reference names.
func resourcePatient(raw json.RawMessage) string {
	var v struct {
		Patient *struct {
			Reference string `json:"reference"`
		} `json:"patient"`
		Subject *struct {
			Reference string `json:"reference"`
		} `json:"subject"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch {
	case v.Patient != nil:
		return referencedPatient(v.Patient.Reference)
	case v.Subject != nil:
		return referencedPatient(v.Subject.Reference)
	}
	return ""
}

// referencedPatient returns the patient id of a reference ("Patient/1",
// "https://ehr/fhir/Patient/1", "Patient/1/_history/2"), or the reference
// itself when it names no Patient.
func referencedPatient(ref string) string {
	if i := strings.LastIndex(ref, "Patient/"); i >= 0 && (i == 0 || ref[i-1] == '/') {
		return strings.SplitN(ref[i+len("Patient/"):], "/", 2)[0]
	}
	return ref
}

// connectionFor returns the configured connection whose base URL is
// fhirServer.
func (s *Service) connectionFor(fhirServer string) (string, bool) {
	if fhirServer == "" {
		return "", false
	}
	key := baseKey(fhirServer)
	conns := s.opts.Connections
	if s.opts.ConnectionsFunc != nil {
		conns = s.opts.ConnectionsFunc()
	}
	for _, c := range conns {
		if baseKey(c.BaseURL) == key {
			return c.Name, true
		}
	}
	return "", false
}

// baseKey compares base URLs: scheme and host in lower case, no trailing
// slash.
func baseKey(raw string) string {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return raw
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

// fromStore reads a list ehrgate holds for the patient on conn. The list
// counts only when ehrgate fetched that type for the patient successfully
// (a fetch state "available"); a source that does not provide the type
// gives a list marked unavailable, not an empty one. For
// MedicationRequest only active orders are kept, as the template asks.
func (s *Service) fromStore(ctx context.Context, conn, patientID string, spec listSpec) (listData, string, bool, error) {
	states, err := s.opts.Store.FetchStates(ctx, conn, patientID)
	if err != nil {
		return listData{}, "", false, fmt.Errorf("reading fetch states: %w", err)
	}
	var st *store.FetchState
	for i := range states {
		if states[i].Type == spec.Type {
			st = &states[i]
		}
	}
	switch {
	case st == nil:
		return listData{}, fmt.Sprintf("ehrgate has not fetched this patient's %s from %s", spec.Plural, conn), false, nil
	case st.Availability == store.NotAvailable:
		return listData{Connection: conn, Prov: Provenance{Unavailable: fmt.Sprintf("%s does not provide %ss", conn, spec.Name)}}, "", true, nil
	case st.Availability != store.Available:
		return listData{}, fmt.Sprintf("ehrgate's last fetch of %s from %s failed", spec.Plural, conn), false, nil
	}
	recs, err := s.opts.Store.ListByPatient(ctx, conn, patientID, spec.Type)
	if err != nil {
		return listData{}, "", false, fmt.Errorf("reading %s: %w", spec.Plural, err)
	}
	d := listData{Connection: conn, Prov: Provenance{From: fmt.Sprintf("ehrgate's copy from %s, fetched %s",
		conn, st.FetchedAt.UTC().Format("2006-01-02 15:04 UTC"))}}
	for _, r := range recs {
		if spec.Type == "MedicationRequest" {
			var m struct{ Status string }
			if json.Unmarshal(r.Raw, &m) == nil && m.Status != "active" {
				continue
			}
		}
		d.Resources = append(d.Resources, json.RawMessage(r.Raw))
		d.Refs = append(d.Refs, audit.ResourceRef{Connection: conn, Type: r.Type, ID: r.ID, Version: r.VersionID})
	}
	return d, "", true, nil
}

// bearer authorizes FHIR requests with the client's access token.
type bearer string

func (b bearer) Authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+string(b))
	return nil
}

// fromFHIRServer runs a list's template against fhirServer with the token
// the client passed, when its scopes allow searching the type for this
// patient and before it expires (expires_in from when the call was
// received). fhirServer must be https unless AllowHTTPFHIRServer (tests,
// the simulator).
func (s *Service) fromFHIRServer(ctx context.Context, req *Request, patientID string, received time.Time, spec listSpec) (listData, string, bool) {
	fa := req.FHIRAuthorization
	expiry := received.Add(time.Duration(fa.ExpiresIn) * time.Second)
	if !s.now().Before(expiry) {
		return listData{}, "the fhirAuthorization token has expired", false
	}
	scopes, err := smart.ParseScopes(fa.Scope)
	if err != nil {
		return listData{}, "the fhirAuthorization scopes cannot be read", false
	}
	allowed := false
	for _, c := range []string{smart.ContextPatient, smart.ContextUser, smart.ContextSystem} {
		if ok, _ := scopes.CanSearch(c, spec.Type); ok {
			if c == smart.ContextPatient && fa.Patient != "" && fa.Patient != patientID {
				continue
			}
			allowed = true
		}
	}
	if !allowed {
		return listData{}, "the fhirAuthorization scopes do not allow reading this patient's " + spec.Type, false
	}
	u, err := url.Parse(req.FHIRServer)
	if err != nil || !(u.Scheme == "https" || (u.Scheme == "http" && s.opts.AllowHTTPFHIRServer)) {
		return listData{}, "fhirServer must be https", false
	}
	filled, err := Substitute(spec.Template, req)
	if err != nil {
		return listData{}, "the " + spec.Name + " search cannot be built from the context", false
	}
	typ, _, q, err := prefetchQuery(filled)
	if err != nil {
		return listData{}, "the " + spec.Name + " search cannot be built from the context", false
	}
	ctx, cancel := context.WithDeadline(ctx, expiry)
	defer cancel()
	client, err := fhir.NewClient(req.FHIRServer, fhir.Options{HTTPClient: s.httpClient, Authorizer: bearer(fa.AccessToken),
		Retry: fhir.RetryPolicy{MaxAttempts: 2}, MaxPages: 20, MaxBodyBytes: 16 << 20, Logger: s.log})
	if err != nil {
		return listData{}, "fhirServer is not a FHIR base URL", false
	}
	fq := fhir.NewQuery()
	for name, vs := range q {
		for _, v := range vs {
			fq.Add(name, v)
		}
	}
	d := listData{Prov: Provenance{From: "the EHR's FHIR server, searched at " + s.now().UTC().Format("2006-01-02 15:04 UTC")}}
	err = client.SearchAll(ctx, typ, fq, func(_ context.Context, page *fhir.Bundle, _ string) error {
		for _, e := range page.Entry {
			if e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match" {
				continue
			}
			var h struct {
				ResourceType string `json:"resourceType"`
			}
			if decodeJSON(e.Resource, &h) != nil || h.ResourceType != spec.Type {
				continue
			}
			d.Resources = append(d.Resources, e.Resource)
		}
		return nil
	})
	if err != nil {
		var fe *fhir.Error
		status := "a network error"
		if errors.As(err, &fe) {
			status = fmt.Sprintf("HTTP %d", fe.StatusCode)
		} else if errors.Is(err, context.DeadlineExceeded) {
			status = "a timeout (or the token expired)"
		}
		s.log.WarnContext(ctx, "cds: search of fhirServer failed", "type", spec.Type, "outcome", status)
		return listData{}, "the EHR's FHIR server answered the " + spec.Name + " search with " + status, false
	}
	return d, "", true
}
