// Package ehr describes how each EHR vendor's FHIR API differs from the
// specification, and turns that description into the knobs the rest of
// ehrgate already has: a refresh.Planner, fhir.Options tweaks, SMART launch
// and token rules, bulk export constraints and an error classifier.
//
// A vendor is mostly data: a declarative Profile decoded from an embedded
// YAML file (profiles/<vendor>.yaml), registered at init. Generic code
// branches on profile fields, never on vendor names. Where data cannot say
// it, a vendor may register Hooks. A SiteProfile layers one health system's
// configuration (types switched off, search parameters disabled, local code
// systems, page-size caps) over its vendor's adapter.
//
// Every quirk in a profile cites its source in a YAML comment: public vendor
// documentation, or the recorded captures in the shared fixtures
// (smart-config/...). Quirks marked "unverified" are believed true from
// vendor documentation but were not checked against a live system.
package ehr

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Profile is one vendor's declarative description. Field comments say what
// generic code does with each.
type Profile struct {
	// Vendor is the registry key ("epic", "oracle", ...).
	Vendor string `yaml:"vendor"`
	// Aliases are other names the vendor is known by, accepted wherever a
	// vendor is named (configuration, flags) and resolved to Vendor: sites
	// still say "cerner" for Oracle Health.
	Aliases []string `yaml:"aliases"`
	// Display is the human name shown in the dashboard and probe output.
	Display string `yaml:"display"`
	// Docs is the vendor's public developer documentation.
	Docs string `yaml:"docs"`

	Detect DetectRules `yaml:"detect"`
	Auth   AuthRules   `yaml:"auth"`
	// Headers are extra HTTP headers sent on every FHIR request.
	Headers map[string]string `yaml:"headers"`
	Paging  PagingRules       `yaml:"paging"`
	Limits  Limits            `yaml:"limits"`
	// Types lists the resource types the vendor serves and how each must be
	// searched. When empty every type is assumed served with plain
	// patient searches (the generic server).
	Types map[string]TypeRules `yaml:"types"`
	// Everything is true when Patient/$everything is offered to the app
	// kinds ehrgate uses.
	Everything bool       `yaml:"everything"`
	Bulk       BulkRules  `yaml:"bulk"`
	Errors     ErrorRules `yaml:"errors"`
	// Extensions are the vendor's documented extensions that carry clinical
	// or identity meaning. Register hands them to the normalizer
	// (normalize.RegisterExtensions), which unwraps their values into
	// Common.Extensions; any other extension is counted as not understood
	// by the quality report. ehrgate keeps the raw resource anyway.
	Extensions []ExtensionRule `yaml:"extensions"`
	// Write is what the vendor accepts for writes. Package writeback
	// bounds each connection's write policy by it and the simulator's
	// personalities refuse the rest; empty accepts no writes.
	Write WriteRules `yaml:"write"`
	// Notes are data-shape quirks with no behaviour attached yet, kept so
	// the README and probe can show them.
	Notes []string `yaml:"notes"`
}

// WriteRules list the resource types a vendor accepts writes of, by
// interaction. Creates are sent conditionally (If-None-Exist on a business
// identifier) and updates with If-Match, as FHIR R4 defines them
// (http://hl7.org/fhir/R4/http.html#ccreate, #concurrency).
type WriteRules struct {
	Create []string `yaml:"create"` // types accepted by create
	Update []string `yaml:"update"` // types accepted by update
}

// Accepts reports whether the vendor accepts op ("create" or "update") of
// typ.
func (w WriteRules) Accepts(typ, op string) bool {
	switch op {
	case "create":
		return slices.Contains(w.Create, typ)
	case "update":
		return slices.Contains(w.Update, typ)
	}
	return false
}

// DetectRules say how a CapabilityStatement or smart-configuration reveals
// the vendor. Every pattern is a case-insensitive substring.
type DetectRules struct {
	Software    []string `yaml:"software"`     // CapabilityStatement.software.name
	Publisher   []string `yaml:"publisher"`    // CapabilityStatement.publisher
	Name        []string `yaml:"name"`         // CapabilityStatement.name
	Copyright   []string `yaml:"copyright"`    // CapabilityStatement.copyright
	Description []string `yaml:"description"`  // implementation.description
	URL         []string `yaml:"url"`          // CapabilityStatement.url or implementation.url
	SMART       []string `yaml:"smart"`        // any endpoint in .well-known/smart-configuration
	VersionFrom string   `yaml:"version_from"` // "software.version" (default) or "software.name"
}

