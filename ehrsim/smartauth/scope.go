package smartauth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Scopes that are not resource scopes (SMART App Launch 2.x, "Scopes and
// Launch Context").
var plainScopes = []string{
	"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access",
}

// Permission bits of a resource scope: SMART v2 letters c r u d s.
const (
	permC = 1 << iota
	permR
	permU
	permD
	permS
	permAll = permC | permR | permU | permD | permS
)

// scope is a parsed scope. Resource scopes have a context (patient, user,
// system), a type (or "*"), permissions and, in v2, an optional query
// restriction such as ?category=laboratory.
type scope struct {
	raw     string
	context string // "" for non-resource scopes
	typ     string
	perms   int
	v2      bool
	query   url.Values
}

// parseScope parses one scope string.
func parseScope(s string) (scope, error) {
	if slices.Contains(plainScopes, s) {
		return scope{raw: s}, nil
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || (ctx != "patient" && ctx != "user" && ctx != "system") {
		return scope{}, fmt.Errorf("unknown scope %q", s)
	}
	rest, q, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || typ == "" || !(typ == "*" || isTypeName(typ)) {
		return scope{}, fmt.Errorf("malformed scope %q", s)
	}
	sc := scope{raw: s, context: ctx, typ: typ}
	switch perm {
	case "read":
		sc.perms = permR | permS
	case "write":
		sc.perms = permC | permU | permD
	case "*":
		sc.perms = permAll
	default:
		sc.v2 = true
		last := -1
		for _, c := range perm {
			i := strings.IndexRune("cruds", c)
			if i <= last { // unknown letter, repeated or out of order
				return scope{}, fmt.Errorf("malformed scope %q: permissions must be a subsequence of cruds", s)
			}
			last = i
			sc.perms |= 1 << i
		}
		if sc.perms == 0 {
			return scope{}, fmt.Errorf("malformed scope %q", s)
		}
	}
	if hasQuery {
		if !sc.v2 {
			return scope{}, fmt.Errorf("malformed scope %q: only v2 scopes take a query", s)
		}
		v, err := url.ParseQuery(q)
		if err != nil || len(v) == 0 {
			return scope{}, fmt.Errorf("malformed scope %q: bad query", s)
		}
		for name := range v {
			if strings.HasPrefix(name, "_") || name == "patient" || name == "subject" {
				return scope{}, fmt.Errorf("scope %q: restriction on %q is not supported", s, name)
			}
		}
		sc.query = v
	}
	return sc, nil
}

// isTypeName reports whether s looks like a FHIR resource type name.
func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// isResource reports whether the scope is a resource scope.
func (sc scope) isResource() bool { return sc.context != "" }

// covers reports whether an allowed scope a covers the requested scope r.
func (a scope) covers(r scope) bool {
	if !a.isResource() || !r.isResource() {
		return a.raw == r.raw
	}
	if a.context != r.context || (a.typ != "*" && a.typ != r.typ) || r.perms&^a.perms != 0 {
		return false
	}
	return a.query == nil || (r.query != nil && r.query.Encode() == a.query.Encode())
}

// permits reports whether the resource scope allows the interaction (a
// perm bit) on the type.
func (sc scope) permits(typ string, perm int) bool {
	return sc.isResource() && (sc.typ == "*" || sc.typ == typ) && sc.perms&perm != 0
}

// grantScopes returns the requested scopes the client may have, in request
// order, without duplicates; unknown and disallowed scopes are dropped.
func grantScopes(c *Client, requested []string) []scope {
	var allowed []scope
	for _, a := range c.Scopes {
		if sc, err := parseScope(a); err == nil {
			allowed = append(allowed, sc)
		}
	}
	var out []scope
	seen := map[string]bool{}
	for _, r := range requested {
		if seen[r] {
			continue
		}
		seen[r] = true
		sc, err := parseScope(r)
		if err != nil {
			continue
		}
		if len(c.Scopes) == 0 || slices.ContainsFunc(allowed, func(a scope) bool { return a.covers(sc) }) {
			out = append(out, sc)
		}
	}
	return out
}

// scopeStrings returns the scopes' strings.
func scopeStrings(list []scope) []string {
	out := make([]string, len(list))
	for i, sc := range list {
		out[i] = sc.raw
	}
	return out
}

// hasScope reports whether the list holds the scope string.
func hasScope(list []scope, s string) bool {
	return slices.ContainsFunc(list, func(sc scope) bool { return sc.raw == s })
}

// parseScopeList parses granted scope strings, skipping bad ones.
func parseScopeList(list []string) []scope {
	out := make([]scope, 0, len(list))
	for _, s := range list {
		if sc, err := parseScope(s); err == nil {
			out = append(out, sc)
		}
	}
	return out
}
