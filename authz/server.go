package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"ehrgate/apiauth"
	"ehrgate/audit"
	"ehrgate/clients"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/store"
)

// Person is someone signed in to ehrgate (the people login): who
// authorizes an app at the authorization endpoint.
type Person struct {
	// ID is the person's stable identifier; it becomes the tokens' sub.
	ID string
	// Name is shown on the patient picker.
	Name string
	// FHIRUser is the person's FHIR resource URL, when known (carried in
	// the access token's fhirUser claim).
	FHIRUser string
	// MayAudit says the person may read the audit trail: only then can an
	// app they authorize be granted AuditEvent scopes.
	MayAudit bool
}

// Options configure a Server.
type Options struct {
	// Issuer is the authorization server's base URL
	// ("https://ehrgate.example.org"): the tokens' iss, and the base of its
	// endpoints (Issuer+"/oauth/token", ...), which Routes serves at
	// "/oauth/..." (behind a proxy that adds a path to Issuer, the proxy
	// strips it). Required.
	Issuer string
	// Audience is the FHIR API's base URL ("https://ehrgate.example.org/fhir"):
	// the aud an app must ask for and the tokens' aud; discovery is served
	// at its path + "/.well-known/smart-configuration". Required.
	Audience string
	// Docs holds every piece of state (codes, tokens' hashes, keys sealed
	// with Keyring). Required.
	Docs store.Documents
	// Patients is searched by the patient picker. Required.
	Patients store.Reader
	// Clients is the registry of apps. Required.
	Clients *clients.Registry
	// Keyring seals the token-signing key at rest. Required.
	Keyring *secrets.Keyring
	// Person returns who is signed in on r, if anyone. Required.
	Person func(r *http.Request) (Person, bool)
	// LoginURL is where the authorization endpoint sends a person who is
	// not signed in, with the URL to come back to in the query parameter
	// "return" (a path and query on this server). Required.
	LoginURL string
	// Audit records each token issued with a patient in context (fail
	// closed: no token when it cannot be recorded). Required.
	Audit audit.Recorder
	// TokenTTL is the access tokens' lifetime (default and maximum 1h).
	TokenTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token granted with
	// offline_access (default 30 days); OnlineRefreshTTL with
	// online_access only (default 12h). Each refresh returns a new one.
	RefreshTTL       time.Duration
	OnlineRefreshTTL time.Duration
	// CodeTTL is the authorization codes' lifetime (default and maximum
	// 2 minutes).
	CodeTTL time.Duration
	// HTTPClient fetches clients' JWKS by URL (default: 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock for client assertions, audit events and token
	// iat (default time.Now). fosite times codes and tokens with the system
	// clock.
	Now    func() time.Time
	Logger *slog.Logger
}

// Route paths, below Issuer.
const (
	PathAuthorize  = "/oauth/authorize"
	PathPick       = "/oauth/authorize/pick"
	PathToken      = "/oauth/token"
	PathIntrospect = "/oauth/introspect"
	PathRevoke     = "/oauth/revoke"
	PathJWKS       = "/oauth/jwks"
)

// Server is the authorization server. It is safe for concurrent use; run
// as many replicas on one store as needed.
type Server struct {
	o        Options
	log      *slog.Logger
	oauth    fosite.OAuth2Provider
	keys     *keyStore
	st       *storage
	jwks     *jwksCache
	verifier *apiauth.Verifier
	fhirPath string // the Audience's path, where discovery is served
}

