// Package login signs people in to ehrgate's dashboard: local accounts
// (argon2id password hashes, lockout after repeated failures) for small
// sites, or OpenID Connect against the site's identity provider
// (authorization code flow with PKCE, state and nonce), with sessions kept
// in the store so that every replica on one store honours them.
//
// # Lifecycle
//
// New builds a Service over the store's documents (store.Documents). Its
// Routes (the login page, the local form, the OpenID redirect and callback,
// logout) are served under the operator's host names without a session;
// Require wraps every route that shows patient data: it finds the session
// from the request's cookie, refuses expired ones (idle and absolute
// timeouts), checks CSRF on every state-changing request (a synchronizer
// token bound to the session, plus Origin/Sec-Fetch-Site), and puts the
// signed-in Person on the request's context, where PersonFrom finds it for
// the pages and the audit trail. Allow then admits only people whose roles
// grant a Permission.
//
// # What is kept, and where
//
// Sessions are store documents of kind DocSession named by the SHA-256 of
// the session id: the id itself exists only in the person's cookie. A
// session holds the person (id, display name, roles), its CSRF token, when
// it began and when it was last seen (updated at most once a minute, not
// on every request). Local accounts are documents of kind DocAccount
// holding the argon2id hash (RFC 9106 parameters), never the password.
// Pending OpenID logins (state, nonce, PKCE verifier) are documents of kind
// DocPending named by the SHA-256 of the state, used once. Nothing here
// logs passwords, session ids, codes or tokens.
package login

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Document kinds this package keeps (store.Documents).
const (
	DocAccount = "login-account" // a local account: roles and password hash
	DocSession = "login-session" // a session, named by the hash of its id
	DocPending = "login-pending" // an OpenID login under way, named by the hash of its state
)

// Role is what a person may do in ehrgate.
type Role string

// The roles.
const (
	// RoleAdmin may do everything: patients and charts, connections,
	// probes, data quality, the audit trail.
	RoleAdmin Role = "admin"
	// RoleClinician sees patients and their charts (and opens SMART
	// launches), nothing of the operation.
	RoleClinician Role = "clinician"
	// RoleAuditor reads the audit trail; never charts.
	RoleAuditor Role = "auditor"
)

// Roles lists every role.
var Roles = []Role{RoleAdmin, RoleClinician, RoleAuditor}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("login: %q is not a role (admin, clinician or auditor)", s)
	}
	return r, nil
}

// Permission is a part of the dashboard a role may use.
type Permission string

// The permissions.
const (
	// SeePatients: patient search, charts, SMART launches, the event stream.
	SeePatients Permission = "patients"
	// SeeOperations: connections, compatibility probes, data quality.
	SeeOperations Permission = "operations"
	// SeeAudit: the audit trail.
	SeeAudit Permission = "audit"
	// ApproveWrites: the write-back approval queue: approve or reject what
	// ehrgate proposes to write into an EHR's legal record. Admins and
	// clinicians (clinical judgement on what enters a chart); never
	// auditors, who only read the trail.
	ApproveWrites Permission = "writes"
)

// grants is what each role may do.
var grants = map[Role][]Permission{
	RoleAdmin:     {SeePatients, SeeOperations, SeeAudit, ApproveWrites},
	RoleClinician: {SeePatients, ApproveWrites},
	RoleAuditor:   {SeeAudit},
}

// Person is who is signed in.
type Person struct {
	// ID identifies the person in the audit trail: the local account name,
	// or the OpenID subject (sub) at the configured issuer.
	ID string `json:"id"`
	// Name is the display name (the account's, or the name claim).
	Name string `json:"name,omitempty"`
	// Roles are never empty: people without a role are not signed in.
	Roles []Role `json:"roles"`
	// Method is how the person signed in: "local" or "oidc".
	Method string `json:"method"`
}

// Can reports whether one of p's roles grants perm.
func (p Person) Can(perm Permission) bool {
	for _, r := range p.Roles {
		if slices.Contains(grants[r], perm) {
			return true
		}
	}
	return false
}

// Has reports whether p holds role r.
func (p Person) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// DisplayName is Name, or ID when there is no name.
func (p Person) DisplayName() string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

type ctxKey struct{}

type signedIn struct {
	person Person
	csrf   string
}

// NewContext returns ctx carrying p as the signed-in person and csrf as
// the session's CSRF token (Require does this; tests of pages may too).
func NewContext(ctx context.Context, p Person, csrf string) context.Context {
	return context.WithValue(ctx, ctxKey{}, signedIn{person: p, csrf: csrf})
}

// PersonFrom returns the person signed in for the request whose context
// this is, and false when no one is (login is off, or the route does not
// require it).
func PersonFrom(ctx context.Context) (Person, bool) {
	s, ok := ctx.Value(ctxKey{}).(signedIn)
	return s.person, ok
}

// CSRFToken returns the session's CSRF token, which every state-changing
// form must send back in the field CSRFField ("" when no one is signed in).
func CSRFToken(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(signedIn)
	return s.csrf
}

// CSRFField is the form field (and CSRFHeader the header) carrying the
// CSRF token on POST, PUT, PATCH and DELETE requests.
const (
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
)
