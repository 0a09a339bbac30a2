// Package ehrsim is the simulated EHR that ehrgate develops and tests
// against: a FHIR R4 REST server over an in-memory set of resources, with
// deterministic fault injection and deliberately malformed resources.
//
// A Server is built with New, filled with Load (raw resources, usually from
// package synth) and served through Handler under /fhir/. It is safe for
// concurrent use: Load may run while clients search. See README.md for the
// search parameters, paging and faults.
package ehrsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/fhir"
)

// SoftwareVersion is the simulator version reported in the
// CapabilityStatement.
const SoftwareVersion = "0.1.0"

// contentType is the content type of every FHIR response.
const contentType = "application/fhir+json; charset=utf-8"

// Options configures a Server. The zero value is usable.
type Options struct {
	PageSize    int    // page size when _count is absent (default 50)
	MaxPageSize int    // cap on _count (default 200)
	Faults      Faults // fault injection; off when Rate is 0
	// Malformed reports the resources to serve corrupted: one well-known
	// field gets a value of the wrong JSON type (see README.md). It is asked
	// once per Load, so a resource is corrupted the same way every time it is
	// served. nil = none.
	Malformed func(resourceType, id string) bool
	Logger    *slog.Logger     // request log (identifiers only, never bodies); nil = discard
	Clock     func() time.Time // stamps meta.lastUpdated and bundles; nil = time.Now
	// WriteTypes are the resource types accepted by create and update
	// (write.go); nil = DefaultWriteTypes, empty = none.
	WriteTypes []string
	// BulkExport lists the Bulk Data $export operations (system, Patient
	// and Group level) in the CapabilityStatement, for a Bulk Data server
	// (ehrsim/bulkexport) mounted beside this one.
	BulkExport bool
	// OAuth, when set, publishes the authorization server's endpoints in
	// the CapabilityStatement's rest.security (SMART oauth-uris extension).
	OAuth *OAuthURIs
	// Subscriptions turns on topic-based Subscriptions (subscription.go).
	Subscriptions SubscriptionOptions
}

// OAuthURIs are an authorization server's endpoints as paths on the FHIR
// server's host (e.g. "/auth/token"), resolved against each request's
// scheme and host. Empty ones are left out.
type OAuthURIs struct {
	Authorize, Token, Introspect, Revoke string
}

// Validate reports every problem with the options at once. New applies
// defaults and drops unknown fault kinds instead of failing (turning faults
// off when no valid kind is left), so call Validate on user-supplied options
// first.
func (o Options) Validate() error {
	var errs []error
	if o.PageSize < 0 || o.MaxPageSize < 0 {
		errs = append(errs, errors.New("page sizes must not be negative"))
	}
	if o.PageSize > 0 && o.MaxPageSize > 0 && o.PageSize > o.MaxPageSize {
		errs = append(errs, fmt.Errorf("page size %d exceeds max page size %d", o.PageSize, o.MaxPageSize))
	}
	errs = append(errs, o.Faults.validate()...)
	return errors.Join(errs...)
}

// Stats counts what the server has done since New.
type Stats struct {
	Requests int64               // requests received, faulted ones included
	Faults   map[FaultKind]int64 // faults injected, by kind
}

// Server is a simulated EHR FHIR server. Create it with New.
type Server struct {
	opts   Options
	log    *slog.Logger
	faults *faulter

	mu sync.RWMutex
	ix *index

	requests   atomic.Int64
	faultCount sync.Map // FaultKind → *atomic.Int64
	bundleSeq  atomic.Uint64
	writes     writeState
	subs       subState

	feedMu       sync.Mutex
	feedAdmitted map[string]string // patient id → the change feed's latest Encounter id
}

// New returns an empty server.
func New(opts Options) *Server {
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = 200
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	opts.PageSize = min(opts.PageSize, opts.MaxPageSize)
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var kinds []FaultKind
	for _, k := range opts.Faults.Kinds {
		if _, err := ParseFaultKind(string(k)); err == nil {
			kinds = append(kinds, k)
		} else {
			log.Warn("ehrsim: ignoring unknown fault kind", "kind", string(k))
		}
	}
	if len(opts.Faults.Kinds) > 0 && len(kinds) == 0 {
		log.Warn("ehrsim: no valid fault kind configured; fault injection off")
		opts.Faults.Rate = 0
	}
	opts.Faults.Kinds = kinds
	return &Server{opts: opts, log: log, faults: newFaulter(opts.Faults), ix: newIndex()}
}

// Load indexes one resource, which must be a JSON object with a
// resourceType and a valid FHIR id. Loading a type and id already present
// replaces the old resource and gives it the next meta.versionId and a
// meta.lastUpdated from the clock. A first load keeps the resource's own versionId and
// lastUpdated, setting "1" and the clock's time where they are missing; a
// resource loaded with both is served exactly as given (compacted).
func (s *Server) Load(raw json.RawMessage) error {
	_, err := s.load(raw)
	return err
}

