// Package smartauth is the simulated EHR's SMART App Launch 2.x
// authorization server: discovery (/fhir/.well-known/smart-configuration),
// the authorize endpoint with server-rendered login, patient picker and
// consent pages, an EHR "launch app" page, the token endpoint
// (authorization_code with PKCE S256, refresh_token with optional rotation,
// client_credentials with private_key_jwt), introspection (RFC 7662),
// revocation (RFC 7009), a JWKS for id_tokens, and Protect, the middleware
// that puts bearer-token, scope and patient-compartment checks in front of
// the ehrsim FHIR server.
//
// It is built for tests and demos: every lifetime is a knob, the server's
// clock can be shifted (ClockSkew) to expire tokens mid-sync, and each
// authorization failure a client must report clearly can be injected
// (Failures). See README.md for the endpoints and the choices made.
//
// Access and refresh tokens are opaque random strings (256 bits,
// base64url); only their SHA-256 hashes are kept. Tokens, codes, secrets and
// client assertions are never logged.
package smartauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Token endpoint authentication methods a Client may register
// (RFC 7591 section 2 names; private_key_jwt is RFC 7523).
const (
	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Client is a registered SMART client (app).
type Client struct {
	ID string `json:"client_id"`
	// Secret is the shared secret of a confidential symmetric client
	// (client_secret_basic or client_secret_post).
	Secret string `json:"client_secret,omitempty"`
	// JWKS is the public key set of a private_key_jwt client, inline.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// JWKSURL is where the private_key_jwt client's key set is fetched
	// (over HTTP, cached for Options.JWKSCacheTTL).
	JWKSURL string `json:"jwks_uri,omitempty"`
	// RedirectURIs are compared exactly with the redirect_uri sent.
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// LaunchURL is the app's EHR-launch URL; clients with one get a
	// "launch app" button on the EHR launch page.
	LaunchURL string `json:"launch_url,omitempty"`
	// Scopes are the scopes the client may be granted. A requested scope is
	// granted when an allowed scope covers it (patient/*.rs covers
	// patient/Observation.rs); others are dropped, so grants can be
	// narrower than requests. Empty allows every scope the server knows.
	Scopes []string `json:"scopes,omitempty"`
	// Public marks a public client (no secret; TokenEndpointAuth none).
	Public bool `json:"public,omitempty"`
	// TokenEndpointAuth is none, client_secret_basic, client_secret_post or
	// private_key_jwt. Empty: none for public clients, private_key_jwt when
	// a JWKS or JWKSURL is set, else client_secret_basic (which then also
	// accepts client_secret_post).
	TokenEndpointAuth string `json:"token_endpoint_auth_method,omitempty"`
	// Name is shown on the consent and launch pages (default: ID).
	Name string `json:"client_name,omitempty"`
}

// User is a practitioner login of the simulated EHR.
type User struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// FhirUser is the user's FHIR resource, relative to the FHIR base,
	// e.g. "Practitioner/dr-smith"; it becomes the fhirUser claim.
	FhirUser string `json:"fhir_user"`
	Name     string `json:"name,omitempty"`
}

// DefaultUsers are the logins used when Options.Users is empty.
var DefaultUsers = []User{{Username: "dr.smith", Password: "password", FhirUser: "Practitioner/dr-smith", Name: "Dr Smith"}}

// PatientChoice is one patient offered by the patient picker and the EHR
// launch page.
type PatientChoice struct {
	ID   string // Patient resource id
	Name string // display name
	// Encounter, when set, is the encounter id an EHR launch for this
	// patient carries.
	Encounter string
}

// Failures are injectable authorization failures. Each true field makes
// every matching request fail the way a real server would, for the clients
// Only selects (all when Only is nil). Change them at run time with
// Server.SetFailures.
type Failures struct {
	// InvalidClientID: the client is unknown. The authorize endpoint shows
	// an error page (it must not redirect); the token, introspection and
	// revocation endpoints answer 401 invalid_client.
	InvalidClientID bool
	// InvalidRedirectURI: redirect_uri does not match. The authorize
	// endpoint shows an error page; the code exchange answers 400
	// invalid_grant.
	InvalidRedirectURI bool
	// InvalidScope: authorize redirects with error=invalid_scope; the
	// token endpoint answers 400 invalid_scope for client_credentials and
	// scoped refreshes.
	InvalidScope bool
	// InvalidClientSecret: client authentication (secret or assertion)
	// fails: 401 invalid_client.
	InvalidClientSecret bool
	// InvalidRefreshToken: refresh_token grants answer 400 invalid_grant.
	InvalidRefreshToken bool
	// ExpiredRefreshToken: refresh_token grants answer 400 invalid_grant
	// "refresh token expired".
	ExpiredRefreshToken bool
	// InvalidJTI: client assertions are refused as replays: 401
	// invalid_client.
	InvalidJTI bool
	// InvalidAccessToken: Protect answers 401 invalid_token and
	// introspection reports active:false.
	InvalidAccessToken bool
	// Only restricts the failures to the clients it returns true for;
	// nil = every client.
	Only func(clientID string) bool
}

