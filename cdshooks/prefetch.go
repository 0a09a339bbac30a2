package cdshooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrToken is wrapped by Substitute's errors: a token that is not one the
// specification defines, or whose value the request does not carry.
var ErrToken = errors.New("cdshooks: prefetch token cannot be replaced")

// User tokens (specification "Prefetch tokens identifying the user"): each
// is the id of context.userId when that names a resource of the type.
var userTokens = map[string]string{
	"userPractitionerId":     "Practitioner",
	"userPractitionerRoleId": "PractitionerRole",
	"userPatientId":          "Patient",
	"userRelatedPersonId":    "RelatedPerson",
}

var tokenRE = regexp.MustCompile(`\{\{([^{}]*)\}\}`)

// fhirIDRE is a FHIR id; referenceRE a relative reference Type/id.
var (
	fhirIDRE    = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	referenceRE = regexp.MustCompile(`^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$`)
)

// Substitute replaces the prefetch tokens of a prefetch template with
// values from req, as CDS Hooks 2.0 ("Prefetch tokens") defines them:
//
//   - {{context.NAME}}: the context field NAME, which must be a root-level
//     field with a primitive value (string, number, boolean); objects and
//     arrays such as draftOrders are not tokens.
//   - {{userPractitionerId}}, {{userPractitionerRoleId}}, {{userPatientId}},
//     {{userRelatedPersonId}}: the id part of context.userId when it names a
//     Practitioner, PractitionerRole, Patient or RelatedPerson.
//
// Anything else between {{ and }}, or a token whose value the request
// lacks, is an error wrapping ErrToken: a template is never sent half
// filled. Values are inserted as they are when they are FHIR ids or
// references (what the specification's tokens carry) and query-escaped
// otherwise.
func Substitute(template string, req *Request) (string, error) {
	var firstErr error
	out := tokenRE.ReplaceAllStringFunc(template, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-2])
		v, err := tokenValue(name, req)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return m
		}
		if fhirIDRE.MatchString(v) || referenceRE.MatchString(v) {
			return v
		}
		return url.QueryEscape(v)
	})
	if firstErr != nil {
		return "", firstErr
	}
	if strings.Contains(out, "{{") || strings.Contains(out, "}}") {
		return "", fmt.Errorf("%w: unbalanced braces", ErrToken)
	}
	return out, nil
}

func tokenValue(name string, req *Request) (string, error) {
	if field, ok := strings.CutPrefix(name, "context."); ok {
		if field == "" || strings.Contains(field, ".") {
			return "", fmt.Errorf("%w: {{%s}} is not a root-level context field", ErrToken, name)
		}
		raw, ok := req.Context[field]
		if !ok {
			return "", fmt.Errorf("%w: the context has no %s", ErrToken, field)
		}
		switch jsonType(raw) {
		case "string":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil || s == "" {
				return "", fmt.Errorf("%w: context.%s is empty", ErrToken, field)
			}
			return s, nil
		case "number", "boolean":
			return string(raw), nil
		}
		return "", fmt.Errorf("%w: context.%s is not a primitive value", ErrToken, field)
	}
	typ, ok := userTokens[name]
	if !ok {
		return "", fmt.Errorf("%w: {{%s}} is not a prefetch token", ErrToken, name)
	}
	user, _ := req.ContextString("userId")
	m := referenceRE.FindStringSubmatch(user)
	if m == nil || m[1] != typ {
		return "", fmt.Errorf("%w: context.userId is not a %s", ErrToken, typ)
	}
	return m[2], nil
}

// prefetchQuery splits a filled-in template into a resource type and
// either an id (a read) or a query (a search).
func prefetchQuery(filled string) (typ, id string, query url.Values, err error) {
	path, rawQuery, isSearch := strings.Cut(filled, "?")
	if !isSearch {
		m := referenceRE.FindStringSubmatch(path)
		if m == nil {
			return "", "", nil, fmt.Errorf("%w: %q is neither Type/id nor Type?query", ErrToken, "template")
		}
		return m[1], m[2], nil, nil
	}
	if !regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`).MatchString(path) {
		return "", "", nil, fmt.Errorf("%w: a search template must start with a resource type", ErrToken)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", "", nil, fmt.Errorf("%w: the query does not parse", ErrToken)
	}
	return path, "", q, nil
}
