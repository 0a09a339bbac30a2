package bulkexport

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"ehrgate/ehrsim/internal/fhirdate"
)

// _typeFilter (Bulk Data IG, kick-off parameters): each value is a FHIR
// search "Type?param=value&...". Values may be comma-separated in one
// parameter or repeated; both mean the same list. Queries for one type are
// OR-ed, the parameters of one query AND-ed, the comma-separated values of
// one parameter OR-ed (FHIR search). A type with no query is exported whole
// (when _type allows it).
//
// The simulator supports a subset of search parameters on what synth
// generates (supportedParams). Anything else is answered 400 not-supported
// naming the parameter, or, with Prefer: handling=lenient, ignored (the
// query is applied without it, so the result is a superset, never a subset)
// and reported as a warning OperationOutcome in the manifest's error list.

// filters maps a resource type to its queries (OR-ed).
type filters map[string][]filterQuery

// filterQuery is one _typeFilter query: every condition must hold.
type filterQuery []condition

// condition is one search parameter value of a query.
type condition func(v *view) bool

// view is what the supported search parameters read from a resource.
type view struct {
	Meta struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	Status            string    `json:"status"`
	Category          []concept `json:"category"`
	Code              concept   `json:"code"`
	ClinicalStatus    concept   `json:"clinicalStatus"`
	EffectiveDateTime string    `json:"effectiveDateTime"`
	EffectivePeriod   *period   `json:"effectivePeriod"`
	Period            *period   `json:"period"`
	AuthoredOn        string    `json:"authoredOn"`
}

type concept struct {
	Coding []coding `json:"coding"`
}

type coding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// param is a supported search parameter: token parameters read codings,
// date parameters read spans.
type param struct {
	tokens func(v *view) []coding
	dates  func(v *view) []span
}

func categories(v *view) []coding {
	var out []coding
	for _, c := range v.Category {
		out = append(out, c.Coding...)
	}
	return out
}

func status(v *view) []coding { return []coding{{Code: v.Status}} }

func dateTime(s string) []span {
	if sp, err := fhirdate.ParseSpan(s); err == nil {
		return []span{sp}
	}
	return nil
}

func periodSpans(p *period) []span {
	if p == nil || (p.Start == "" && p.End == "") {
		return nil
	}
	sp := span{Lo: fhirdate.MinTime, Hi: fhirdate.MaxTime}
	if s, err := fhirdate.ParseSpan(p.Start); err == nil {
		sp.Lo = s.Lo
	}
	if e, err := fhirdate.ParseSpan(p.End); err == nil {
		sp.Hi = e.Hi
	}
	return []span{sp}
}

// lastUpdatedParam is _lastUpdated, supported on every type.
var lastUpdatedParam = param{dates: func(v *view) []span { return dateTime(v.Meta.LastUpdated) }}

// supportedParams are the search parameters the simulator evaluates, per
// type (FHIR R4 names and paths).
var supportedParams = map[string]map[string]param{
	"Observation": {
		"category": {tokens: categories},
		"code":     {tokens: func(v *view) []coding { return v.Code.Coding }},
		"status":   {tokens: status},
		"date": {dates: func(v *view) []span {
			if v.EffectiveDateTime != "" {
				return dateTime(v.EffectiveDateTime)
			}
			return periodSpans(v.EffectivePeriod)
		}},
	},
	"Condition": {
		"clinical-status": {tokens: func(v *view) []coding { return v.ClinicalStatus.Coding }},
		"category":        {tokens: categories},
	},
	"MedicationRequest": {
		"status":     {tokens: status},
		"authoredon": {dates: func(v *view) []span { return dateTime(v.AuthoredOn) }},
	},
	"Encounter": {
		"status": {tokens: status},
		"date":   {dates: func(v *view) []span { return periodSpans(v.Period) }},
	},
}

// resultParams are FHIR search result parameters, which the IG forbids in
// _typeFilter (SHALL NOT be used).
var resultParams = map[string]bool{"_include": true, "_revinclude": true, "_sort": true, "_count": true,
	"_elements": true, "_summary": true, "_total": true, "_contained": true, "_containedType": true}

// filterStart finds the commas that start a new query ("...,Type?").
var filterStart = regexp.MustCompile(`,[A-Z][A-Za-z]{1,63}\?`)