// load is Load, returning the entry stored.
func (s *Server) load(raw json.RawMessage) (*entry, error) {
	obj, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("loading resource: %w", err)
	}
	var typ, id string
	if v, ok := obj.get("resourceType"); ok {
		_ = json.Unmarshal(v, &typ)
	}
	if v, ok := obj.get("id"); ok {
		_ = json.Unmarshal(v, &id)
	}
	if typ == "" || id == "" {
		return nil, errors.New("loading resource: resourceType and id are required strings")
	}
	if !validType(typ) || !validID(id) {
		return nil, fmt.Errorf("loading %q/%q: invalid resource type or id", typ, id)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("loading %s/%s: %w", typ, id, err)
	}
	malformed := s.opts.Malformed != nil && s.opts.Malformed(typ, id)
	ps := paramsFor(typ)

	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.ix.get(typ, id)
	version, lastUpdated := existingMeta(obj)
	stamp := true
	switch {
	case old != nil:
		version, lastUpdated = nextVersion(old.version), s.opts.Clock()
	case version == "":
		version = "1"
		if lastUpdated.IsZero() {
			lastUpdated = s.opts.Clock()
		}
	case lastUpdated.IsZero():
		lastUpdated = s.opts.Clock()
	default:
		stamp = false // a complete meta is served as loaded, byte for byte
	}
	if stamp {
		if obj, err = stampMeta(obj, version, lastUpdated); err != nil {
			return nil, fmt.Errorf("loading %s/%s: %w", typ, id, err)
		}
	}
	if malformed {
		obj = corrupt(typ, obj)
	}
	body, err := obj.encode()
	if err != nil {
		return nil, fmt.Errorf("loading %s/%s: %w", typ, id, err)
	}
	e := &entry{typ: typ, id: id, version: version, lastUpdated: lastUpdated.UTC().Truncate(time.Millisecond), body: body, malformed: malformed}
	e.extract(doc, ps)
	s.ix.put(e, old)
	return e, nil
}

// validType reports whether s looks like a FHIR resource type name.
func validType(s string) bool {
	if !isTypeName(s) {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validID reports whether s is a FHIR id: [A-Za-z0-9\-\.]{1,64}
// (http://hl7.org/fhir/R4/datatypes.html#id).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Counts returns how many resources of each type the server holds: what a
// complete sync must end up with. Malformed resources count.
func (s *Server) Counts() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]int, len(s.ix.byType))
	for typ, list := range s.ix.byType {
		if len(list) > 0 {
			out[typ] = len(list)
		}
	}
	return out
}

// PatientIDs returns the ids of the loaded Patients, sorted.
func (s *Server) PatientIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.ix.byType["Patient"]
	ids := make([]string, len(list))
	for i, e := range list {
		ids[i] = e.id
	}
	return ids
}

// Stats returns the request and fault counters.
func (s *Server) Stats() Stats {
	st := Stats{Requests: s.requests.Load(), Faults: make(map[FaultKind]int64)}
	s.faultCount.Range(func(k, v any) bool {
		st.Faults[k.(FaultKind)] = v.(*atomic.Int64).Load()
		return true
	})
	return st
}

// types returns the resource types the server answers for: the search
// table's types and every loaded type.
func (s *Server) types() []string {
	s.mu.RLock()
	set := make(map[string]bool, len(builtinParams)+len(s.ix.byType))
	for t := range s.ix.byType {
		set[t] = true
	}
	s.mu.RUnlock()
	for t := range builtinParams {
		set[t] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// supports reports whether the server answers for the resource type.
func (s *Server) supports(typ string) bool {
	if _, ok := builtinParams[typ]; ok {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ix.byType[typ]) > 0
}

// Handler returns the HTTP handler serving the FHIR API under /fhir/ (the
// FHIR base is http://HOST/fhir):
//
//	GET  /fhir/metadata                CapabilityStatement (never faulted)
//	GET  /fhir/{type}/{id}             read
//	GET  /fhir/{type}                  search
//	POST /fhir/{type}/_search          search, parameters in a form body
//	POST /fhir/{type}                  create, conditional with If-None-Exist (write.go)
//	PUT  /fhir/{type}/{id}             update, version-checked with If-Match
//	     /fhir/Subscription/...        topic-based Subscriptions, when enabled (subscription.go)
//
// Other methods get 405 and other paths 404, as OperationOutcomes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/metadata", s.serveMetadata)
	s.subscriptionRoutes(mux)
	mux.HandleFunc("GET /fhir/{type}/{id}", s.serveRead)
	mux.HandleFunc("GET /fhir/{type}", s.serveSearch)
	mux.HandleFunc("GET /fhir/{type}/_search", s.serveSearch)
	mux.HandleFunc("POST /fhir/{type}/_search", s.serveSearch)
	mux.HandleFunc("POST /fhir/{type}", s.serveCreate)
	mux.HandleFunc("PUT /fhir/{type}/{id}", s.serveUpdate)
	// "/fhir/{type}" also answers other methods on /fhir/metadata.
	mux.HandleFunc("/fhir/{type}/{id}", methodNotAllowed)
	mux.HandleFunc("/fhir/{type}", methodNotAllowed)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found", "no FHIR endpoint at this path")
	})
	return s.middleware(mux)
}

