package fhirapi

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"ehrgate/store"
)

// ref is a resource named by a search value or a reference.
type ref struct{ connection, typ, id string }

// filter is one search parameter of a query: its values are alternatives
// (a comma-separated list is OR); the filters of a query all apply (AND).
type filter struct {
	p        param
	modifier string // "", missing, not, text, exact, contains
	raw      []string
	dates    []dateTest
	refs     []ref
	missing  bool
}

// modifiers each parameter kind accepts.
var modifiers = map[kind][]string{
	tokenParam:     {"missing", "not", "text"},
	stringParam:    {"missing", "exact", "contains"},
	dateParam:      {"missing"},
	referenceParam: {"missing"},
}

// newFilter parses the values of one parameter occurrence.
func newFilter(ns *Namespace, typ string, p param, modifier, value string) (filter, error) {
	f := filter{p: p, modifier: modifier}
	if modifier != "" {
		ok := false
		for _, m := range modifiers[p.kind] {
			ok = ok || m == modifier
		}
		if !ok {
			return f, fmt.Errorf("the modifier :%s is not supported on %s (a %s parameter)", modifier, p.name, p.kind)
		}
	}
	if modifier == "missing" {
		switch value {
		case "true", "false":
			f.missing = value == "true"
			return f, nil
		}
		return f, fmt.Errorf("%s:missing takes true or false", p.name)
	}
	for _, v := range splitValues(value) {
		if v == "" {
			return f, fmt.Errorf("%s has an empty value", p.name)
		}
		f.raw = append(f.raw, v)
		switch p.kind {
		case dateParam:
			d, err := parseDateTest(v)
			if err != nil {
				return f, fmt.Errorf("%s: %w", p.name, err)
			}
			f.dates = append(f.dates, d)
		case referenceParam:
			r, ok := parseRefValue(ns, p, v)
			if !ok {
				// A reference to nothing served matches nothing; it is
				// not an error (it may name a patient from elsewhere).
				r = ref{}
			}
			f.refs = append(f.refs, r)
		}
	}
	return f, nil
}

// splitValues splits a parameter value at commas not escaped with "\".
func splitValues(v string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		case v[i] == ',':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(v[i])
		}
	}
	return append(out, b.String())
}

// parseRefValue reads a reference search value: "Patient/ID", "ID" or an
// absolute URL ending in "Patient/ID", where ID is a served id.
func parseRefValue(ns *Namespace, p param, v string) (ref, bool) {
	typ := ""
	if parts := strings.Split(v, "/"); len(parts) >= 2 {
		typ, v = parts[len(parts)-2], parts[len(parts)-1]
	}
	switch p.name {
	case "patient", "subject", "beneficiary":
		if typ == "" {
			typ = "Patient"
		}
	case "encounter":
		if typ == "" {
			typ = "Encounter"
		}
	case "medication":
		if typ == "" {
			typ = "Medication"
		}
	}
	conn, id, ok := ns.Parse(v)
	return ref{conn, typ, id}, ok
}

// subject is a resource being tested: its record and its top-level
// elements, parsed only when a parameter asks for one, and each decoded
// only when asked for (most searches look at two or three of a
// resource's elements; an export with no filter at none).
type subject struct {
	rec *store.Record
	doc *lazyDoc
}

type lazyDoc struct {
	parsed  bool
	top     []field
	decoded []decodedField
}

type decodedField struct {
	name  string
	value any
}

// values returns what path (dotted element names, arrays flattened)
// reaches in the resource. A stored resource that is not a JSON object
// has no values (serving it fails instead).
func (s subject) values(path string) []any {
	d := s.doc
	if !d.parsed {
		d.parsed = true
		d.top = topFields(s.rec.Raw, make([]field, 0, 16))
	}
	first, rest, nested := strings.Cut(path, ".")
	var v any
	found := false
	for _, f := range d.decoded {
		if f.name == first {
			v, found = f.value, true
			break
		}
	}
	if !found {
		if raw, ok := lookupField(d.top, first); ok {
			v = decodeAny(raw)
		}
		d.decoded = append(d.decoded, decodedField{first, v})
	}
	var top []any
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		top = x
	default:
		top = []any{x}
	}
	if !nested {
		return top
	}
	var out []any
	for _, t := range top {
		out = append(out, values(t, rest)...)
	}
	return out
}

