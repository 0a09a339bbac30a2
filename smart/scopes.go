package smart

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Style is a SMART scope syntax.
type Style int

// Scope syntaxes: V1 is SMART App Launch 1.0 (patient/Observation.read),
// V2 is 2.x (patient/Observation.rs, with optional ?param=value restrictions).
const (
	V1 Style = 1
	V2 Style = 2
)

// Perm is a set of SMART v2 permissions (create, read, update, delete,
// search). V1 .read is read+search, .write is create+update+delete.
type Perm uint8

// Permissions, in the order SMART v2 requires them to appear (c r u d s).
const (
	PermCreate Perm = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch

	PermAll   = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
	permRead1 = PermRead | PermSearch
	permWrite = PermCreate | PermUpdate | PermDelete
)

var permLetters = []struct {
	p Perm
	c byte
}{{PermCreate, 'c'}, {PermRead, 'r'}, {PermUpdate, 'u'}, {PermDelete, 'd'}, {PermSearch, 's'}}

// String returns the v2 letters, e.g. "rs".
func (p Perm) String() string {
	var b []byte
	for _, l := range permLetters {
		if p&l.p != 0 {
			b = append(b, l.c)
		}
	}
	return string(b)
}

// Scope contexts.
const (
	ContextPatient = "patient"
	ContextUser    = "user"
	ContextSystem  = "system"
)

// Scope is one SMART scope: either a resource scope (Context/Type.perms,
// with an optional v2 query restriction) or any other scope (Name set:
// "openid", "fhirUser", "launch", "launch/patient", "offline_access", ...).
type Scope struct {
	Name    string // non-resource scope; empty for resource scopes
	Context string // patient, user or system
	Type    string // a FHIR resource type or "*"
	Perms   Perm
	Query   string // v2 restriction without the "?", e.g. "category=http://...|laboratory"
	Style   Style
}

// ErrScopeSyntax is matched by every scope parsing error.
var ErrScopeSyntax = errors.New("smart: malformed scope")

// IsResource reports whether s is a resource scope.
func (s Scope) IsResource() bool { return s.Name == "" }

// ParseScope parses one scope token.
func ParseScope(tok string) (Scope, error) {
	if tok == "" {
		return Scope{}, fmt.Errorf("empty scope: %w", ErrScopeSyntax)
	}
	for i := 0; i < len(tok); i++ {
		// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		c := tok[i]
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return Scope{}, fmt.Errorf("scope %q: character %q not allowed: %w", tok, c, ErrScopeSyntax)
		}
	}
	ctx, rest, ok := strings.Cut(tok, "/")
	if !ok || (ctx != ContextPatient && ctx != ContextUser && ctx != ContextSystem) {
		return Scope{Name: tok}, nil
	}
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || !validType(typ) {
		return Scope{}, fmt.Errorf("scope %q: want %s/Type.permissions: %w", tok, ctx, ErrScopeSyntax)
	}
	s := Scope{Context: ctx, Type: typ}
	switch perm {
	case "read":
		s.Perms, s.Style = permRead1, V1
		return s, nil
	case "write":
		s.Perms, s.Style = permWrite, V1
		return s, nil
	case "*":
		s.Perms, s.Style = PermAll, V1
		return s, nil
	}
	letters, query, hasQuery := strings.Cut(perm, "?")
	if hasQuery && query == "" {
		return Scope{}, fmt.Errorf("scope %q: empty restriction after '?': %w", tok, ErrScopeSyntax)
	}
	p, err := parsePerm(letters)
	if err != nil {
		return Scope{}, fmt.Errorf("scope %q: %v: %w", tok, err, ErrScopeSyntax)
	}
	s.Perms, s.Query, s.Style = p, query, V2
	return s, nil
}