// AudRule says how the SMART `aud` parameter is sent.
type AudRule string

// The aud rules.
const (
	AudBaseURL         AudRule = "base-url"          // the FHIR base URL as configured (spec default)
	AudNoTrailingSlash AudRule = "no-trailing-slash" // the base URL with any trailing slash removed
	AudOmit            AudRule = "omit"              // never send aud
)

// AuthRules are SMART launch and token parameters, as plain data for the
// SMART client.
type AuthRules struct {
	// Methods are token endpoint client authentication methods the vendor
	// accepts, preferred first (client_secret_basic, client_secret_post,
	// private_key_jwt, none).
	Methods []string `yaml:"methods"`
	// Scopes is the SMART scope syntax: "v1" (patient/Observation.read) or
	// "v2" (patient/Observation.rs).
	Scopes string `yaml:"scopes"`
	// Aud is the aud rule (default base-url).
	Aud AudRule `yaml:"aud"`
	// ResponseMode is sent as response_mode on authorize when set.
	ResponseMode string `yaml:"response_mode"`
	// ConfidentialOnly is true when public clients are refused.
	ConfidentialOnly bool `yaml:"confidential_only"`
	// ServerSideTokenExchange is true when the code must be exchanged by a
	// backend, never by the browser.
	ServerSideTokenExchange bool `yaml:"server_side_token_exchange"`
	// IntrospectionAuth is how the introspection endpoint authenticates the
	// caller: "bearer" or "basic" (default basic, RFC 7662 practice).
	IntrospectionAuth string `yaml:"introspection_auth"`
	// TokenLifetime is the typical access-token lifetime; long syncs must
	// refresh before it ends.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// PerSiteEnablement is true when each customer site must switch the
	// app on separately (a 401/403 from a new site is expected until then).
	PerSiteEnablement bool `yaml:"per_site_enablement"`
}

// PagingRules describe search paging.
type PagingRules struct {
	PageSize         int    `yaml:"page_size"`           // _count ehrgate asks for (default 100)
	MaxPageSize      int    `yaml:"max_page_size"`       // largest _count the vendor honours (0 = unknown)
	MaxResults       int    `yaml:"max_results"`         // results reachable by paging one search (0 = unbounded)
	PrevRelation     string `yaml:"prev_relation"`       // "previous" or "prev" (fhir.Bundle.LinkURL accepts both)
	NextMayEqualSelf bool   `yaml:"next_may_equal_self"` // last page's next link repeats self (fhir.Client ends there)
}

// Limits are concurrency and rate limits.
type Limits struct {
	Concurrency       int     `yaml:"concurrency"`         // concurrent requests (sync workers); 0 = ehrgate default
	RequestsPerSecond float64 `yaml:"requests_per_second"` // client-side rate cap; 0 = none
	Burst             int     `yaml:"burst"`               // token bucket size (default 1)
	RetryStatuses     []int   `yaml:"retry_statuses"`      // retried statuses; nil = fhir default
}

// TypeRules describe one resource type.
type TypeRules struct {
	// Params are the search parameters the vendor accepts for the type
	// (empty = not listed, assume the usual ones).
	Params []string `yaml:"params"`
	// Required are parameters the vendor rejects a search without.
	Required []RequiredParam `yaml:"required"`
	// Disabled, when set, is the user-safe reason the type is not
	// available from this vendor.
	Disabled string `yaml:"disabled"`
}

// RequiredParam is a search parameter a vendor requires, with the values
// that together cover a patient's whole compartment.
type RequiredParam struct {
	Param  string   `yaml:"param"`
	Values []string `yaml:"values"`
	// FanOut sends one search per value; otherwise the values are sent
	// comma-joined (FHIR OR) in one search.
	FanOut bool `yaml:"fan_out"`
}

// BulkRules are Bulk Data $export constraints.
type BulkRules struct {
	Levels               []string `yaml:"levels"` // system, group, patient; empty = no bulk export
	Types                []string `yaml:"types"`  // allowed _type values; empty = any
	MaxParallelDownloads int      `yaml:"max_parallel_downloads"`
}

// ErrorClass is what a failed interaction means to the caller.
type ErrorClass string

