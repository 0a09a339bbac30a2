package personality

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ehrgate/ehr"
	"ehrgate/fhir"
)

// alwaysAllowed are parameters every personality accepts: paging and
// format controls the core needs.
var alwaysAllowed = []string{"_count", "_cursor", "_format"}

// Wrap returns core (an ehrsim handler serving /fhir/) behaving like the
// vendor's FHIR API, with site (may be nil) layered on top. It fails for a
// vendor without a personality or an ehr profile.
func Wrap(vendor string, site *ehr.SiteProfile, core http.Handler) (http.Handler, error) {
	spec, ok := Lookup(vendor)
	if !ok {
		return nil, fmt.Errorf("personality: no personality for vendor %q (known: %s)", vendor, ehr.AcceptedNames())
	}
	a, err := ehr.Lookup(vendor)
	if err != nil {
		return nil, fmt.Errorf("personality: %w", err)
	}
	if site != nil {
		if err := site.Validate(); err != nil {
			return nil, fmt.Errorf("personality: site profile: %w", err)
		}
	}
	h := &handler{spec: spec, profile: a.Profile(), site: site, core: core}
	if spec.RateLimit > 0 {
		h.bucket = newBucket(spec.RateLimit, spec.Burst)
	}
	return h, nil
}

type handler struct {
	spec    Spec
	profile ehr.Profile
	site    *ehr.SiteProfile
	core    http.Handler
	bucket  *bucket
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/fhir/")
	if !ok {
		h.core.ServeHTTP(w, r)
		return
	}
	if h.bucket != nil && !h.bucket.take() {
		w.Header().Set("Retry-After", "1")
		fhir.WriteOutcome(w, http.StatusTooManyRequests, "error", "throttled", "Request rate limit exceeded.")
		return
	}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case parts[0] == "Subscription":
		// The core's topic-based Subscriptions, when it has them on, are
		// the same for every vendor.
		h.core.ServeHTTP(w, r)
	case rest == "metadata":
		h.serveMetadata(w, r)
	case rest == ".well-known/smart-configuration" && r.Method == http.MethodGet:
		h.serveSMARTConfig(w, r)
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] != "":
		h.serveSearch(w, r, parts[0])
	case (r.Method == http.MethodPost && len(parts) == 1 && parts[0] != "") ||
		(r.Method == http.MethodPut && len(parts) == 2):
		op := "create"
		if r.Method == http.MethodPut {
			op = "update"
		}
		if !h.profile.Write.Accepts(parts[0], op) || h.site.TypeDisabled(parts[0]) {
			st := h.spec.WriteRefused
			if st.Status == 0 {
				st = ErrorStyle{Status: http.StatusMethodNotAllowed, Severity: "error", Code: "not-supported"}
			}
			h.writeError(w, st, fmt.Sprintf("The %s interaction is not supported for %s.", op, parts[0]))
			return
		}
		h.core.ServeHTTP(w, r)
	case r.Method == http.MethodGet && len(parts) == 2 && !strings.HasPrefix(parts[1], "$"):
		// A type the vendor takes writes of can be read back.
		if !h.serves(parts[0]) && !h.profile.Write.Accepts(parts[0], "create") {
			h.writeError(w, h.spec.UnsupportedType, parts[0]+" is not supported.")
			return
		}
		h.rewrite(w, r, func(body []byte) []byte { return h.rewriteResource(body) })
	default:
		h.core.ServeHTTP(w, r)
	}
}

// serves reports whether the vendor and site offer typ.
func (h *handler) serves(typ string) bool {
	if h.site.TypeDisabled(typ) {
		return false
	}
	if len(h.profile.Types) == 0 {
		return true
	}
	tr, ok := h.profile.Types[typ]
	return ok && tr.Disabled == ""
}

// allowed reports whether the vendor and site accept a search parameter.
func (h *handler) allowed(typ, param string) bool {
	name, _, _ := strings.Cut(param, ":")
	if h.site.ParamDisabled(typ, name) {
		return false
	}
	if slices.Contains(alwaysAllowed, name) {
		return true
	}
	tr := h.profile.Types[typ]
	if len(tr.Params) == 0 {
		return true // the vendor lists none: the core decides
	}
	return slices.Contains(tr.Params, name)
}

