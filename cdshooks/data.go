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
// check reads them by name).
const (
	prefetchPatient   = "patient"
	prefetchAllergies = "allergies"
	prefetchUser      = "user"
)

// allergyTemplate is the prefetch template of the allergy list; the
// service runs it itself against fhirServer when the client did not
// prefetch it.
const allergyTemplate = "AllergyIntolerance?patient={{context.patientId}}"

// PreconditionError is a call the service cannot answer because the data
// it needs cannot be had (CDS Hooks: 412 Precondition Failed). Reason is
// safe to show the caller.
type PreconditionError struct{ Reason string }

func (e *PreconditionError) Error() string { return "cdshooks: precondition failed: " + e.Reason }

// allergyData is the allergy list and where it came from.
type allergyData struct {
	Allergies []Allergy
	Prov      Provenance
	// Connection and Refs name what was read from ehrgate's own store (for
	// the audit event); empty otherwise.
	Connection string
	Refs       []audit.ResourceRef
}

// allergies finds the patient's allergy list: the prefetch, else ehrgate's
// own store when fhirServer is a configured connection's base URL, else a
// search of fhirServer with fhirAuthorization (within its scopes and
// before it expires). It fails with a *PreconditionError when none of
// these can give it.
func (s *Service) allergies(ctx context.Context, req *Request, patientID string, received time.Time) (allergyData, error) {
	var tried []string
	if raw, ok := req.Prefetch[prefetchAllergies]; ok {
		d, why, ok := s.fromPrefetch(raw, patientID)
		if ok {
			return d, nil
		}
		tried = append(tried, why)
	} else {
		tried = append(tried, "the request has no allergies prefetch")
	}
	if conn, ok := s.connectionFor(req.FHIRServer); ok {
		d, why, ok, err := s.fromStore(ctx, conn, patientID)
		if err != nil {
			return allergyData{}, err
		}
		if ok {
			return d, nil
		}
		tried = append(tried, why)
	}
	if req.FHIRAuthorization != nil {
		d, why, ok := s.fromFHIRServer(ctx, req, patientID, received)
		if ok {
			return d, nil
		}
		tried = append(tried, why)
	} else {
		tried = append(tried, "no fhirAuthorization to fetch it with")
	}
	return allergyData{}, &PreconditionError{Reason: "the patient's allergy list could not be had: " + strings.Join(tried, "; ")}
}

// fromPrefetch reads the allergies prefetch: a searchset Bundle (every
// page; a Bundle with a next link is incomplete), or null, which the
// specification uses for "the client has no data for this key".
func (s *Service) fromPrefetch(raw json.RawMessage, patientID string) (allergyData, string, bool) {
	prov := Provenance{From: "the EHR's prefetched allergy list"}
	if jsonType(raw) == "null" {
		return allergyData{Prov: Provenance{Unavailable: "the EHR sent no allergy list (its allergies prefetch was null)"}}, "", true
	}
	var b fhir.Bundle
	if err := json.Unmarshal(raw, &b); err != nil || b.ResourceType != "Bundle" {
		return allergyData{}, "the allergies prefetch is not a Bundle", false
	}
	if b.LinkURL("next") != "" {
		return allergyData{}, "the allergies prefetch has further pages", false
	}
	d := allergyData{Prov: prov}
	for _, e := range b.Entry {
		if e.Search != nil && e.Search.Mode == "outcome" {
			continue
		}
		var h struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &h) != nil {
			continue
		}
		switch h.ResourceType {
		case "AllergyIntolerance":
		case "OperationOutcome":
			return allergyData{}, "the allergies prefetch holds an OperationOutcome", false
		default:
			continue
		}
		a, err := ParseAllergy(s.norm, e.Resource)
		if err != nil {
			return allergyData{}, "an allergy in the prefetch is malformed", false
		}
		if p := allergyPatient(e.Resource); p != "" && p != patientID {
			continue // another patient's allergy: not this patient's list
		}
		d.Allergies = append(d.Allergies, a)
	}
	return d, "", true
}