// Error classes.
const (
	ClassNone         ErrorClass = ""
	ClassNotPermitted ErrorClass = "not_permitted" // authorization, scope, consent or site enablement
	ClassNotFound     ErrorClass = "not_found"     // the resource or patient does not exist
	ClassNotSupported ErrorClass = "not_supported" // the type, parameter or operation is not offered
	ClassInvalid      ErrorClass = "invalid"       // the request was malformed or lacked a required parameter
	ClassUnauthorized ErrorClass = "unauthorized"  // credentials missing or expired: re-authenticate
	ClassRateLimited  ErrorClass = "rate_limited"
	ClassTransient    ErrorClass = "transient" // server or network trouble; retry later
	ClassOther        ErrorClass = "other"
)

var errorClasses = []ErrorClass{ClassNotPermitted, ClassNotFound, ClassNotSupported, ClassInvalid,
	ClassUnauthorized, ClassRateLimited, ClassTransient, ClassOther}

// ErrorRules map a vendor's statuses and OperationOutcome issue codes onto
// error classes. Issue codes win over statuses; unmapped answers fall back
// to the FHIR defaults.
type ErrorRules struct {
	Status     map[int]ErrorClass    `yaml:"status"`
	IssueCodes map[string]ErrorClass `yaml:"issue_codes"`
	// Diagnostics maps a case-insensitive substring of an issue's
	// diagnostics to a class; checked first.
	Diagnostics map[string]ErrorClass `yaml:"diagnostics"`
}

// ExtensionRule names a vendor extension, the resource types it appears on
// and what it means. Each rule cites the vendor documentation in Meaning.
type ExtensionRule struct {
	URL   string   `yaml:"url"`
	Types []string `yaml:"types"` // empty: any type
	// Name is the extension's name in the normalized model
	// (Extension.name, lowerCamelCase); Label is shown on the chart.
	Name    string `yaml:"name"`
	Label   string `yaml:"label"`
	Meaning string `yaml:"meaning"`
}

// ParseProfile decodes and validates a YAML profile. Unknown keys are
// errors.
func ParseProfile(data []byte) (*Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding profile: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate reports every problem with the profile at once.
func (p *Profile) Validate() error {
	var errs []error
	if p.Vendor == "" {
		errs = append(errs, errors.New("vendor is required"))
	}
	switch p.Auth.Aud {
	case "", AudBaseURL, AudNoTrailingSlash, AudOmit:
	default:
		errs = append(errs, fmt.Errorf("auth.aud %q: want base-url, no-trailing-slash or omit", p.Auth.Aud))
	}
	switch p.Auth.Scopes {
	case "", "v1", "v2":
	default:
		errs = append(errs, fmt.Errorf("auth.scopes %q: want v1 or v2", p.Auth.Scopes))
	}
	if p.Paging.MaxPageSize > 0 && p.Paging.PageSize > p.Paging.MaxPageSize {
		errs = append(errs, fmt.Errorf("paging.page_size %d exceeds max_page_size %d", p.Paging.PageSize, p.Paging.MaxPageSize))
	}
	for i, e := range p.Extensions {
		if e.URL == "" || e.Name == "" || e.Label == "" {
			errs = append(errs, fmt.Errorf("extensions[%d]: url, name and label are required", i))
		}
	}
	for typ, tr := range p.Types {
		for _, rq := range tr.Required {
			if rq.Param == "" || len(rq.Values) == 0 {
				errs = append(errs, fmt.Errorf("types.%s.required: param and values are required", typ))
			}
		}
	}
	check := func(where string, c ErrorClass) {
		if !slices.Contains(errorClasses, c) {
			errs = append(errs, fmt.Errorf("%s: unknown error class %q", where, c))
		}
	}
	for s, c := range p.Errors.Status {
		check(fmt.Sprintf("errors.status.%d", s), c)
	}
	for s, c := range p.Errors.IssueCodes {
		check("errors.issue_codes."+s, c)
	}
	for s, c := range p.Errors.Diagnostics {
		check("errors.diagnostics."+s, c)
	}
	if len(errs) > 0 {
		return fmt.Errorf("profile %q: %w", p.Vendor, errors.Join(errs...))
	}
	return nil
}

// served reports whether the profile serves typ, and the reason when not.
func (p *Profile) served(typ string) (TypeRules, bool, string) {
	if len(p.Types) == 0 {
		return TypeRules{}, true, ""
	}
	tr, ok := p.Types[typ]
	if !ok {
		return tr, false, fmt.Sprintf("%s does not offer %s through its FHIR API.", p.displayName(), typ)
	}
	if tr.Disabled != "" {
		return tr, false, tr.Disabled
	}
	return tr, true, ""
}

func (p *Profile) displayName() string {
	if p.Display != "" {
		return p.Display
	}
	return p.Vendor
}
