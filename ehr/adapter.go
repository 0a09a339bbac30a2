package ehr

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"ehrgate/fhir"
	"ehrgate/refresh"
)

// Hooks are the code a vendor may add where its profile's data cannot say
// it. Every field is optional. Hooks run after the data-driven behaviour and
// may refine it.
type Hooks struct {
	// Plan may rewrite the queries planned from the profile for one type.
	Plan func(typ, patientID string, planned []*fhir.Query) []*fhir.Query
	// Classify may classify an error the data rules left as ClassOther or
	// overrule them; ok=false leaves the data's answer.
	Classify func(e *fhir.Error) (c ErrorClass, ok bool)
}

// RegisterHooks attaches hooks to a registered vendor. Call it from init.
func RegisterHooks(vendor string, h Hooks) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, ok := registry[vendor]; !ok {
		panic("ehr: hooks for unregistered vendor " + vendor)
	}
	hooks[vendor] = h
}

// Adapter is one vendor's profile, optionally with a site profile layered
// on top. It is immutable and safe for concurrent use. Get one with Lookup
// or Detect, then WithSite.
type Adapter struct {
	p       *Profile
	hooks   Hooks
	site    *SiteProfile
	pageCap int // a connection's own _count cap (0 = none)
}

// Vendor returns the vendor name ("epic", "generic", ...).
func (a *Adapter) Vendor() string { return a.p.Vendor }

// Display returns the vendor's human name.
func (a *Adapter) Display() string { return a.p.displayName() }

// Profile returns a copy of the vendor profile (without the site layer).
func (a *Adapter) Profile() Profile {
	c := *a.p
	c.Types = maps.Clone(a.p.Types)
	return c
}

// Site returns the site profile layered on the adapter, or nil.
func (a *Adapter) Site() *SiteProfile { return a.site }

// WithSite returns an adapter with the site profile layered on top. The
// site's vendor, when set, must match.
func (a *Adapter) WithSite(s *SiteProfile) (*Adapter, error) {
	if s == nil {
		c := *a
		c.site = nil
		return &c, nil
	}
	if v, _ := Canonical(s.Vendor); s.Vendor != "" && v != a.p.Vendor {
		return nil, fmt.Errorf("ehr: site profile %q is for vendor %q, not %q", s.Name, s.Vendor, a.p.Vendor)
	}
	c := *a
	c.site = s
	return &c, nil
}

// WithPageSize returns an adapter whose page size is also capped at n (a
// connection's configured page_size); n <= 0 removes the cap.
func (a *Adapter) WithPageSize(n int) *Adapter {
	c := *a
	c.pageCap = max(n, 0)
	return &c
}

// PageSize is the _count ehrgate should ask for: the profile's page size
// (default 100), capped by the vendor's maximum, the site's cap and the
// connection's (WithPageSize).
func (a *Adapter) PageSize() int {
	n := a.p.Paging.PageSize
	if n <= 0 {
		n = 100
	}
	if m := a.p.Paging.MaxPageSize; m > 0 && n > m {
		n = m
	}
	if a.site != nil && a.site.PageSize > 0 && n > a.site.PageSize {
		n = a.site.PageSize
	}
	if a.pageCap > 0 && n > a.pageCap {
		n = a.pageCap
	}
	return n
}

// Workers caps a requested worker count (0 = ehrgate's default of 8) by
// the vendor's concurrency limit.
func (a *Adapter) Workers(requested int) int {
	if requested <= 0 {
		requested = 8
	}
	if c := a.p.Limits.Concurrency; c > 0 && requested > c {
		return c
	}
	return requested
}

// Warnings lists, user-safe, what the site profile takes away compared with
// the vendor: every type switched off and search parameter disabled.
func (a *Adapter) Warnings() []string {
	if a.site == nil {
		return nil
	}
	var out []string
	for _, typ := range slices.Sorted(maps.Keys(a.site.DisabledTypes)) {
		out = append(out, fmt.Sprintf("site %s switches off %s: %s", a.site.Name, typ, a.site.typeReason(typ)))
	}
	for _, typ := range slices.Sorted(maps.Keys(a.site.DisabledParams)) {
		for _, p := range a.site.DisabledParams[typ] {
			out = append(out, fmt.Sprintf("site %s disables the %s search parameter %q", a.site.Name, typ, p))
		}
	}
	return out
}