func validType(t string) bool {
	if t == "*" {
		return true
	}
	if t == "" || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func parsePerm(s string) (Perm, error) {
	if s == "" {
		return 0, errors.New("no permissions")
	}
	var p Perm
	i := 0
	for _, l := range permLetters {
		if i < len(s) && s[i] == l.c {
			p |= l.p
			i++
		}
	}
	if i != len(s) {
		return 0, fmt.Errorf("permissions %q are not a subsequence of c r u d s in that order", s)
	}
	return p, nil
}

// String formats the scope in its Style. A V1 scope shows the smallest v1
// permission covering its Perms (.read, .write or .*); v1 cannot express a
// restriction, so a V1 scope never has a Query.
func (s Scope) String() string {
	if !s.IsResource() {
		return s.Name
	}
	prefix := s.Context + "/" + s.Type + "."
	if s.Style == V1 {
		switch {
		case s.Perms&^permRead1 == 0:
			return prefix + "read"
		case s.Perms&^permWrite == 0:
			return prefix + "write"
		default:
			return prefix + "*"
		}
	}
	out := prefix + s.Perms.String()
	if s.Query != "" {
		out += "?" + s.Query
	}
	return out
}

// As returns s in style st. Converting to V1 drops a restriction and may
// widen permissions (v1 has only read, write and *): the result covers s.
func (s Scope) As(st Style) Scope {
	if !s.IsResource() {
		return s
	}
	s.Style = st
	if st == V1 {
		s.Query = ""
		switch {
		case s.Perms&^permRead1 == 0:
			s.Perms = permRead1
		case s.Perms&^permWrite == 0:
			s.Perms = permWrite
		default:
			s.Perms = PermAll
		}
	}
	return s
}

// Scopes is a scope list, as in an OAuth scope parameter.
type Scopes []Scope

// ParseScopes parses a space-separated scope string.
func ParseScopes(s string) (Scopes, error) {
	var out Scopes
	var errs []error
	for _, tok := range strings.Fields(s) {
		sc, err := ParseScope(tok)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

// String joins the scopes with spaces.
func (ss Scopes) String() string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

// Names returns the non-resource scopes' names.
func (ss Scopes) Names() []string {
	var out []string
	for _, s := range ss {
		if !s.IsResource() {
			out = append(out, s.Name)
		}
	}
	return out
}

// covers reports whether the union of ss grants r.
func (ss Scopes) covers(r Scope) bool {
	if !r.IsResource() {
		return slices.ContainsFunc(ss, func(g Scope) bool { return g.Name == r.Name })
	}
	var p Perm
	for _, g := range ss {
		if !g.IsResource() || g.Context != r.Context || (g.Type != "*" && g.Type != r.Type) {
			continue
		}
		if g.Query != "" && g.Query != r.Query {
			continue // a restricted grant does not cover a wider or different request
		}
		p |= g.Perms
	}
	return p&r.Perms == r.Perms
}

// CanSearch reports whether ss lets a client read and search resources of
// type typ in context ctx, and whether only with restrictions (v2 queries).
func (ss Scopes) CanSearch(ctx, typ string) (ok, restricted bool) {
	if ss.covers(Scope{Context: ctx, Type: typ, Perms: permRead1}) {
		return true, false
	}
	for _, g := range ss {
		if g.IsResource() && g.Context == ctx && (g.Type == "*" || g.Type == typ) && g.Query != "" && g.Perms&permRead1 == permRead1 {
			return true, true
		}
	}
	return false, false
}

// ScopeRequest says what a connection needs; LeastPrivilege turns it into
// scopes.
type ScopeRequest struct {
	Context string   // patient, user or system
	Types   []string // resource types the connection reads; "*" only if configured
	Style   Style    // V2 when the server declares permission-v2
	// Restrictions limits a type to these v2 queries (one scope each), e.g.
	// "Observation": {"category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}.
	// Ignored in V1, which cannot express them.
	Restrictions map[string][]string
	Extra        []string // non-resource scopes: launch, openid, fhirUser, offline_access, launch/patient, ...
	// Writes are the write permissions (PermCreate, PermUpdate) a
	// connection's write-back policy needs, by type; nil asks for none. V1
	// can only say .write (create, update and delete).
	Writes map[string]Perm
}

// LeastPrivilege returns the smallest scope set for r: read and search
// (v2 "rs", v1 ".read") on exactly the configured types, never a wildcard
// that was not configured, then create/update on the types write-back
// needs (Writes), then the extra scopes, without duplicates.
func LeastPrivilege(r ScopeRequest) Scopes {
	types := slices.Clone(r.Types)
	sort.Strings(types)
	types = slices.Compact(types)
	seen := map[string]bool{}
	var out Scopes
	add := func(s Scope) {
		if k := s.String(); !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	for _, t := range types {
		qs := r.Restrictions[t]
		if r.Style != V2 || len(qs) == 0 {
			qs = []string{""}
		}
		for _, q := range qs {
			add(Scope{Context: r.Context, Type: t, Perms: permRead1, Query: q, Style: r.Style})
		}
	}
	for _, t := range slices.Sorted(maps.Keys(r.Writes)) {
		if p := r.Writes[t] & (PermCreate | PermUpdate); p != 0 {
			add(Scope{Context: r.Context, Type: t, Perms: p, Style: r.Style})
		}
	}
	for _, e := range r.Extra {
		add(Scope{Name: e})
	}
	return out
}

// ScopeDiff compares what was requested with what the server granted.
type ScopeDiff struct {
	Requested  Scopes
	Granted    Scopes
	NotGranted Scopes // requested scopes the grant does not cover
}

// Complete reports whether everything requested was granted.
func (d ScopeDiff) Complete() bool { return len(d.NotGranted) == 0 }

// CompareScopes reports which requested scopes granted does not cover. A
// v1 grant covers the equivalent v2 request and vice versa; a wildcard type
// covers every type; an unrestricted grant covers a restricted request.
func CompareScopes(requested, granted Scopes) ScopeDiff {
	d := ScopeDiff{Requested: requested, Granted: granted}
	for _, r := range requested {
		if !granted.covers(r) {
			d.NotGranted = append(d.NotGranted, r)
		}
	}
	return d
}
