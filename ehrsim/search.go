package ehrsim

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"ehrgate/ehrsim/internal/fhirdate"
)

// Result control parameters every search accepts.
const (
	paramCount   = "_count"
	paramInclude = "_include"
	paramFormat  = "_format"
	paramSummary = "_summary" // only _summary=count, the same as _count=0
	// paramCursor carries the paging position in next links. Its value is
	// opaque to clients: the base64url id of the last match already sent.
	paramCursor = "_cursor"
)

// searchError is a search request the simulator rejects, with the HTTP
// status and OperationOutcome issue code to answer with.
type searchError struct {
	status int
	code   string // OperationOutcome issue type: not-supported, invalid
	msg    string
}

func (e *searchError) Error() string { return e.msg }

func notSupported(format string, args ...any) *searchError {
	return &searchError{status: http.StatusBadRequest, code: "not-supported", msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *searchError {
	return &searchError{status: http.StatusBadRequest, code: "invalid", msg: fmt.Sprintf(format, args...)}
}

// clause is one search parameter occurrence; its values are ORed, clauses
// are ANDed.
type clause struct {
	def      *paramDef
	modifier string
	tokens   []token
	dates    []dateQuery
	refs     []reference
	strs     []string
	ids      []string
}

// include is one _include: the reference parameter to follow and an
// optional target type.
type include struct {
	def    *paramDef
	target string
}

// query is a parsed search.
type query struct {
	typ      string
	clauses  []clause
	count    int
	after    string // id of the last match already sent, "" for the first page
	includes []include
	ignored  []string // unknown parameters skipped under lenient handling
}

// parseQuery validates the parameters of a search on resourceType. Unknown
// parameters and modifiers are rejected: strict handling is the default
// because silently ignoring a filter would hand the client more data than it
// asked for. With lenient (the client sent Prefer: handling=lenient, see
// http://hl7.org/fhir/R4/search.html#errors) unknown parameter names are
// skipped and listed in query.ignored; bad values are still errors.
func parseQuery(resourceType string, params url.Values, pageSize, maxPageSize int, lenient bool) (*query, error) {
	ps := paramsFor(resourceType)
	q := &query{typ: resourceType, count: pageSize}
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	sort.Strings(names) // report the same unknown parameter every time
	for _, full := range names {
		values := params[full]
		name, modifier, _ := strings.Cut(full, ":")
		switch name {
		case paramCount:
			n, err := strconv.Atoi(last(values))
			if err != nil || n < 0 {
				return nil, invalid("_count must be a non-negative integer, got %q", last(values))
			}
			q.count = min(n, maxPageSize)
			continue
		case paramCursor:
			id, err := base64.RawURLEncoding.DecodeString(last(values))
			if err != nil {
				return nil, invalid("bad paging cursor")
			}
			q.after = string(id)
			continue
		case paramSummary:
			if v := last(values); v != "count" {
				return nil, notSupported("_summary=%s is not supported (only _summary=count)", v)
			}
			q.count = 0
			continue
		case paramFormat:
			if f := last(values); f != "" && !strings.Contains(f, "json") {
				return nil, notSupported("_format %q is not supported: the simulator serves JSON only", f)
			}
			continue
		case paramInclude:
			for _, v := range values {
				inc, err := parseInclude(resourceType, ps, v)
				if err != nil {
					return nil, err
				}
				q.includes = append(q.includes, inc)
			}
			continue
		}
		def, ok := ps[name]
		if !ok && lenient {
			q.ignored = append(q.ignored, full)
			continue
		}
		if !ok {
			return nil, notSupported("unknown search parameter %q for %s", full, resourceType)
		}
		for _, v := range values {
			c, err := parseClause(def, modifier, full, v)
			if err != nil {
				return nil, err
			}
			if c != nil {
				q.clauses = append(q.clauses, *c)
			}
		}
	}
	return q, nil
}

func last(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[len(values)-1]
}

// parseInclude reads "Type:param" or "Type:param:TargetType".
func parseInclude(resourceType string, ps paramSet, v string) (include, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != resourceType {
		return include{}, notSupported("_include %q is not supported on %s (use %s:<reference parameter>)", v, resourceType, resourceType)
	}
	def, ok := ps[parts[1]]
	if !ok || def.typ != paramReference {
		return include{}, notSupported("_include %q: %s has no reference parameter %q", v, resourceType, parts[1])
	}
	inc := include{def: def}
	if len(parts) == 3 {
		inc.target = parts[2]
	}
	return inc, nil
}

// parseClause parses one occurrence of a parameter. An empty value is
// ignored (returns nil), as FHIR requires.
func parseClause(def *paramDef, modifier, full, v string) (*clause, error) {
	values := splitValues(v)
	if len(values) == 0 {
		return nil, nil
	}
	c := &clause{def: def, modifier: modifier}
	switch {
	case modifier == "":
	case def.typ == paramString && (modifier == "exact" || modifier == "contains"):
	case def.typ == paramReference && isTypeName(modifier):
	default:
		return nil, notSupported("modifier %q of search parameter %q is not supported", modifier, full)
	}
	for _, s := range values {
		switch {
		case def.name == "_id":
			c.ids = append(c.ids, s)
		case def.typ == paramToken:
			system, code, hasSystem := strings.Cut(s, "|")
			if !hasSystem {
				system, code = anySystem, s
			}
			c.tokens = append(c.tokens, token{system: system, code: code})
		case def.typ == paramDate:
			dq, err := fhirdate.ParseQuery(s)
			if err != nil {
				return nil, invalid("search parameter %s: %v", full, err)
			}
			c.dates = append(c.dates, dq)
		case def.typ == paramString:
			c.strs = append(c.strs, s)
		case def.typ == paramReference:
			r, ok := parseReference(s)
			if !ok {
				return nil, invalid("search parameter %s: %q is not a reference", full, s)
			}
			if modifier != "" {
				if r.typ != "" && r.typ != modifier {
					return nil, invalid("search parameter %s: %q is not a %s reference", full, s, modifier)
				}
				r.typ = modifier
			}
			if r.typ == "" {
				r.typ = def.target
			}
			c.refs = append(c.refs, r)
		}
	}
	return c, nil
}

// anySystem marks a token query without "|": any system matches.
const anySystem = "\x00any"

func isTypeName(s string) bool {
	return s != "" && s[0] >= 'A' && s[0] <= 'Z'
}

// splitValues splits a parameter value on commas not escaped as "\,".
func splitValues(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && (v[i+1] == ',' || v[i+1] == '\\' || v[i+1] == '|' || v[i+1] == '$'):
			cur.WriteByte(v[i+1])
			i++
		case v[i] == ',':
			if cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// matches reports whether e satisfies every clause.
func (q *query) matches(e *entry) bool {
	for i := range q.clauses {
		if !q.clauses[i].matches(e) {
			return false
		}
	}
	return true
}

func (c *clause) matches(e *entry) bool {
	name := c.def.name
	switch {
	case name == "_id":
		for _, id := range c.ids {
			if id == e.id {
				return true
			}
		}
	case c.def.typ == paramToken:
		for _, want := range c.tokens {
			for _, got := range e.tokens[name] {
				if got.code == want.code && (want.system == anySystem || got.system == want.system) ||
					want.code == "" && want.system != anySystem && got.system == want.system {
					return true
				}
			}
		}
	case c.def.typ == paramDate:
		for _, dq := range c.dates {
			for _, sp := range e.spans[name] {
				if dq.Matches(sp) {
					return true
				}
			}
		}
	case c.def.typ == paramString:
		for _, want := range c.strs {
			for _, got := range e.strs[name] {
				if matchString(c.modifier, got, want) {
					return true
				}
			}
		}
	case c.def.typ == paramReference:
		for _, want := range c.refs {
			for _, got := range e.refs[name] {
				if got == want {
					return true
				}
			}
		}
	}
	return false
}

// matchString applies FHIR string matching: case-insensitive prefix by
// default, :contains anywhere, :exact exact and case-sensitive.
func matchString(modifier, got, want string) bool {
	switch modifier {
	case "exact":
		return got == want
	case "contains":
		return strings.Contains(strings.ToLower(got), strings.ToLower(want))
	}
	return len(got) >= len(want) && strings.EqualFold(got[:len(want)], want)
}

// candidates returns, sorted by id, a superset of the matches taken from the
// narrowest index: _id lookups, the per-patient index, or the whole type.
func (q *query) candidates(ix *index) []*entry {
	for i := range q.clauses {
		c := &q.clauses[i]
		if c.def.name == "_id" {
			var out []*entry
			for _, id := range c.ids {
				if e := ix.get(q.typ, id); e != nil {
					out = append(out, e)
				}
			}
			return sortUnique(out)
		}
	}
	for i := range q.clauses {
		c := &q.clauses[i]
		if !c.def.patient || !allPatients(c.refs) {
			continue
		}
		if len(c.refs) == 1 {
			return ix.byPatient[c.refs[0].id][q.typ] // sorted; read only
		}
		var out []*entry
		for _, r := range c.refs {
			out = append(out, ix.byPatient[r.id][q.typ]...)
		}
		return sortUnique(out)
	}
	return ix.byType[q.typ]
}

func allPatients(refs []reference) bool {
	for _, r := range refs {
		if r.typ != "Patient" {
			return false
		}
	}
	return true
}

func sortUnique(list []*entry) []*entry {
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	out := list[:0]
	for i, e := range list {
		if i == 0 || e.id != list[i-1].id {
			out = append(out, e)
		}
	}
	return out
}

// page is the outcome of a search: one page of matches and their includes.
type page struct {
	total    int
	matches  []*entry
	includes []*entry
	more     bool // matches remain after this page
}

// run evaluates the query against the index.
func (q *query) run(ix *index) page {
	var p page
	for _, e := range q.candidates(ix) {
		if !q.matches(e) {
			continue
		}
		p.total++
		if e.id <= q.after && q.after != "" {
			continue
		}
		if len(p.matches) < q.count {
			p.matches = append(p.matches, e)
		} else if q.count > 0 {
			p.more = true // _count=0 asks for the total only: no next link
		}
	}
	if len(q.includes) == 0 {
		return p
	}
	seen := make(map[string]bool, len(p.matches))
	for _, e := range p.matches {
		seen[e.typ+"/"+e.id] = true
	}
	for _, e := range p.matches {
		for _, inc := range q.includes {
			for _, r := range e.refs[inc.def.name] {
				if inc.target != "" && r.typ != inc.target {
					continue
				}
				k := r.key()
				if seen[k] {
					continue
				}
				if t := ix.byKey[k]; t != nil {
					seen[k] = true
					p.includes = append(p.includes, t)
				}
			}
		}
	}
	return p
}