// Planner returns the refresh.Planner for this vendor and site: required
// parameters added (one search per fan-out value), types the vendor or site
// does not offer reported as not available with a reason.
func (a *Adapter) Planner() refresh.Planner { return planner{a} }

type planner struct{ a *Adapter }

// Plan implements refresh.Planner.
func (pl planner) Plan(typ, patientID string) ([]*fhir.Query, string) {
	a := pl.a
	tr, ok, reason := a.p.served(typ)
	if !ok {
		return nil, reason
	}
	if a.site != nil {
		if a.site.TypeDisabled(typ) {
			return nil, fmt.Sprintf("Switched off at this site (%s): %s", a.site.Name, a.site.typeReason(typ))
		}
		if a.site.ParamDisabled(typ, "patient") {
			return nil, fmt.Sprintf("This site (%s) does not allow searching %s by patient.", a.site.Name, typ)
		}
	}
	queries := []*fhir.Query{fhir.NewQuery().Patient(patientID).Count(a.PageSize())}
	for _, rq := range tr.Required {
		if a.site != nil && a.site.ParamDisabled(typ, rq.Param) {
			return nil, fmt.Sprintf("%s requires the %s search parameter %q, which this site (%s) disables.",
				a.p.displayName(), typ, rq.Param, a.site.Name)
		}
		if !rq.FanOut {
			for _, q := range queries {
				q.Set(rq.Param, strings.Join(rq.Values, ","))
			}
			continue
		}
		var out []*fhir.Query
		for _, q := range queries {
			for _, v := range rq.Values {
				out = append(out, q.Clone().Set(rq.Param, v))
			}
		}
		queries = out
	}
	if a.hooks.Plan != nil {
		queries = a.hooks.Plan(typ, patientID, queries)
	}
	return queries, ""
}

// ClientOptions returns base with the vendor's FHIR client tweaks applied:
// extra headers, retried statuses, a page cap from the vendor's result cap,
// and a client-side rate limit when the vendor has one. Fields base sets
// explicitly are kept where they conflict (a caller's MaxPages wins).
func (a *Adapter) ClientOptions(base fhir.Options) fhir.Options {
	o := base
	if len(a.p.Headers) > 0 {
		h := o.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		for k, v := range a.p.Headers {
			if h.Get(k) == "" {
				h.Set(k, v)
			}
		}
		o.Header = h
	}
	if o.Retry.Statuses == nil && a.p.Limits.RetryStatuses != nil {
		o.Retry.Statuses = slices.Clone(a.p.Limits.RetryStatuses)
	}
	if o.MaxPages == 0 && a.p.Paging.MaxResults > 0 {
		o.MaxPages = a.p.Paging.MaxResults/max(1, a.PageSize()) + 1
	}
	if rps := a.p.Limits.RequestsPerSecond; rps > 0 {
		hc := o.HTTPClient
		if hc == nil {
			hc = &http.Client{}
		}
		c := *hc
		c.Transport = NewRateLimitedTransport(c.Transport, rps, a.p.Limits.Burst)
		o.HTTPClient = &c
	}
	return o
}

// SMARTRules are the SMART launch and token parameters for the SMART
// client, as plain data.
type SMARTRules struct {
	AuthRules
	// Site-specific client_id or other launch parameters are not here: they
	// belong to the connection's configuration.
}

// AudFor returns the aud value to send for a FHIR base URL, and false when aud
// must not be sent at all.
func (r SMARTRules) AudFor(baseURL string) (string, bool) {
	switch r.Aud {
	case AudOmit:
		return "", false
	case AudNoTrailingSlash:
		return strings.TrimRight(baseURL, "/"), true
	default:
		return baseURL, true
	}
}