// applies reports whether the failures apply to the client.
func (f Failures) applies(clientID string) bool {
	return f.Only == nil || f.Only(clientID)
}

// Options configures a Server.
type Options struct {
	// Issuer is the FHIR base URL, e.g. http://127.0.0.1:8081/fhir: the iss
	// of EHR launches, the aud clients must send and the id_token issuer.
	// Required.
	Issuer string
	// AuthBase is the URL the auth endpoints are served under; default
	// the Issuer's origin + "/auth". The token endpoint (the aud of client
	// assertions) is AuthBase + "/token".
	AuthBase string
	Clients  []Client
	// Lifetimes; defaults 1h, 24h, 1m, 5m.
	AccessTokenTTL, RefreshTokenTTL, CodeTTL, LaunchTTL time.Duration
	// RotateRefreshTokens issues a new refresh token on each refresh and
	// invalidates the one used.
	RotateRefreshTokens bool
	// ClockSkew shifts the server's clock (now = Clock() + ClockSkew), so a
	// test can expire tokens or simulate a server whose clock is off.
	// Change it at run time with SetClockSkew.
	ClockSkew time.Duration
	// Leeway is the tolerance for clients' clocks when checking client
	// assertion iat, nbf and exp; default 2m.
	Leeway time.Duration
	Clock  func() time.Time // default time.Now
	Logger *slog.Logger     // nil = discard; never receives tokens or secrets
	// Patients lists the patients for the picker and the EHR launch page.
	// nil: those of the FHIR handler given to WithSMART (PatientLister),
	// else none.
	Patients func() []PatientChoice
	// Users are the practitioner logins; empty = DefaultUsers.
	Users    []User
	Failures Failures
	// SigningKey signs id_tokens (RSA: RS256; ECDSA P-256: ES256). A
	// 2048-bit RSA key is generated when nil.
	SigningKey crypto.Signer
	// HTTPClient fetches JWKS URLs; default a client with a 10s timeout.
	HTTPClient *http.Client
	// JWKSCacheTTL is how long a fetched JWKS is used; default 1m. An
	// unknown kid refetches sooner (at most every 5s).
	JWKSCacheTTL time.Duration
	// BulkScopeFilter makes a Bulk Data kick-off export only the types the
	// token may read, silently, as the SMART reference bulk-data server
	// does and the Bulk Data spec's export flow allows ("exclude
	// unauthorized resources based on OAuth scopes"): _type is narrowed to
	// them (or, without _type, set to the types the token names unless it
	// has a wildcard); 403 only when none is left. False: a kick-off asking
	// for a type the token may not read is refused with 403.
	BulkScopeFilter bool
}

// Server is the SMART authorization server. Create it with New. It is safe
// for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	issuer   *url.URL
	authBase string
	signer   crypto.Signer
	kid      string
	jwks     *jwksCache

	mu       sync.Mutex
	clients  map[string]*Client
	failures Failures
	skew     time.Duration
	lister   func() []PatientChoice // set by WithSMART when Options.Patients is nil
	st       *store
}