func (h *handler) serveSearch(w http.ResponseWriter, r *http.Request, typ string) {
	if !h.serves(typ) && !h.profile.Write.Accepts(typ, "create") {
		h.writeError(w, h.spec.UnsupportedType, "The resource type "+typ+" is not supported.")
		return
	}
	q := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if h.allowed(typ, name) {
			continue
		}
		if h.spec.Lenient && !h.site.ParamDisabled(typ, name) {
			q.Del(name)
			continue
		}
		h.writeError(w, h.spec.UnsupportedParam, fmt.Sprintf("The search parameter %q is not supported for %s.", name, typ))
		return
	}
	if p := h.spec.Required[typ]; p != "" && q.Get(p) == "" {
		h.writeError(w, h.spec.MissingRequired, fmt.Sprintf("Required parameter %q is missing for %s searches.", p, typ))
		return
	}
	if c := h.spec.MaxPageSize; c > 0 {
		if n, err := strconv.Atoi(q.Get("_count")); err == nil && n > c {
			q.Set("_count", strconv.Itoa(c))
		}
		if !q.Has("_count") {
			q.Set("_count", strconv.Itoa(c))
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	h.rewrite(w, r2, func(body []byte) []byte { return h.rewriteBundle(body, q.Has("_cursor")) })
}

// rewrite serves r with the core and passes a 200 JSON body through fn.
func (h *handler) rewrite(w http.ResponseWriter, r *http.Request, fn func([]byte) []byte) {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	h.core.ServeHTTP(rec, r)
	body := rec.buf.Bytes()
	if rec.status == http.StatusOK && json.Valid(body) {
		body = fn(body)
		rec.header.Del("Content-Length")
		rec.header.Del("ETag") // the bytes changed; the core's version tag still identifies the version
	}
	maps.Copy(w.Header(), rec.header)
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}

func (h *handler) writeError(w http.ResponseWriter, st ErrorStyle, msg string) {
	fhir.WriteOutcome(w, st.Status, st.Severity, st.Code, msg)
}

// serveSMARTConfig publishes a smart-configuration shaped like the vendor's,
// with endpoints on the simulator's host and the auth methods the vendor's
// ehr profile lists.
func (h *handler) serveSMARTConfig(w http.ResponseWriter, r *http.Request) {
	if h.spec.AuthorizePath == "" {
		h.writeError(w, ErrorStyle{Status: http.StatusNotFound, Severity: "error", Code: "not-found"}, "No SMART configuration.")
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := scheme + "://" + r.Host
	methods := h.profile.Auth.Methods
	if len(methods) == 0 {
		methods = []string{"client_secret_basic"}
	}
	caps := []string{"launch-ehr", "launch-standalone", "client-confidential-symmetric", "context-ehr-patient", "permission-patient"}
	if slices.Contains(methods, "private_key_jwt") {
		caps = append(caps, "client-confidential-asymmetric")
	}
	if h.profile.Auth.Scopes == "v2" {
		caps = append(caps, "permission-v2")
	} else {
		caps = append(caps, "permission-v1")
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"authorization_endpoint":                host + h.spec.AuthorizePath,
		"token_endpoint":                        host + h.spec.TokenPath,
		"token_endpoint_auth_methods_supported": methods,
		"capabilities":                          caps,
		"response_types_supported":              []string{"code"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

// serveMetadata rewrites the core's CapabilityStatement.
func (h *handler) serveMetadata(w http.ResponseWriter, r *http.Request) {
	h.rewrite(w, r, func(body []byte) []byte {
		var cs map[string]any
		if json.Unmarshal(body, &cs) != nil {
			return body
		}
		s := h.spec
		delete(cs, "software")
		if s.SoftwareName != "" {
			sw := map[string]any{"name": s.SoftwareName, "version": s.SoftwareVersion}
			if s.SoftwareReleaseDate != "" {
				sw["releaseDate"] = s.SoftwareReleaseDate
			}
			cs["software"] = sw
		}
		set := func(k, v string) {
			if v == "" {
				delete(cs, k)
			} else {
				cs[k] = v
			}
		}
		set("name", s.Name)
		set("publisher", s.Publisher)
		set("copyright", s.Copyright)
		set("url", s.URL)
		if impl, ok := cs["implementation"].(map[string]any); ok {
			if s.Description != "" {
				impl["description"] = s.Description
			}
		}
		if rests, ok := cs["rest"].([]any); ok {
			for _, rr := range rests {
				rest, ok := rr.(map[string]any)
				if !ok {
					continue
				}
				res, _ := rest["resource"].([]any)
				var kept []any
				for _, x := range res {
					m, ok := x.(map[string]any)
					if !ok {
						continue
					}
					typ, _ := m["type"].(string)
					if typ == "Subscription" {
						kept = append(kept, m)
						continue
					}
					if !h.serves(typ) && !h.profile.Write.Accepts(typ, "create") {
						continue
					}
					// Only the writes the vendor accepts are advertised.
					its, _ := m["interaction"].([]any)
					var keptIt []any
					for _, it := range its {
						im, _ := it.(map[string]any)
						code, _ := im["code"].(string)
						if (code != "create" && code != "update") || h.profile.Write.Accepts(typ, code) {
							keptIt = append(keptIt, it)
						}
					}
					m["interaction"] = keptIt
					if !h.profile.Write.Accepts(typ, "create") {
						delete(m, "conditionalCreate")
					}
					if !h.profile.Write.Accepts(typ, "update") {
						delete(m, "versioning")
					}
					sps, _ := m["searchParam"].([]any)
					var keptSP []any
					for _, sp := range sps {
						spm, _ := sp.(map[string]any)
						name, _ := spm["name"].(string)
						if h.allowed(typ, name) {
							keptSP = append(keptSP, sp)
						}
					}
					m["searchParam"] = keptSP
					kept = append(kept, m)
				}
				rest["resource"] = kept
			}
		}
		out, err := json.Marshal(cs)
		if err != nil {
			return body
		}
		return out
	})
}

// rewriteBundle applies the vendor's paging links and resource shapes to a
// searchset.
func (h *handler) rewriteBundle(body []byte, paged bool) []byte {
	var b map[string]json.RawMessage
	if json.Unmarshal(body, &b) != nil {
		return body
	}
	var links []fhir.BundleLink
	_ = json.Unmarshal(b["link"], &links)
	self := ""
	hasNext := false
	for _, l := range links {
		switch l.Relation {
		case "self":
			self = l.URL
		case "next":
			hasNext = true
		}
	}
	if h.spec.PrevRelation != "" && paged && self != "" {
		if u, err := url.Parse(self); err == nil {
			q := u.Query()
			q.Del("_cursor")
			u.RawQuery = q.Encode()
			// The simulator pages by keyset and cannot step back one page;
			// the backward link returns to the first page. Its relation
			// name is the point.
			links = append(links, fhir.BundleLink{Relation: h.spec.PrevRelation, URL: u.String()})
		}
	}
	if h.spec.NextEqualsSelfOnLast && !hasNext && self != "" {
		links = append(links, fhir.BundleLink{Relation: "next", URL: self})
	}
	if lb, err := json.Marshal(links); err == nil {
		b["link"] = lb
	}
	var entries []map[string]json.RawMessage
	if json.Unmarshal(b["entry"], &entries) == nil {
		for _, e := range entries {
			if res, ok := e["resource"]; ok {
				e["resource"] = h.rewriteResource(res)
			}
		}
		if eb, err := json.Marshal(entries); err == nil && entries != nil {
			b["entry"] = eb
		}
	}
	out, err := json.Marshal(b)
	if err != nil {
		return body
	}
	return out
}

// rewriteResource adds the vendor extension and the site's local codes.
func (h *handler) rewriteResource(raw []byte) []byte {
	var res map[string]json.RawMessage
	if json.Unmarshal(raw, &res) != nil {
		return raw
	}
	var typ string
	_ = json.Unmarshal(res["resourceType"], &typ)
	changed := false
	var exts []json.RawMessage
	for _, x := range h.spec.Extensions {
		if !slices.Contains(x.Types, typ) {
			continue
		}
		if exts == nil {
			_ = json.Unmarshal(res["extension"], &exts)
		}
		e := map[string]any{"url": x.URL}
		switch {
		case x.GenderSystem != "":
			var gender string
			if json.Unmarshal(res["gender"], &gender) != nil || gender == "" {
				continue // nothing to say: never invented
			}
			e["valueCodeableConcept"] = map[string]any{"coding": []map[string]string{{"system": x.GenderSystem, "code": gender, "display": gender}}}
		default:
			e["valueString"] = x.String
		}
		b, _ := json.Marshal(e)
		exts = append(exts, b)
		changed = true
	}
	if changed {
		res["extension"], _ = json.Marshal(exts)
	}
	if h.site != nil {
		for _, lc := range h.site.LocalCodeSystems {
			if !slices.Contains(lc.Types, typ) {
				continue
			}
			if code, ok := addLocalCoding(res["code"], lc.System); ok {
				res["code"] = code
				changed = true
			}
		}
	}
	if !changed {
		return raw
	}
	out, err := json.Marshal(res)
	if err != nil {
		return raw
	}
	return out
}

// addLocalCoding appends a coding in system to a CodeableConcept, its code
// derived from the first existing coding ("L" + code).
func addLocalCoding(cc json.RawMessage, system string) (json.RawMessage, bool) {
	var c map[string]json.RawMessage
	if len(cc) == 0 || json.Unmarshal(cc, &c) != nil {
		return cc, false
	}
	var codings []map[string]any
	if json.Unmarshal(c["coding"], &codings) != nil || len(codings) == 0 {
		return cc, false
	}
	first, _ := codings[0]["code"].(string)
	codings = append(codings, map[string]any{"system": system, "code": "L" + first})
	c["coding"], _ = json.Marshal(codings)
	out, err := json.Marshal(c)
	if err != nil {
		return cc, false
	}
	return out, true
}

// recorder buffers the core's response.
type recorder struct {
	header http.Header
	status int
	buf    bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(s int) {
	if !r.wrote {
		r.status, r.wrote = s, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.buf.Write(b)
}

// bucket is a token bucket refilled at rate tokens per second.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	if burst < 1 {
		burst = 1
	}
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Interface guard.
var _ http.Handler = (*handler)(nil)