// SMART returns the vendor's SMART launch and token rules.
func (a *Adapter) SMART() SMARTRules {
	r := SMARTRules{AuthRules: a.p.Auth}
	r.Methods = slices.Clone(a.p.Auth.Methods)
	if r.Aud == "" {
		r.Aud = AudBaseURL
	}
	if r.Scopes == "" {
		r.Scopes = "v1"
	}
	if r.IntrospectionAuth == "" {
		r.IntrospectionAuth = "basic"
	}
	return r
}

// Bulk returns the vendor's Bulk Data constraints.
func (a *Adapter) Bulk() BulkRules {
	b := a.p.Bulk
	b.Levels = slices.Clone(b.Levels)
	b.Types = slices.Clone(b.Types)
	return b
}

// AllowsLevel reports whether $export is offered at a level (system,
// group, patient).
func (b BulkRules) AllowsLevel(level string) bool { return slices.Contains(b.Levels, level) }

// FilterTypes splits requested _type values into those the vendor allows
// and those it does not. With no restriction every type is allowed.
func (b BulkRules) FilterTypes(types []string) (allowed, refused []string) {
	if len(b.Types) == 0 {
		return slices.Clone(types), nil
	}
	for _, t := range types {
		if slices.Contains(b.Types, t) {
			allowed = append(allowed, t)
		} else {
			refused = append(refused, t)
		}
	}
	return allowed, refused
}

// Classify says what a failed interaction means: not permitted, not found,
// not supported and so on, using the vendor's status and OperationOutcome
// conventions. Errors that are not *fhir.Error are ClassTransient when they
// look like network trouble, else ClassOther; nil is ClassNone.
func (a *Adapter) Classify(err error) ErrorClass {
	if err == nil {
		return ClassNone
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		if errors.Is(err, fhir.ErrMalformedBody) {
			return ClassTransient
		}
		return ClassOther
	}
	if a.hooks.Classify != nil {
		if c, ok := a.hooks.Classify(fe); ok {
			return c
		}
	}
	r := a.p.Errors
	if fe.Outcome != nil {
		for _, is := range fe.Outcome.Issue {
			d := strings.ToLower(is.Diagnostics)
			for _, sub := range slices.Sorted(maps.Keys(r.Diagnostics)) {
				if d != "" && strings.Contains(d, strings.ToLower(sub)) {
					return r.Diagnostics[sub]
				}
			}
		}
		for _, is := range fe.Outcome.Issue {
			if c, ok := r.IssueCodes[is.Code]; ok {
				return c
			}
		}
		// The specification's own issue code beats a status reading: HAPI
		// answers 404 not-supported for an unknown type (ehrsim/README.md).
		for _, is := range fe.Outcome.Issue {
			if is.Code == "not-supported" {
				return ClassNotSupported
			}
		}
	}
	if c, ok := r.Status[fe.StatusCode]; ok {
		return c
	}
	return defaultClass(fe)
}

// defaultClass is the FHIR specification's reading of a status and issue.
func defaultClass(fe *fhir.Error) ErrorClass {
	if fe.Outcome != nil {
		for _, is := range fe.Outcome.Issue {
			if is.Code == "not-supported" {
				return ClassNotSupported
			}
		}
	}
	switch {
	case errors.Is(fe, fhir.ErrNotSupported):
		return ClassNotSupported
	case fe.StatusCode == http.StatusUnauthorized:
		return ClassUnauthorized
	case fe.StatusCode == http.StatusForbidden:
		return ClassNotPermitted
	case fe.StatusCode == http.StatusNotFound || fe.StatusCode == http.StatusGone:
		return ClassNotFound
	case fe.StatusCode == http.StatusTooManyRequests:
		return ClassRateLimited
	case fe.StatusCode >= 500:
		return ClassTransient
	case fe.StatusCode == http.StatusBadRequest || fe.StatusCode == http.StatusUnprocessableEntity:
		return ClassInvalid
	}
	return ClassOther
}

// Interface guard.
var _ refresh.Planner = planner{}