// splitFilters splits _typeFilter values into queries. A comma starts a new
// query only when a "Type?" follows it, so a comma inside a query (an OR of
// values, which clients often leave unescaped) stays in it.
func splitFilters(values []string) []string {
	var out []string
	for _, v := range values {
		start := 0
		for _, m := range filterStart.FindAllStringIndex(v, -1) {
			out = append(out, v[start:m[0]])
			start = m[0] + 1
		}
		out = append(out, v[start:])
	}
	return out
}

// filterError is a _typeFilter the server refuses: code is the
// OperationOutcome issue code ("invalid" or "not-supported").
type filterError struct {
	code, msg string
}

func (e *filterError) Error() string { return e.msg }

// parseFilters parses the _typeFilter values of a kick-off. With lenient,
// unsupported parameters are dropped and described in warnings; malformed
// queries are refused either way.
func parseFilters(values []string, lenient bool) (filters, []string, error) {
	out := filters{}
	var warnings []string
	for _, raw := range splitFilters(values) {
		typ, query, ok := strings.Cut(raw, "?")
		if !ok || !typeName.MatchString(typ) {
			return nil, nil, &filterError{"invalid", fmt.Sprintf("_typeFilter %q is not of the form Type?search-parameters", raw)}
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, nil, &filterError{"invalid", fmt.Sprintf("_typeFilter %q: %v", raw, err)}
		}
		names := make([]string, 0, len(q))
		for name := range q {
			names = append(names, name)
		}
		slices.Sort(names)
		fq := filterQuery{}
		for _, name := range names {
			if resultParams[name] {
				return nil, nil, &filterError{"invalid", fmt.Sprintf("_typeFilter %q: search result parameter %s is not allowed", raw, name)}
			}
			p, ok := supportedParams[typ][name]
			if name == "_lastUpdated" {
				p, ok = lastUpdatedParam, true
			}
			if !ok {
				msg := fmt.Sprintf("_typeFilter: search parameter %s is not supported for %s", name, typ)
				if !lenient {
					return nil, nil, &filterError{"not-supported", msg}
				}
				warnings = append(warnings, msg+"; ignored (handling=lenient), so more "+typ+" resources may be exported than asked")
				continue
			}
			for _, v := range q[name] {
				c, err := p.condition(v)
				if err != nil {
					return nil, nil, &filterError{"invalid", fmt.Sprintf("_typeFilter %q: %s: %v", raw, name, err)}
				}
				fq = append(fq, c)
			}
		}
		out[typ] = append(out[typ], fq)
	}
	return out, warnings, nil
}

// condition builds the test for one value of the parameter: a
// comma-separated list of alternatives.
func (p param) condition(value string) (condition, error) {
	if value == "" {
		return nil, fmt.Errorf("empty value")
	}
	alts := strings.Split(value, ",")
	if p.tokens != nil {
		type tok struct {
			system, code    string
			anySys, anyCode bool
		}
		toks := make([]tok, 0, len(alts))
		for _, a := range alts {
			sys, code, piped := strings.Cut(a, "|")
			if !piped {
				toks = append(toks, tok{code: a, anySys: true})
				continue
			}
			toks = append(toks, tok{system: sys, code: code, anyCode: code == ""})
		}
		return func(v *view) bool {
			for _, c := range p.tokens(v) {
				for _, t := range toks {
					if (t.anySys || c.System == t.system) && (t.anyCode || c.Code == t.code) {
						return true
					}
				}
			}
			return false
		}, nil
	}
	qs := make([]dateQuery, 0, len(alts))
	for _, a := range alts {
		q, err := fhirdate.ParseQuery(a)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return func(v *view) bool {
		for _, sp := range p.dates(v) {
			for _, q := range qs {
				if q.Matches(sp) {
					return true
				}
			}
		}
		return false
	}, nil
}

// match reports whether a resource of a filtered type passes: some query
// holds entirely. Types without queries always pass.
func (f filters) match(typ string, raw []byte) bool {
	qs, ok := f[typ]
	if !ok {
		return true
	}
	var v view
	if err := json.Unmarshal(raw, &v); err != nil {
		return false
	}
	for _, q := range qs {
		all := true
		for _, c := range q {
			if !c(&v) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// span and dateQuery are FHIR date search with the range semantics of R4,
// shared with ehrsim's REST search.
type (
	span      = fhirdate.Span
	dateQuery = fhirdate.Query
)