// middleware counts and logs requests and injects faults.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		var kind FaultKind
		if r.URL.Path != "/fhir/metadata" {
			kind = s.faults.draw()
		}
		switch {
		case isWrite(r) && r.Context().Value(recordedKey{}) == nil:
			// Writes are faulted only by InjectWriteFault, and logged.
			kind = ""
			s.recordWrite(rec, r, next)
		case kind == "" || isWrite(r):
			kind = ""
			next.ServeHTTP(rec, r)
		default:
			s.countFault(kind)
			s.faults.inject(kind, rec, r, next)
		}
		// Paths carry resource types and ids only; queries and bodies are
		// not logged.
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "ehrsim request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.String("fault", string(kind)),
			slog.Duration("elapsed", time.Since(start)))
	})
}

func (s *Server) countFault(kind FaultKind) {
	v, _ := s.faultCount.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	allow := "GET"
	if strings.HasSuffix(r.URL.Path, "/_search") {
		allow = "GET, POST"
	}
	w.Header().Set("Allow", allow)
	fhir.WriteOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported",
		fmt.Sprintf("method %s is not supported here", r.Method))
}

// unsupportedType answers a request for a type the server does not serve:
// 404 with issue code not-supported, as HAPI FHIR does (some servers answer
// 400). Clients can tell it from an unknown id (code not-found).
func unsupportedType(w http.ResponseWriter, typ string) {
	fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-supported",
		fmt.Sprintf("resource type %q is not supported", typ))
}

// serveRead answers GET /fhir/{type}/{id}.
func (s *Server) serveRead(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	if typ == "Subscription" && s.opts.Subscriptions.Enabled {
		s.serveSubscriptionRead(w, r)
		return
	}
	if !s.supports(typ) {
		unsupportedType(w, typ)
		return
	}
	s.mu.RLock()
	e := s.ix.get(typ, id)
	s.mu.RUnlock()
	if e == nil {
		fhir.WriteOutcome(w, http.StatusNotFound, "error", "not-found",
			fmt.Sprintf("%s/%s is not known", typ, id))
		return
	}
	etag := `W/"` + e.version + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Last-Modified", e.lastUpdated.UTC().Format(http.TimeFormat))
	if etagMatches(r.Header.Get("If-None-Match"), e.version) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentType)
	_, _ = w.Write(e.body)
}

// etagMatches applies the weak comparison of If-None-Match (RFC 9110
// section 13.1.2) to the version.
func etagMatches(header, version string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		tag = strings.TrimPrefix(tag, "W/")
		if tag == `"`+version+`"` {
			return true
		}
	}
	return false
}

// serveSearch answers GET /fhir/{type} and POST /fhir/{type}/_search.
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	if !s.supports(typ) {
		unsupportedType(w, typ)
		return
	}
	if err := r.ParseForm(); err != nil {
		fhir.WriteOutcome(w, http.StatusBadRequest, "error", "invalid", "cannot read search parameters")
		return
	}
	q, err := parseQuery(typ, r.Form, s.opts.PageSize, s.opts.MaxPageSize, preferLenient(r.Header))
	if err != nil {
		var se *searchError
		if errors.As(err, &se) {
			fhir.WriteOutcome(w, se.status, "error", se.code, se.msg)
			return
		}
		fhir.WriteOutcome(w, http.StatusInternalServerError, "error", "exception", "search failed")
		return
	}
	s.mu.RLock()
	p := q.run(s.ix)
	s.mu.RUnlock()

	// Links carry the parameters used: ignored ones are left out, so the
	// self link says what the page really is.
	used := cloneValues(r.Form)
	for _, name := range q.ignored {
		used.Del(name)
	}
	base := baseURL(r)
	self := base + "/" + typ
	if enc := used.Encode(); enc != "" {
		self += "?" + enc
	}
	var next string
	if p.more {
		used.Set(paramCursor, encodeCursor(p.matches[len(p.matches)-1].id))
		next = base + "/" + typ + "?" + used.Encode()
	}
	w.Header().Set("Content-Type", contentType)
	if err := s.writeBundle(w, base, self, next, p); err != nil {
		s.log.Debug("ehrsim: writing bundle", "type", typ, "err", err)
	}
}

// preferLenient reports whether the client asked for lenient search
// handling (Prefer: handling=lenient).
func preferLenient(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(pref), " ", ""), "handling=lenient") {
				return true
			}
		}
	}
	return false
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v)+1)
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// baseURL is the FHIR base of the request: its scheme (https when TLS or
// X-Forwarded-Proto says so), Host and /fhir.
func baseURL(r *http.Request) string {
	scheme := "http"
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if r.TLS != nil || strings.EqualFold(strings.TrimSpace(proto), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// Interface guards.
var (
	_ http.ResponseWriter = (*statusRecorder)(nil)
	_ error               = (*searchError)(nil)
)
