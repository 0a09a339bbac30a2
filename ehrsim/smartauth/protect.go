package smartauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"ehrgate/fhir"
)

// nonCompartmentTypes are resource types outside the Patient compartment:
// patient/ scopes grant them without a patient filter (they hold no
// patient's data: a Medication is a product, a Practitioner a clinician).
var nonCompartmentTypes = []string{
	"Medication", "Practitioner", "PractitionerRole", "Organization", "Location", "Substance",
	"Endpoint", "HealthcareService", "ValueSet", "CodeSystem", "StructureDefinition", "Questionnaire",
}

// access is what a token may do for one request.
type access struct {
	compartment string     // patient id the request is confined to; "" = none
	restriction url.Values // v2 scope query to AND into searches; nil = none
}

// Protect puts the SMART resource-server checks in front of a FHIR
// handler serving the Issuer's path:
//
//   - <fhir>/metadata and <fhir>/.well-known/smart-configuration stay open.
//   - Every other request needs an active access token (Authorization:
//     Bearer): a missing, unknown, expired or revoked one gets 401 with
//     WWW-Authenticate: Bearer realm="ehrsim", error="invalid_token" and an
//     OperationOutcome.
//   - The token's scopes must permit the resource type and interaction
//     (read r, search s, create c, update u, delete d; v1 read = rs,
//     write = cud), else 403 insufficient_scope.
//   - When only patient/ scopes permit it, the request is confined to the
//     token's patient: searches get patient=<id> (Patient: _id=<id>) added,
//     and a search naming another patient gets 403; a read of another
//     patient's resource gets 404 (existence is not revealed). The patient of
//     a read resource is taken from the response body's subject or patient
//     reference, so any type works without per-type rules; without a
//     readable one the wrapped server's search index is asked
//     (T?_id=<id>&patient=<pid>).
//   - A v2 scope with a query (patient/Observation.rs?category=laboratory)
//     ANDs its parameters into searches (results are filtered, not
//     refused); a read of a resource outside it gets 403.
func (s *Server) Protect(next http.Handler) http.Handler {
	prefix := s.fhirPrefix()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if path == prefix+"/metadata" || path == prefix+"/.well-known/smart-configuration" {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := bearerToken(r)
		if !ok {
			unauthorized(w, "an access token is required (Authorization: Bearer)")
			return
		}
		t, desc := s.activeAccess(tok)
		if desc != "" {
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: bearer refused", slog.String("reason", desc))
			unauthorized(w, desc)
			return
		}
		typ, id, perm, kind := classify(strings.TrimPrefix(path, prefix), r.Method)
		if kind == "bulk" {
			// Bulk Data (https://hl7.org/fhir/uv/bulkdata/): a kick-off
			// needs read on every exported type (_type, in the query or a
			// POST's Parameters, else everything); status requests need
			// only a valid token; the token's grant rides in the context
			// so that the Bulk Data server can check each file's type
			// (BulkMayRead).
			if strings.Contains(path, "$export") {
				types, body, err := kickoffTypes(r)
				if err != nil {
					fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", err.Error())
					return
				}
				if s.opts.BulkScopeFilter {
					narrowed, ok := bulkTypes(parseScopeList(t.scopes), t.patient, types)
					if !ok {
						forbidden(w, "the token's scopes permit reading none of the requested types")
						return
					}
					if narrowed != nil {
						r = withKickoffTypes(r, body, narrowed)
					}
				} else {
					for _, ty := range types {
						if _, deny := decide(parseScopeList(t.scopes), t.patient, strings.TrimSpace(ty), permR); deny != "" {
							forbidden(w, deny)
							return
						}
					}
				}
			}
			r = r.Clone(context.WithValue(r.Context(), bulkAccessKey{}, bulkAccess{scopes: t.scopes, patient: t.patient}))
			r.Header.Del("Authorization")
			next.ServeHTTP(w, r)
			return
		}
		a, deny := decide(parseScopeList(t.scopes), t.patient, typ, perm)
		if deny != "" {
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: scope refused",
				slog.String("client_id", t.clientID), slog.String("type", typ))
			forbidden(w, deny)
			return
		}
		if slices.Contains(nonCompartmentTypes, typ) {
			a.compartment = ""
		}
		r = r.Clone(r.Context())
		r.Header.Del("Authorization") // the FHIR server never sees tokens
		switch {
		case a.compartment == "" && a.restriction == nil:
			next.ServeHTTP(w, r)
		case kind == "search":
			s.serveConfinedSearch(w, r, next, typ, a)
		case kind == "read":
			s.serveConfinedRead(w, r, next, typ, id, a)
		default:
			forbidden(w, "this interaction is not available under patient-level or restricted scopes")
		}
	})
}