// New returns a Server, creating its first signing key when the store
// holds none. It reports every problem with o at once.
func New(ctx context.Context, o Options) (*Server, error) {
	var errs []error
	for _, u := range []struct{ name, v string }{{"issuer", o.Issuer}, {"audience", o.Audience}} {
		p, err := url.Parse(u.v)
		if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") || p.RawQuery != "" || p.Fragment != "" {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute http(s) URL without query", u.name, u.v))
		}
	}
	if o.Docs == nil {
		errs = append(errs, errors.New("a document store is required"))
	}
	if o.Patients == nil {
		errs = append(errs, errors.New("a patient reader is required"))
	}
	if o.Clients == nil {
		errs = append(errs, errors.New("the client registry is required"))
	}
	if o.Keyring == nil {
		errs = append(errs, errors.New("a keyring is required (it seals the token-signing key)"))
	}
	if o.Person == nil || o.LoginURL == "" {
		errs = append(errs, errors.New("the people login is required (Person and LoginURL)"))
	}
	if o.Audit == nil {
		errs = append(errs, errors.New("an audit recorder is required"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("authorization server: %w", errors.Join(errs...))
	}
	o.Issuer = strings.TrimSuffix(o.Issuer, "/")
	o.Audience = strings.TrimSuffix(o.Audience, "/")
	if o.TokenTTL <= 0 || o.TokenTTL > time.Hour {
		o.TokenTTL = time.Hour
	}
	if o.RefreshTTL <= 0 {
		o.RefreshTTL = 30 * 24 * time.Hour
	}
	if o.OnlineRefreshTTL <= 0 {
		o.OnlineRefreshTTL = 12 * time.Hour
	}
	if o.CodeTTL <= 0 || o.CodeTTL > 2*time.Minute {
		o.CodeTTL = 2 * time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	aud, _ := url.Parse(o.Audience)
	s := &Server{o: o, log: o.Logger, fhirPath: strings.TrimSuffix(aud.Path, "/")}
	s.keys = &keyStore{docs: o.Docs, ring: o.Keyring, now: o.Now, keep: o.TokenTTL + 10*time.Minute}
	if err := s.keys.ensure(ctx); err != nil {
		return nil, fmt.Errorf("authorization server: %w", err)
	}
	s.st = &storage{s: s}
	s.jwks = newJWKSCache(o.HTTPClient, o.Now)
	cfg := &fosite.Config{
		AccessTokenLifespan:   o.TokenTTL,
		RefreshTokenLifespan:  o.RefreshTTL,
		AuthorizeCodeLifespan: o.CodeTTL,
		AccessTokenIssuer:     o.Issuer,
		TokenURL:              o.Issuer + PathToken,
		// PKCE for every client, S256 only (SMART App Launch 2).
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		// Any requested scope passes fosite; grant narrows it (see the
		// package comment).
		ScopeStrategy:                func([]string, string) bool { return true },
		RefreshTokenScopes:           []string{scopeOffline, scopeOnline},
		ClientAuthenticationStrategy: s.authenticateClient,
		SanitationWhiteList:          []string{"redirect_uri"},
		MinParameterEntropy:          8,
	}
	s.oauth = compose.Compose(cfg, s.st, &strategy{s: s},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
	)
	v, err := apiauth.NewVerifier(apiauth.Options{
		Issuer:   o.Issuer,
		Audience: o.Audience,
		KeySet:   s.keys.publicSet,
		Revoked:  s.Revoked,
		Now:      o.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("authorization server: %w", err)
	}
	s.verifier = v
	return s, nil
}

// Routes are the authorization server's routes, for server.Options.Routes.
func (s *Server) Routes() []server.Route {
	return []server.Route{
		{Pattern: "GET " + s.fhirPath + "/.well-known/smart-configuration", Access: server.Public, Serves: "SMART discovery of ehrgate's authorization server",
			Handler: http.HandlerFunc(s.serveDiscovery)},
		{Pattern: "GET " + PathJWKS, Access: server.Public, Serves: "public keys of ehrgate's access tokens", Handler: http.HandlerFunc(s.serveJWKS)},
		{Pattern: "GET " + PathAuthorize, Access: server.OAuth, Serves: "authorization endpoint (signed-in person, PKCE)", Handler: http.HandlerFunc(s.serveAuthorize)},
		{Pattern: "POST " + PathPick, Access: server.OAuth, Serves: "patient picker of the authorization endpoint (CSRF token bound to the request)", Handler: http.HandlerFunc(s.servePick)},
		{Pattern: "POST " + PathToken, Access: server.OAuth, Serves: "token endpoint (PKCE or private_key_jwt)", Handler: http.HandlerFunc(s.serveToken)},
		{Pattern: "POST " + PathIntrospect, Access: server.OAuth, Serves: "token introspection (RFC 7662; client assertion)", Handler: http.HandlerFunc(s.serveIntrospect)},
		{Pattern: "POST " + PathRevoke, Access: server.OAuth, Serves: "token revocation (RFC 7009)", Handler: http.HandlerFunc(s.serveRevoke)},
	}
}

// Verifier returns a verifier of the access tokens this server issues:
// issuer, audience, signature by one of its keys (rotations followed at
// once), expiry, scopes, patient and revocation.
func (s *Server) Verifier() *apiauth.Verifier { return s.verifier }

// Revoked reports whether the access token with jti was revoked (by the
// revocation endpoint, a reused code or a reused refresh token).
func (s *Server) Revoked(ctx context.Context, jti string) (bool, error) {
	_, err := s.o.Docs.GetDocument(ctx, kindRevoked, hashName(jti))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("checking revocation: %w", err)
}

func (s *Server) endpoint(path string) string { return s.o.Issuer + path }