// New validates the options, applies defaults and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Issuer == "" {
		return nil, errors.New("smartauth: Issuer is required")
	}
	iss, err := url.Parse(strings.TrimRight(opts.Issuer, "/"))
	if err != nil || (iss.Scheme != "http" && iss.Scheme != "https") || iss.Host == "" {
		return nil, fmt.Errorf("smartauth: Issuer %q must be an absolute http(s) URL", opts.Issuer)
	}
	opts.Issuer = iss.String()
	if opts.AuthBase == "" {
		opts.AuthBase = iss.Scheme + "://" + iss.Host + "/auth"
	}
	opts.AuthBase = strings.TrimRight(opts.AuthBase, "/")
	if ab, err := url.Parse(opts.AuthBase); err != nil || !ab.IsAbs() || ab.Path == "" {
		return nil, fmt.Errorf("smartauth: AuthBase %q must be an absolute URL with a path, e.g. http://host/auth", opts.AuthBase)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.AccessTokenTTL, time.Hour)
	def(&opts.RefreshTokenTTL, 24*time.Hour)
	def(&opts.CodeTTL, time.Minute)
	def(&opts.LaunchTTL, 5*time.Minute)
	def(&opts.Leeway, 2*time.Minute)
	def(&opts.JWKSCacheTTL, time.Minute)
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if len(opts.Users) == 0 {
		opts.Users = DefaultUsers
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	signer := opts.SigningKey
	if signer == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("smartauth: generating signing key: %w", err)
		}
		signer = k
	}
	switch k := signer.Public().(type) {
	case *rsa.PublicKey:
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("smartauth: an ECDSA SigningKey must use P-256")
		}
	default:
		return nil, fmt.Errorf("smartauth: unsupported SigningKey type %T", k)
	}
	s := &Server{
		opts:     opts,
		log:      log,
		issuer:   iss,
		authBase: opts.AuthBase,
		signer:   signer,
		kid:      randomToken()[:16],
		clients:  make(map[string]*Client),
		failures: opts.Failures,
		skew:     opts.ClockSkew,
		st:       newStore(),
	}
	s.jwks = newJWKSCache(opts.HTTPClient, opts.JWKSCacheTTL)
	var errs []error
	for _, c := range opts.Clients {
		if err := s.RegisterClient(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// RegisterClient validates c and adds it, replacing a client with the same
// ID.
func (s *Server) RegisterClient(c Client) error {
	if err := normalizeClient(&c); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &c
	return nil
}

// normalizeClient fills in defaults and reports what is wrong with c.
func normalizeClient(c *Client) error {
	var errs []error
	if c.ID == "" {
		return errors.New("registering client: client_id is required")
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.TokenEndpointAuth == "" {
		switch {
		case c.Public:
			c.TokenEndpointAuth = AuthNone
		case len(c.JWKS) > 0 || c.JWKSURL != "":
			c.TokenEndpointAuth = AuthPrivateKeyJWT
		default:
			c.TokenEndpointAuth = AuthClientSecretBasic
		}
	}
	switch c.TokenEndpointAuth {
	case AuthNone:
		c.Public = true
	case AuthClientSecretBasic, AuthClientSecretPost:
		if c.Public {
			errs = append(errs, errors.New("a public client cannot use a client secret"))
		}
		if c.Secret == "" {
			errs = append(errs, errors.New("client_secret is required for "+c.TokenEndpointAuth))
		}
	case AuthPrivateKeyJWT:
		if c.Public {
			errs = append(errs, errors.New("a public client cannot use private_key_jwt"))
		}
		if len(c.JWKS) == 0 && c.JWKSURL == "" {
			errs = append(errs, errors.New("jwks or jwks_uri is required for private_key_jwt"))
		}
		if len(c.JWKS) > 0 {
			if _, err := parseJWKS(c.JWKS); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		errs = append(errs, fmt.Errorf("unknown token_endpoint_auth_method %q", c.TokenEndpointAuth))
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.LaunchURL) {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || !p.IsAbs() || p.Fragment != "" {
			errs = append(errs, fmt.Errorf("%q must be an absolute URL without a fragment", u))
		}
	}
	for _, sc := range c.Scopes {
		if _, err := parseScope(sc); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering client %q: %w", c.ID, err)
	}
	return nil
}

// SetFailures replaces the injected failures.
func (s *Server) SetFailures(f Failures) {
	s.mu.Lock()
	s.failures = f
	s.mu.Unlock()
}

// SetClockSkew replaces the server clock offset.
func (s *Server) SetClockSkew(d time.Duration) {
	s.mu.Lock()
	s.skew = d
	s.mu.Unlock()
}

// now is the server's time: the clock plus the skew.
func (s *Server) now() time.Time {
	s.mu.Lock()
	skew := s.skew
	s.mu.Unlock()
	return s.opts.Clock().Add(skew)
}

// fail reports whether the injected failure selected by pick applies to
// the client.
func (s *Server) fail(clientID string, pick func(Failures) bool) bool {
	s.mu.Lock()
	f := s.failures
	s.mu.Unlock()
	return pick(f) && f.applies(clientID)
}

// client returns the registered client, or nil.
func (s *Server) client(id string) *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[id]
}

// clientList returns the registered clients sorted by ID.
func (s *Server) clientList() []*Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Client, 0, len(s.clients))
	for _, c := range s.clients {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Client) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Endpoint URLs.
func (s *Server) authorizeURL() string  { return s.authBase + "/authorize" }
func (s *Server) tokenURL() string      { return s.authBase + "/token" }
func (s *Server) introspectURL() string { return s.authBase + "/introspect" }
func (s *Server) revokeURL() string     { return s.authBase + "/revoke" }
func (s *Server) jwksURL() string       { return s.authBase + "/jwks" }
func (s *Server) styleURL() string      { return s.authBase + "/smart-style.json" }

// authPrefix is the path prefix of the auth endpoints.
func (s *Server) authPrefix() string {
	u, err := url.Parse(s.authBase)
	if err != nil || u.Path == "" {
		return "/auth"
	}
	return u.Path
}

// fhirPrefix is the path of the FHIR base ("/fhir").
func (s *Server) fhirPrefix() string { return strings.TrimRight(s.issuer.Path, "/") }

// Handler serves the auth endpoints under AuthBase's path (default
// "/auth/") and the discovery document at
// <Issuer path>/.well-known/smart-configuration:
//
//	GET       /auth/authorize           authorization endpoint
//	GET, POST /auth/login               login page
//	GET, POST /auth/picker              patient picker (standalone launch/patient)
//	GET, POST /auth/consent             consent page
//	GET, POST /auth/launch              EHR launch page ("launch app" buttons)
//	POST      /auth/token               token endpoint
//	POST      /auth/introspect          RFC 7662 introspection
//	POST      /auth/revoke              RFC 7009 revocation
//	GET       /auth/jwks                id_token signing keys
//	GET       /auth/smart-style.json    the smart_style_url document
func (s *Server) Handler() http.Handler {
	p := s.authPrefix()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/authorize", s.serveAuthorize)
	mux.HandleFunc("POST "+p+"/authorize", s.serveAuthorize)
	mux.HandleFunc("GET "+p+"/login", s.serveLogin)
	mux.HandleFunc("POST "+p+"/login", s.serveLogin)
	mux.HandleFunc("GET "+p+"/picker", s.servePicker)
	mux.HandleFunc("POST "+p+"/picker", s.servePicker)
	mux.HandleFunc("GET "+p+"/consent", s.serveConsent)
	mux.HandleFunc("POST "+p+"/consent", s.serveConsent)
	mux.HandleFunc("GET "+p+"/launch", s.serveLaunch)
	mux.HandleFunc("POST "+p+"/launch", s.serveLaunch)
	// Endpoints browser apps call directly allow any origin (CORS), with
	// preflights; the pages above do not.
	for _, ep := range []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"GET", s.fhirPrefix() + "/.well-known/smart-configuration", s.serveDiscovery},
		{"POST", p + "/token", s.serveToken},
		{"POST", p + "/introspect", s.serveIntrospect},
		{"POST", p + "/revoke", s.serveRevoke},
		{"GET", p + "/jwks", s.serveJWKS},
		{"GET", p + "/smart-style.json", s.serveStyle},
	} {
		mux.Handle(ep.method+" "+ep.path, cors(ep.h))
		mux.Handle("OPTIONS "+ep.path, cors(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Methods", ep.method+", OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
		})))
	}
	return mux
}