// maxKickoffBody bounds the POST kick-off bodies Protect reads.
const maxKickoffBody = 1 << 20

// kickoffTypes returns the types a Bulk Data kick-off asks for ("*" when
// it names none): every _type value of a GET's query, or of a POST's FHIR
// Parameters body (returned, and put back into r.Body, for the server).
func kickoffTypes(r *http.Request) ([]string, map[string]any, error) {
	var vals []string
	var body map[string]any
	if r.Method == http.MethodPost {
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxKickoffBody))
		if err != nil {
			return nil, nil, fmt.Errorf("reading the kick-off body: %w", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if json.Unmarshal(raw, &body) == nil {
			params, _ := body["parameter"].([]any)
			for _, p := range params {
				pm, _ := p.(map[string]any)
				if v, ok := pm["valueString"].(string); ok && pm["name"] == "_type" {
					vals = append(vals, v)
				}
			}
		}
	}
	vals = append(vals, r.URL.Query()["_type"]...)
	var types []string
	for _, v := range vals {
		for _, ty := range strings.Split(v, ",") {
			if ty = strings.TrimSpace(ty); ty != "" {
				types = append(types, ty)
			}
		}
	}
	if len(types) == 0 {
		types = []string{"*"}
	}
	return types, body, nil
}

// withKickoffTypes returns a copy of a kick-off asking for types only: in
// the query of a GET, in the Parameters body of a POST.
func withKickoffTypes(r *http.Request, body map[string]any, types []string) *http.Request {
	r = r.Clone(r.Context())
	if r.Method != http.MethodPost || body == nil {
		q := r.URL.Query()
		q.Set("_type", strings.Join(types, ","))
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
		return r
	}
	params, _ := body["parameter"].([]any)
	kept := []any{}
	for _, p := range params {
		if pm, _ := p.(map[string]any); pm["name"] != "_type" {
			kept = append(kept, p)
		}
	}
	body["parameter"] = append(kept, map[string]any{"name": "_type", "valueString": strings.Join(types, ",")})
	raw, _ := json.Marshal(body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	r.Header.Del("Content-Length")
	return r
}

// bulkAccessKey keys the context value Protect gives Bulk Data requests.
type bulkAccessKey struct{}

// bulkAccess is what the access token of a Bulk Data request grants.
type bulkAccess struct {
	scopes  []string
	patient string
}

// BulkMayRead reports (nil) whether the access token of a Bulk Data
// request that passed Protect may read resources of type typ: a file
// download is checked against the token presented with it, not the one
// the export was kicked off with. A request that did not pass Protect
// (no authorization server in front) may.
func BulkMayRead(r *http.Request, typ string) error {
	a, ok := r.Context().Value(bulkAccessKey{}).(bulkAccess)
	if !ok {
		return nil
	}
	if _, deny := decide(parseScopeList(a.scopes), a.patient, typ, permR); deny != "" {
		return errors.New(deny)
	}
	return nil
}

// bulkTypes narrows a kick-off's types ("*" = no _type) to those the
// scopes permit reading (Options.BulkScopeFilter). It returns nil when the
// request may go as it is, and false when nothing is left.
func bulkTypes(scopes []scope, patient string, types []string) ([]string, bool) {
	readable := func(ty string) bool {
		_, deny := decide(scopes, patient, ty, permR)
		return deny == ""
	}
	if len(types) == 1 && types[0] == "*" {
		if readable("*") {
			return nil, true
		}
		types = nil // every type the token names
		for _, sc := range scopes {
			if sc.isResource() && sc.typ != "*" && !slices.Contains(types, sc.typ) {
				types = append(types, sc.typ)
			}
		}
	}
	var out []string
	for _, ty := range types {
		if ty = strings.TrimSpace(ty); readable(ty) && !slices.Contains(out, ty) {
			out = append(out, ty)
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	if slices.Equal(out, types) {
		return nil, true
	}
	return out, true
}

// activeAccess checks an access token and returns its record, or a
// description of why it is not active.
func (s *Server) activeAccess(tok string) (tokenInfo, string) {
	t, ok := s.st.lookup(tok)
	switch {
	case !ok || t.kind != kindAccess:
		return t, "the access token is not recognized"
	case t.revoked:
		return t, "the access token has been revoked"
	case !s.now().Before(t.expires):
		return t, "the access token has expired"
	case s.fail(t.clientID, func(f Failures) bool { return f.InvalidAccessToken }):
		return t, "the access token is invalid"
	}
	return t, ""
}

// classify maps a path below the FHIR base and a method to a resource type
// ("*" for system-level paths), id, permission bit and kind (read, search
// or other).
func classify(rest, method string) (typ, id string, perm int, kind string) {
	if strings.Contains(rest, "$export") || strings.Contains(rest, "$bulk-") {
		return "*", "", permR, "bulk"
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	typ = segs[0]
	if !isTypeName(typ) {
		return "*", "", permR, "other"
	}
	switch {
	case len(segs) == 1 && (method == http.MethodGet || method == http.MethodHead):
		return typ, "", permS, "search"
	case len(segs) == 1 && method == http.MethodPost:
		return typ, "", permC, "other"
	case len(segs) == 2 && segs[1] == "_search":
		return typ, "", permS, "search"
	case len(segs) == 2 && (method == http.MethodGet || method == http.MethodHead):
		return typ, segs[1], permR, "read"
	case len(segs) == 2 && (method == http.MethodPut || method == http.MethodPatch):
		return typ, segs[1], permU, "other"
	case len(segs) == 2 && method == http.MethodDelete:
		return typ, segs[1], permD, "other"
	}
	return typ, "", permR, "other"
}

// decide works out the access the scopes give for an interaction with a
// type, or why there is none. user/ and system/ scopes win over patient/
// ones; an unrestricted scope wins over restricted ones.
func decide(scopes []scope, patient, typ string, perm int) (access, string) {
	var broad, narrow []scope
	for _, sc := range scopes {
		if !sc.permits(typ, perm) || (typ == "*" && sc.typ != "*") {
			continue
		}
		if sc.context == "patient" {
			narrow = append(narrow, sc)
		} else {
			broad = append(broad, sc)
		}
	}
	class := broad
	var a access
	if len(broad) == 0 {
		if len(narrow) == 0 {
			return a, fmt.Sprintf("the token's scopes do not permit %s on %s", permName(perm), typ)
		}
		if typ == "*" {
			return a, "system-level requests need user/ or system/ scopes"
		}
		if patient == "" {
			return a, "patient/ scopes need a patient in the launch context"
		}
		class, a.compartment = narrow, patient
	}
	var restricted []url.Values
	for _, sc := range class {
		if sc.query == nil {
			return a, ""
		}
		restricted = append(restricted, sc.query)
	}
	if len(restricted) == 1 {
		a.restriction = restricted[0]
		return a, ""
	}
	// Several restricted scopes: OR them when each restricts one parameter,
	// the same one, with one value (category=a and category=b → a,b).
	var name string
	var vals []string
	for _, q := range restricted {
		if len(q) != 1 {
			return a, "the token's restricted scopes cannot be combined for this request"
		}
		for k, v := range q {
			if (name != "" && k != name) || len(v) != 1 {
				return a, "the token's restricted scopes cannot be combined for this request"
			}
			name = k
			vals = append(vals, v[0])
		}
	}
	a.restriction = url.Values{name: {strings.Join(vals, ",")}}
	return a, ""
}

// permName names a permission bit.
func permName(p int) string {
	return map[int]string{permC: "create", permR: "read", permU: "update", permD: "delete", permS: "search"}[p]
}

// serveConfinedSearch runs a search confined to a patient compartment
// and/or a scope restriction, as a GET on the type.
func (s *Server) serveConfinedSearch(w http.ResponseWriter, r *http.Request, next http.Handler, typ string, a access) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "cannot read search parameters")
			return
		}
		q = r.Form
	}
	if a.compartment != "" {
		if msg := confine(q, typ, a.compartment); msg != "" {
			forbidden(w, msg)
			return
		}
	}
	for k, vs := range a.restriction {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	r2 := r.Clone(r.Context())
	r2.Method = http.MethodGet
	r2.Body = http.NoBody
	r2.ContentLength = 0
	r2.Header.Del("Content-Type")
	r2.URL.Path = s.fhirPrefix() + "/" + typ
	r2.URL.RawPath = ""
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	r2.Form, r2.PostForm = nil, nil
	next.ServeHTTP(w, r2)
}

// confine checks a search's patient parameters against the compartment,
// adding patient=<id> (Patient: _id=<id>) when there is none. It returns
// why the search must be refused, or "".
func confine(q url.Values, typ, patient string) string {
	other := "the search names a patient outside the token's patient context"
	if typ == "Patient" {
		vals, ok := q["_id"]
		if !ok {
			q.Set("_id", patient)
			return ""
		}
		for _, v := range vals {
			for id := range strings.SplitSeq(v, ",") {
				if id != patient {
					return other
				}
			}
		}
		return ""
	}
	found := false
	for name, vals := range q {
		base := name
		if i := strings.IndexAny(base, ":."); i >= 0 {
			base = base[:i]
		}
		if base != "patient" && base != "subject" {
			continue
		}
		if name != base && name != base+":Patient" {
			return "chained or modified patient parameters are not allowed under patient/ scopes"
		}
		found = true
		for _, v := range vals {
			for ref := range strings.SplitSeq(v, ",") {
				if refPatient(ref, true) != patient {
					return other
				}
			}
		}
	}
	if !found {
		q.Set("patient", patient)
	}
	return ""
}

// refPatient returns the Patient id a reference names ("123",
// "Patient/123", ".../Patient/123"), or "". A bare id counts only when
// bareIsPatient.
func refPatient(ref string, bareIsPatient bool) string {
	ref = strings.TrimSpace(ref)
	if i := strings.LastIndex(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if !strings.Contains(ref, "/") {
		if bareIsPatient {
			return ref
		}
		return ""
	}
	parts := strings.Split(ref, "/")
	if len(parts) >= 2 && parts[len(parts)-2] == "Patient" {
		return parts[len(parts)-1]
	}
	return ""
}

// bufferedResponse records a response of the wrapped handler.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBuffered() *bufferedResponse {
	return &bufferedResponse{header: http.Header{}, status: http.StatusOK}
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

// HandlerTransport returns a RoundTripper that answers requests with h in
// process (the EHR reading its own FHIR API, as the ordering screen does):
// the request goes to h unchanged, the response is h's, buffered.
func HandlerTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := newBuffered()
	t.h.ServeHTTP(rec, req)
	return &http.Response{StatusCode: rec.status, Status: http.StatusText(rec.status), Header: rec.header,
		Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: req,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// copyTo writes the recorded response to w.
func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// serveConfinedRead reads a resource through the wrapped handler and
// passes it on only when it is in the compartment (else 404) and matches
// the restriction (else 403). If-None-Match is answered here, after the
// check, so a 304 reveals nothing either.
func (s *Server) serveConfinedRead(w http.ResponseWriter, r *http.Request, next http.Handler, typ, id string, a access) {
	notFound := func() {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", fmt.Sprintf("%s/%s is not known", typ, id))
	}
	if a.compartment != "" && typ == "Patient" && id != a.compartment {
		notFound()
		return
	}
	inm := r.Header.Get("If-None-Match")
	r.Header.Del("If-None-Match")
	rec := newBuffered()
	next.ServeHTTP(rec, r)
	if rec.status != http.StatusOK {
		rec.copyTo(w)
		return
	}
	if a.compartment != "" && typ != "Patient" {
		in, decided, err := inCompartment(rec.body.Bytes(), a.compartment)
		if err != nil {
			// e.g. a truncated body: retryable, and nothing of it is passed on.
			fhir.WriteOutcome(w, http.StatusBadGateway, "error", "exception", "the resource could not be checked against the token's patient; retry")
			return
		}
		if !decided {
			// No readable subject or patient reference (a type with another
			// patient element, or a deliberately malformed resource): ask the
			// server's own search index.
			in, err = s.matchesRestriction(r, next, typ, id, url.Values{"patient": {a.compartment}})
			in = in && err == nil
		}
		if !in {
			notFound()
			return
		}
	}
	if a.restriction != nil {
		ok, err := s.matchesRestriction(r, next, typ, id, a.restriction)
		if err != nil {
			fhir.WriteOutcome(w, http.StatusServiceUnavailable, "error", "transient", "could not check the scope restriction; retry")
			return
		}
		if !ok {
			forbidden(w, "the resource is outside the token's restricted scope")
			return
		}
	}
	if etag := rec.header.Get("ETag"); inm != "" && etag != "" && etagMatch(inm, etag) {
		for _, k := range []string{"ETag", "Last-Modified"} {
			w.Header().Set(k, rec.header.Get(k))
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	rec.copyTo(w)
}

// etagMatch applies If-None-Match's weak comparison.
func etagMatch(header, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}

// inCompartment reports whether a resource's subject or patient reference
// names the patient. decided is false when the resource has neither as a
// readable reference; err is set when the body is not a JSON object.
func inCompartment(body []byte, patient string) (in, decided bool, err error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return false, false, fmt.Errorf("decoding resource: %w", err)
	}
	for _, k := range []string{"subject", "patient"} {
		var ref struct {
			Reference string `json:"reference"`
		}
		raw, ok := doc[k]
		if !ok || json.Unmarshal(raw, &ref) != nil || ref.Reference == "" {
			continue
		}
		decided = true
		if refPatient(ref.Reference, false) == patient {
			return true, true, nil
		}
	}
	return false, decided, nil
}

// matchesRestriction asks the wrapped handler whether type/id matches the
// restriction (search parameters): a search _id=<id> plus the restriction
// with _count=0.
func (s *Server) matchesRestriction(r *http.Request, next http.Handler, typ, id string, restriction url.Values) (bool, error) {
	q := url.Values{"_id": {id}, "_count": {"0"}}
	for k, v := range restriction {
		q[k] = v
	}
	var bundle struct {
		Total *int `json:"total"`
	}
	if err := s.internalGet(r, next, s.fhirPrefix()+"/"+typ+"?"+q.Encode(), &bundle); err != nil {
		return false, err
	}
	if bundle.Total == nil {
		return false, fmt.Errorf("checking restriction on %s: no total", typ)
	}
	return *bundle.Total > 0, nil
}

// internalGet GETs a path from the wrapped handler and decodes the JSON
// answer, retrying twice (the simulator may inject faults).
func (s *Server) internalGet(r *http.Request, next http.Handler, target string, dest any) error {
	var err error
	for range 3 {
		req, e := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
		if e != nil {
			return fmt.Errorf("internal GET: %w", e)
		}
		req.Host = r.Host
		req.RequestURI = target
		rec := newBuffered()
		next.ServeHTTP(rec, req)
		if rec.status != http.StatusOK {
			err = fmt.Errorf("internal GET: status %d", rec.status)
			continue
		}
		if e := json.Unmarshal(rec.body.Bytes(), dest); e != nil {
			err = fmt.Errorf("internal GET: decoding: %w", e)
			continue
		}
		return nil
	}
	return err
}

// unauthorized answers 401 with a Bearer challenge (RFC 6750 section 3)
// and an OperationOutcome.
func unauthorized(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="ehrsim", error="invalid_token", error_description=%q`, desc))
	fhir.WriteOutcome(w, http.StatusUnauthorized, "error", "login", desc)
}

// forbidden answers 403 insufficient_scope with an OperationOutcome.
func forbidden(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="ehrsim", error="insufficient_scope", error_description=%q`, desc))
	fhir.WriteOutcome(w, http.StatusForbidden, "error", "forbidden", desc)
}

// PatientLister returns a Options.Patients function that lists the
// Patients of a FHIR handler serving the base path fhirBase (e.g. "/fhir"),
// in-process: a Patient search paged with _count=200, up to 1000 patients,
// each named by name[0].text or given + family. Pass the unprotected
// handler.
func PatientLister(fhirHandler http.Handler, fhirBase string) func() []PatientChoice {
	fhirBase = strings.TrimRight(fhirBase, "/")
	return func() []PatientChoice {
		var out []PatientChoice
		target := fhirBase + "/Patient?_count=200"
		for page := 0; target != "" && page < 5; page++ {
			req, err := http.NewRequest(http.MethodGet, target, nil)
			if err != nil {
				return out
			}
			var rec *bufferedResponse
			for range 3 { // the simulator may inject faults
				rec = newBuffered()
				fhirHandler.ServeHTTP(rec, req)
				if rec.status == http.StatusOK {
					break
				}
			}
			var b struct {
				Link []struct {
					Relation string `json:"relation"`
					URL      string `json:"url"`
				} `json:"link"`
				Entry []struct {
					Resource struct {
						ID   string `json:"id"`
						Name []struct {
							Text   string   `json:"text"`
							Family string   `json:"family"`
							Given  []string `json:"given"`
						} `json:"name"`
					} `json:"resource"`
				} `json:"entry"`
			}
			if rec.status != http.StatusOK || json.NewDecoder(io.LimitReader(&rec.body, 64<<20)).Decode(&b) != nil {
				return out
			}
			for _, e := range b.Entry {
				p := PatientChoice{ID: e.Resource.ID, Name: e.Resource.ID}
				if len(e.Resource.Name) > 0 {
					n := e.Resource.Name[0]
					if n.Text != "" {
						p.Name = n.Text
					} else if full := strings.TrimSpace(strings.Join(append(slices.Clone(n.Given), n.Family), " ")); full != "" {
						p.Name = full
					}
				}
				out = append(out, p)
			}
			target = ""
			for _, l := range b.Link {
				if l.Relation == "next" {
					if u, err := url.Parse(l.URL); err == nil {
						target = u.RequestURI()
					}
				}
			}
		}
		return out
	}
}

// Interface guards.
var (
	_ http.ResponseWriter = (*bufferedResponse)(nil)
	_ http.RoundTripper   = handlerTransport{}
	_ error               = (*Error)(nil)
)