func allergyPatient(raw json.RawMessage) string {
	var v struct {
		Patient *struct {
			Reference string `json:"reference"`
		} `json:"patient"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Patient == nil {
		return ""
	}
	return referencedPatient(v.Patient.Reference)
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

// fromStore reads the allergies ehrgate holds for the patient on conn. The
// list counts only when ehrgate fetched the patient's allergies
// successfully (a fetch state "available"); a source that does not provide
// allergies gives a list marked unavailable, not an empty one.
func (s *Service) fromStore(ctx context.Context, conn, patientID string) (allergyData, string, bool, error) {
	states, err := s.opts.Store.FetchStates(ctx, conn, patientID)
	if err != nil {
		return allergyData{}, "", false, fmt.Errorf("reading fetch states: %w", err)
	}
	var st *store.FetchState
	for i := range states {
		if states[i].Type == "AllergyIntolerance" {
			st = &states[i]
		}
	}
	switch {
	case st == nil:
		return allergyData{}, fmt.Sprintf("ehrgate has not fetched this patient's allergies from %s", conn), false, nil
	case st.Availability == store.NotAvailable:
		return allergyData{Connection: conn, Prov: Provenance{Unavailable: fmt.Sprintf("%s does not provide allergy lists", conn)}}, "", true, nil
	case st.Availability != store.Available:
		return allergyData{}, fmt.Sprintf("ehrgate's last fetch of allergies from %s failed", conn), false, nil
	}
	recs, err := s.opts.Store.ListByPatient(ctx, conn, patientID, "AllergyIntolerance")
	if err != nil {
		return allergyData{}, "", false, fmt.Errorf("reading allergies: %w", err)
	}
	d := allergyData{Connection: conn, Prov: Provenance{From: fmt.Sprintf("ehrgate's copy from %s, fetched %s",
		conn, st.FetchedAt.UTC().Format("2006-01-02 15:04 UTC"))}}
	for _, r := range recs {
		a, err := ParseAllergy(s.norm, r.Raw)
		if err != nil {
			return allergyData{}, fmt.Sprintf("an allergy ehrgate holds from %s cannot be read", conn), false, nil
		}
		d.Allergies = append(d.Allergies, a)
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

// fromFHIRServer searches fhirServer for the allergies with the token the
// client passed, when its scopes allow reading AllergyIntolerance for
// this patient and before it expires (expires_in from when the call was
// received). fhirServer must be https unless AllowHTTPFHIRServer (tests,
// the simulator).
func (s *Service) fromFHIRServer(ctx context.Context, req *Request, patientID string, received time.Time) (allergyData, string, bool) {
	fa := req.FHIRAuthorization
	expiry := received.Add(time.Duration(fa.ExpiresIn) * time.Second)
	if !s.now().Before(expiry) {
		return allergyData{}, "the fhirAuthorization token has expired", false
	}
	scopes, err := smart.ParseScopes(fa.Scope)
	if err != nil {
		return allergyData{}, "the fhirAuthorization scopes cannot be read", false
	}
	allowed := false
	for _, c := range []string{smart.ContextPatient, smart.ContextUser, smart.ContextSystem} {
		if ok, _ := scopes.CanSearch(c, "AllergyIntolerance"); ok {
			if c == smart.ContextPatient && fa.Patient != "" && fa.Patient != patientID {
				continue
			}
			allowed = true
		}
	}
	if !allowed {
		return allergyData{}, "the fhirAuthorization scopes do not allow reading this patient's AllergyIntolerance", false
	}
	u, err := url.Parse(req.FHIRServer)
	if err != nil || !(u.Scheme == "https" || (u.Scheme == "http" && s.opts.AllowHTTPFHIRServer)) {
		return allergyData{}, "fhirServer must be https", false
	}
	filled, err := Substitute(allergyTemplate, req)
	if err != nil {
		return allergyData{}, "the allergy search cannot be built from the context", false
	}
	typ, _, q, err := prefetchQuery(filled)
	if err != nil {
		return allergyData{}, "the allergy search cannot be built from the context", false
	}
	ctx, cancel := context.WithDeadline(ctx, expiry)
	defer cancel()
	client, err := fhir.NewClient(req.FHIRServer, fhir.Options{HTTPClient: s.httpClient, Authorizer: bearer(fa.AccessToken),
		Retry: fhir.RetryPolicy{MaxAttempts: 2}, MaxPages: 20, MaxBodyBytes: 16 << 20, Logger: s.log})
	if err != nil {
		return allergyData{}, "fhirServer is not a FHIR base URL", false
	}
	fq := fhir.NewQuery()
	for name, vs := range q {
		for _, v := range vs {
			fq.Add(name, v)
		}
	}
	d := allergyData{Prov: Provenance{From: "the EHR's FHIR server, searched at " + s.now().UTC().Format("2006-01-02 15:04 UTC")}}
	err = client.SearchAll(ctx, typ, fq, func(_ context.Context, page *fhir.Bundle, _ string) error {
		for _, e := range page.Entry {
			if e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match" {
				continue
			}
			var h struct {
				ResourceType string `json:"resourceType"`
			}
			if json.Unmarshal(e.Resource, &h) != nil || h.ResourceType != "AllergyIntolerance" {
				continue
			}
			a, err := ParseAllergy(s.norm, e.Resource)
			if err != nil {
				return err
			}
			d.Allergies = append(d.Allergies, a)
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
		s.log.WarnContext(ctx, "cds: allergy search of fhirServer failed", "outcome", status)
		return allergyData{}, "the EHR's FHIR server answered the allergy search with " + status, false
	}
	return d, "", true
}