// cors lets browser apps on any origin call h. No cookies are involved:
// these endpoints authenticate by form, Basic or Bearer credentials.
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h.ServeHTTP(w, r)
	})
}

// WithSMART composes one handler: the auth endpoints and the discovery
// document from s, and everything else from fhir behind s.Protect
// (/fhir/metadata stays open). This is what `ehrgate sim` serves when SMART
// is on. When Options.Patients is nil, the picker and launch page list the
// Patients of fhir (see PatientLister).
func WithSMART(fhir http.Handler, s *Server) http.Handler {
	if s.opts.Patients == nil {
		s.mu.Lock()
		s.lister = PatientLister(fhir, s.fhirPrefix())
		s.mu.Unlock()
	}
	auth := s.Handler()
	mux := http.NewServeMux()
	mux.Handle(s.authPrefix()+"/", auth)
	mux.Handle(s.fhirPrefix()+"/.well-known/smart-configuration", auth)
	mux.Handle("/", corsFHIR(s.Protect(fhir)))
	return mux
}

// corsFHIR lets browser apps on any origin call the FHIR API with a bearer
// token, as SMART apps running in the browser do (fhirclient, for one).
// Preflights are answered here: they carry no Authorization header, so
// Protect would refuse them. No cookies are involved, so "*" is safe.
func corsFHIR(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, If-None-Match, If-Match, Prefer")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Access-Control-Expose-Headers", "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate")
		h.ServeHTTP(w, r)
	})
}