// matches reports whether the resource satisfies f.
func (f filter) matches(s subject, now time.Time) bool {
	if f.p.name == "_id" {
		return f.matchTokens([]token{{code: ServedID(s.rec.Connection, s.rec.ID)}}, nil)
	}
	var nodes []any
	for _, path := range f.p.paths {
		nodes = append(nodes, s.values(path)...)
	}
	if f.p.name == "_lastUpdated" && len(nodes) == 0 && !s.rec.LastUpdated.IsZero() {
		nodes = []any{s.rec.LastUpdated.UTC().Format(time.RFC3339Nano)}
	}
	if f.modifier == "missing" {
		if (f.p.name == "patient" || f.p.name == "subject") && s.rec.PatientID != "" {
			return !f.missing
		}
		return (len(nodes) == 0) == f.missing
	}
	switch f.p.kind {
	case tokenParam:
		var toks []token
		var texts []string
		for _, n := range nodes {
			toks, texts = appendTokens(toks, texts, n)
		}
		return f.matchTokens(toks, texts)
	case stringParam:
		var strs []string
		for _, n := range nodes {
			strs = appendStrings(strs, n)
		}
		for _, want := range f.raw {
			w := fold(want)
			for _, s := range strs {
				g := fold(s)
				switch f.modifier {
				case "exact":
					if s == want {
						return true
					}
				case "contains":
					if strings.Contains(g, w) {
						return true
					}
				default:
					if strings.HasPrefix(g, w) {
						return true
					}
				}
			}
		}
		return false
	case dateParam:
		for _, n := range nodes {
			sp, ok := nodeSpan(n)
			if !ok {
				continue
			}
			for _, d := range f.dates {
				if d.matches(sp, now) {
					return true
				}
			}
		}
		return false
	case referenceParam:
		for _, want := range f.refs {
			if want.id == "" {
				continue
			}
			if (f.p.name == "patient" || f.p.name == "subject") && s.rec.PatientID != "" && want.typ == "Patient" {
				if want.connection == s.rec.Connection && want.id == s.rec.PatientID {
					return true
				}
				continue
			}
			for _, n := range nodes {
				m, _ := n.(map[string]any)
				r, _ := m["reference"].(string)
				if t, id, ok := splitReference(r); ok && t == want.typ && id == want.id && want.connection == s.rec.Connection {
					return true
				}
			}
		}
		return false
	}
	return false
}

// token is a coded value: a code or identifier value with its system.
type token struct{ system, code string }

// appendTokens adds what a token parameter finds in one element: a code
// (string or boolean), a Coding, a CodeableConcept (its codings and text),
// or an Identifier (system and value).
func appendTokens(toks []token, texts []string, n any) ([]token, []string) {
	switch x := n.(type) {
	case string:
		return append(toks, token{code: x}), texts
	case bool:
		return append(toks, token{code: fmt.Sprint(x)}), texts
	case map[string]any:
		if codings, ok := x["coding"].([]any); ok {
			for _, c := range codings {
				toks, texts = appendTokens(toks, texts, c)
			}
		}
		sys, _ := x["system"].(string)
		if code, ok := x["code"].(string); ok {
			toks = append(toks, token{sys, code})
		}
		if v, ok := x["value"].(string); ok {
			toks = append(toks, token{sys, v})
		}
		for _, k := range []string{"text", "display"} {
			if t, ok := x[k].(string); ok {
				texts = append(texts, t)
			}
		}
	}
	return toks, texts
}

// matchTokens applies the token values (system|code, |code, system|, code)
// and the :not and :text modifiers.
func (f filter) matchTokens(toks []token, texts []string) bool {
	if f.modifier == "text" {
		for _, want := range f.raw {
			for _, t := range texts {
				if strings.HasPrefix(fold(t), fold(want)) {
					return true
				}
			}
		}
		return false
	}
	hit := false
	for _, want := range f.raw {
		sys, code, hasSys := strings.Cut(want, "|")
		if !hasSys {
			sys, code = "", want
		}
		for _, t := range toks {
			switch {
			case !hasSys:
				hit = hit || t.code == code
			case code == "":
				hit = hit || t.system == sys
			default:
				hit = hit || (t.system == sys && t.code == code)
			}
		}
	}
	if f.modifier == "not" {
		return !hit
	}
	return hit
}

// appendStrings adds the strings a string parameter searches in one
// element: a string, or a HumanName's parts.
func appendStrings(out []string, n any) []string {
	switch x := n.(type) {
	case string:
		return append(out, x)
	case map[string]any:
		for _, k := range []string{"text", "family"} {
			if s, ok := x[k].(string); ok {
				out = append(out, s)
			}
		}
		for _, k := range []string{"given", "prefix", "suffix"} {
			for _, v := range values(x, k) {
				if s, ok := v.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// nodeSpan reads the range of a date, dateTime, instant or Period.
func nodeSpan(n any) (span, bool) {
	switch x := n.(type) {
	case string:
		s, err := parseSpan(x)
		return s, err == nil
	case map[string]any:
		sp := span{minTime, maxTime}
		start, _ := x["start"].(string)
		end, _ := x["end"].(string)
		if start == "" && end == "" {
			return span{}, false
		}
		if start != "" {
			s, err := parseSpan(start)
			if err != nil {
				return span{}, false
			}
			sp.lo = s.lo
		}
		if end != "" {
			s, err := parseSpan(end)
			if err != nil {
				return span{}, false
			}
			sp.hi = s.hi
		}
		return sp, true
	}
	return span{}, false
}

// splitReference reads a relative reference "Type/id" (or
// "Type/id/_history/v").
func splitReference(r string) (typ, id string, ok bool) {
	parts := strings.Split(r, "/")
	if len(parts) == 4 && parts[2] == "_history" {
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || !unicode.IsUpper(rune(parts[0][0])) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// fold is the form string search compares: lower case, accents removed
// (FHIR R4 search 3.1.1.4.4: "case- and accent-insensitive").
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < utf8.RuneSelf
	}
	if !ascii {
		// A transformer keeps state: one per call.
		t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
		if out, _, err := transform.String(t, s); err == nil {
			s = out
		}
	}
	return strings.ToLower(s)
}
