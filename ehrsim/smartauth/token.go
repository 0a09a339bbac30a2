package smartauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"ehrgate/fhir"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

// AssertionType is the client_assertion_type of private_key_jwt (RFC 7523
// section 2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLifetime is how far in the future a client assertion's exp
// may be (SMART Backend Services: "no more than five minutes").
const maxAssertionLifetime = 5 * time.Minute

// maxFormBytes bounds the request bodies of the token, introspection and
// revocation endpoints.
const maxFormBytes = 64 << 10

// tokenResponse is the token endpoint's success response (RFC 6749 section
// 5.1 plus SMART's launch context).
type tokenResponse struct {
	AccessToken       string `json:"access_token"`
	TokenType         string `json:"token_type"`
	ExpiresIn         int64  `json:"expires_in"`
	Scope             string `json:"scope"`
	RefreshToken      string `json:"refresh_token,omitempty"`
	IDToken           string `json:"id_token,omitempty"`
	Patient           string `json:"patient,omitempty"`
	Encounter         string `json:"encounter,omitempty"`
	NeedPatientBanner *bool  `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string `json:"smart_style_url,omitempty"`
	FhirUser          string `json:"fhirUser,omitempty"`
}

// parseForm reads an application/x-www-form-urlencoded POST body, refusing
// repeated parameters (RFC 6749 section 3.2).
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, *Error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, oauthErr(ErrInvalidRequest, "the request body is not a form")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, oauthErr(ErrInvalidRequest, "parameter %s was repeated", k)
		}
	}
	return r.PostForm, nil
}

// serveToken is the token endpoint.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	form, e := parseForm(w, r)
	if e == nil {
		var resp *tokenResponse
		resp, e = s.token(r.Context(), r, form)
		if e == nil {
			writeJSON(w, http.StatusOK, resp)
			return
		}
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: token refused",
		slog.String("grant_type", form.Get("grant_type")), slog.String("error", e.Code))
	writeError(w, e)
}

// token runs one token request.
func (s *Server) token(ctx context.Context, r *http.Request, form url.Values) (*tokenResponse, *Error) {
	gt := form.Get("grant_type")
	switch gt {
	case "authorization_code", "refresh_token", "client_credentials":
	case "":
		return nil, oauthErr(ErrInvalidRequest, "grant_type is required")
	default:
		return nil, oauthErr(ErrUnsupportedGrantType, "grant_type %q is not supported", gt)
	}
	if gt == "client_credentials" && strings.TrimSpace(form.Get("scope")) != "" {
		// Checked before the client authenticates, so that a scope no
		// client could be granted does not spend the client assertion
		// (its jti may be sent again with a scope that can be).
		if e := checkSystemScopes(form.Get("scope")); e != nil {
			return nil, e
		}
	}
	c, authenticated, e := s.authenticateClient(ctx, r, form)
	if e != nil {
		return nil, e
	}
	now := s.now()
	var resp *tokenResponse
	switch gt {
	case "authorization_code":
		resp, e = s.exchangeCode(c, form, now)
	case "refresh_token":
		resp, e = s.refresh(c, form, now)
	case "client_credentials":
		if !authenticated {
			return nil, oauthErr(ErrUnauthorizedClient, "client_credentials needs a confidential client")
		}
		resp, e = s.clientCredentials(c, form, now)
	}
	if e == nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "smartauth: token issued",
			slog.String("client_id", c.ID), slog.String("grant_type", gt))
	}
	return resp, e
}

// authenticateClient identifies the client of a token, introspection or
// revocation request (RFC 6749 section 2.3): HTTP Basic, client_secret in
// the form, a private_key_jwt assertion, or a bare client_id for public
// clients (authenticated false).
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (*Client, bool, *Error) {
	var (
		id, secret string
		basic      bool
	)
	if u, p, ok := r.BasicAuth(); ok {
		var err1, err2 error
		id, err1 = url.QueryUnescape(u)
		secret, err2 = url.QueryUnescape(p)
		if err1 != nil || err2 != nil {
			return nil, false, &Error{Code: ErrInvalidClient, Description: "malformed HTTP Basic credentials", Status: http.StatusUnauthorized, basic: true}
		}
		basic = true
		if form.Get("client_secret") != "" || form.Get("client_assertion") != "" {
			return nil, false, oauthErr(ErrInvalidRequest, "use one client authentication method only")
		}
	}
	invalid := func(format string, args ...any) *Error {
		e := oauthErr(ErrInvalidClient, format, args...)
		e.basic = basic
		return e
	}
	if at := form.Get("client_assertion_type"); at != "" || form.Get("client_assertion") != "" {
		if basic || form.Get("client_secret") != "" {
			return nil, false, oauthErr(ErrInvalidRequest, "use one client authentication method only")
		}
		if at != AssertionType {
			return nil, false, invalid("client_assertion_type must be %s", AssertionType)
		}
		c, e := s.verifyAssertion(ctx, form.Get("client_assertion"), form.Get("client_id"))
		return c, e == nil, e
	}
	if !basic {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, false, invalid("client authentication is required")
	}
	if form.Get("client_id") != "" && form.Get("client_id") != id {
		return nil, false, invalid("client_id does not match the authenticated client")
	}
	c := s.client(id)
	if c == nil || s.fail(id, func(f Failures) bool { return f.InvalidClientID }) {
		return nil, false, invalid("unknown client")
	}
	switch c.TokenEndpointAuth {
	case AuthNone:
		if secret != "" {
			return nil, false, invalid("a public client has no secret")
		}
		return c, false, nil
	case AuthPrivateKeyJWT:
		return nil, false, invalid("this client must authenticate with a private_key_jwt client assertion")
	}
	if secret == "" {
		return nil, false, invalid("client authentication is required")
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 ||
		s.fail(id, func(f Failures) bool { return f.InvalidClientSecret }) {
		return nil, false, invalid("client authentication failed")
	}
	return c, true, nil
}

// assertionClaims are the claims of a client assertion.
type assertionClaims struct {
	jwt.Claims
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523,
// SMART Backend Services): RS384 or ES384 signature by a key of the
// client's JWKS, iss = sub = client_id, aud = the token endpoint, exp
// present and at most five minutes ahead, jti not seen before, times
// within Leeway.
func (s *Server) verifyAssertion(ctx context.Context, assertion, formClientID string) (*Client, *Error) {
	invalid := func(format string, args ...any) *Error { return oauthErr(ErrInvalidClient, format, args...) }
	if assertion == "" {
		return nil, invalid("client_assertion is required")
	}
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS384, jose.ES384})
	if err != nil {
		return nil, invalid("client_assertion must be a JWT signed with RS384 or ES384")
	}
	jku := ""
	if len(tok.Headers) > 0 {
		jku, _ = tok.Headers[0].ExtraHeaders["jku"].(string)
	}
	var unverified assertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, invalid("client_assertion claims cannot be read")
	}
	id := unverified.Issuer
	if id == "" || unverified.Subject != id {
		return nil, invalid("client_assertion iss and sub must both be the client_id")
	}
	if formClientID != "" && formClientID != id {
		return nil, invalid("client_id does not match the client_assertion")
	}
	c := s.client(id)
	if c == nil || s.fail(id, func(f Failures) bool { return f.InvalidClientID }) {
		return nil, invalid("unknown client")
	}
	if c.TokenEndpointAuth != AuthPrivateKeyJWT {
		return nil, invalid("this client is not registered for private_key_jwt")
	}
	// A jku header must name the JWKS URL the client registered (SMART
	// Backend Services: "the jku header ... SHALL match a value that the
	// client supplied at registration"); keys are only ever fetched from
	// there.
	if jku != "" && (c.JWKSURL == "" || normalizeURL(jku) != normalizeURL(c.JWKSURL)) {
		return nil, invalid("client_assertion jku is not the client's registered JWKS URL")
	}
	var claims assertionClaims
	if err := s.checkSignature(ctx, c, tok, &claims); err != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "smartauth: client assertion signature", slog.String("client_id", id), slog.String("err", err.Error()))
		return nil, invalid("client_assertion signature does not verify with the client's registered keys")
	}
	if s.fail(id, func(f Failures) bool { return f.InvalidClientSecret }) {
		return nil, invalid("client authentication failed")
	}
	now, leeway := s.now(), s.opts.Leeway
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return normalizeURL(a) == normalizeURL(s.tokenURL()) }) {
		return nil, invalid("client_assertion aud must be the token endpoint %s", s.tokenURL())
	}
	if claims.Expiry == nil {
		return nil, invalid("client_assertion exp is required")
	}
	exp := claims.Expiry.Time()
	switch {
	case !exp.After(now.Add(-leeway)):
		return nil, invalid("client_assertion has expired")
	case exp.After(now.Add(maxAssertionLifetime + leeway)):
		return nil, invalid("client_assertion exp is more than five minutes in the future")
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(leeway)):
		return nil, invalid("client_assertion is not valid yet (nbf)")
	case claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(leeway)):
		return nil, invalid("client_assertion was issued in the future (iat)")
	case claims.ID == "":
		return nil, invalid("client_assertion jti is required")
	}
	if s.fail(id, func(f Failures) bool { return f.InvalidJTI }) || !s.st.useJTI(id, claims.ID, exp.Add(leeway), now) {
		return nil, invalid("client_assertion jti was already used")
	}
	return c, nil
}

// checkSignature verifies tok with the client's keys: the key named by the
// kid header, or each key when there is no kid. A JWKS URL is refetched
// once when no key matches.
func (s *Server) checkSignature(ctx context.Context, c *Client, tok *jwt.JSONWebToken, dest any) error {
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	try := func(set *jose.JSONWebKeySet) error {
		var keys []jose.JSONWebKey
		if kid != "" {
			keys = set.Key(kid)
		} else {
			keys = set.Keys
		}
		if len(keys) == 0 {
			return errNoKey
		}
		var err error
		for _, k := range keys {
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			if err = tok.Claims(k.Public(), dest); err == nil {
				return nil
			}
		}
		if err == nil {
			err = errNoKey
		}
		return err
	}
	if len(c.JWKS) > 0 {
		set, err := parseJWKS(c.JWKS)
		if err != nil {
			return err
		}
		return try(set)
	}
	set, err := s.jwks.get(ctx, c.JWKSURL, false)
	if err != nil {
		return err
	}
	if err = try(set); errors.Is(err, errNoKey) {
		if set, err = s.jwks.get(ctx, c.JWKSURL, true); err != nil {
			return err
		}
		err = try(set)
	}
	return err
}

// errNoKey: no key of the set matches the assertion.
var errNoKey = errors.New("no matching key")

// parseJWKS decodes a JWK Set.
func parseJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("decoding JWKS: no keys")
	}
	return &set, nil
}

// jwksCache fetches client key sets over HTTP and keeps them for a while.
type jwksCache struct {
	client *http.Client
	ttl    time.Duration
	mu     sync.Mutex
	sets   map[string]cachedJWKS
}

type cachedJWKS struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

func newJWKSCache(c *http.Client, ttl time.Duration) *jwksCache {
	return &jwksCache{client: c, ttl: ttl, sets: map[string]cachedJWKS{}}
}

// jwksRefetchInterval bounds forced refetches of one URL.
const jwksRefetchInterval = 5 * time.Second

// get returns the key set at u, from the cache when fresh (force: unless
// fetched within jwksRefetchInterval). Cache ages use the real clock.
func (j *jwksCache) get(ctx context.Context, u string, force bool) (*jose.JSONWebKeySet, error) {
	j.mu.Lock()
	c, ok := j.sets[u]
	j.mu.Unlock()
	age := time.Since(c.fetched)
	if ok && (age < jwksRefetchInterval || (!force && age < j.ttl)) {
		return c.set, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	set, err := parseJWKS(body)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	j.sets[u] = cachedJWKS{set: set, fetched: time.Now()}
	j.mu.Unlock()
	return set, nil
}

// exchangeCode runs the authorization_code grant with PKCE (RFC 7636
// section 4.6).
func (s *Server) exchangeCode(c *Client, form url.Values, now time.Time) (*tokenResponse, *Error) {
	code := form.Get("code")
	if code == "" {
		return nil, oauthErr(ErrInvalidRequest, "code is required")
	}
	ci, e := s.st.useCode(code, now)
	if e != nil {
		return nil, e
	}
	if ci.clientID != c.ID {
		return nil, oauthErr(ErrInvalidGrant, "authorization code was issued to another client")
	}
	if (ci.redirectGiven && form.Get("redirect_uri") != ci.redirectURI) ||
		s.fail(c.ID, func(f Failures) bool { return f.InvalidRedirectURI }) {
		return nil, oauthErr(ErrInvalidGrant, "redirect_uri does not match the authorization request")
	}
	v := form.Get("code_verifier")
	if v == "" {
		return nil, oauthErr(ErrInvalidGrant, "code_verifier is required (PKCE)")
	}
	sum := sha256.Sum256([]byte(v))
	if len(v) < 43 || len(v) > 128 || !validVerifierChars(v) ||
		subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(ci.challenge)) != 1 {
		return nil, oauthErr(ErrInvalidGrant, "code_verifier does not match the code_challenge")
	}
	t := tokenInfo{
		clientID: c.ID, scopes: ci.scopes, patient: ci.patient, encounter: ci.encounter,
		user: ci.user, fhirUser: ci.fhirUser, grant: ci.grant, banner: !ci.ehrLaunch,
	}
	resp, err := s.issueTokens(t, ci.nonce, now, true)
	if err != nil {
		return nil, oauthErr(ErrServerError, "could not sign the id_token")
	}
	return resp, nil
}

// refresh runs the refresh_token grant (RFC 6749 section 6).
func (s *Server) refresh(c *Client, form url.Values, now time.Time) (*tokenResponse, *Error) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, oauthErr(ErrInvalidRequest, "refresh_token is required")
	}
	switch {
	case s.fail(c.ID, func(f Failures) bool { return f.InvalidRefreshToken }):
		return nil, oauthErr(ErrInvalidGrant, "refresh token is not valid")
	case s.fail(c.ID, func(f Failures) bool { return f.ExpiredRefreshToken }):
		return nil, oauthErr(ErrInvalidGrant, "refresh token expired")
	}
	old, e := s.st.useRefresh(rt, c.ID, now, s.opts.RotateRefreshTokens)
	if e != nil {
		return nil, e
	}
	t := old
	if req := strings.Fields(form.Get("scope")); len(req) > 0 {
		if s.fail(c.ID, func(f Failures) bool { return f.InvalidScope }) {
			return nil, oauthErr(ErrInvalidScope, "the requested scope may not be granted")
		}
		for _, sc := range req {
			if !slices.Contains(old.scopes, sc) {
				return nil, oauthErr(ErrInvalidScope, "scope %q was not granted originally", sc)
			}
		}
		t.scopes = req
	}
	resp, err := s.issueTokens(t, "", now, s.opts.RotateRefreshTokens)
	if err != nil {
		return nil, oauthErr(ErrServerError, "could not sign the id_token")
	}
	return resp, nil
}

// checkSystemScopes refuses a client_credentials scope that no client may
// be granted: empty, naming a resource type FHIR R4 does not have, or with
// no system/ scope that reads (backend services read; write access is
// never granted, see readOnly).
func checkSystemScopes(raw string) *Error {
	requested := strings.Fields(raw)
	if len(requested) == 0 {
		return oauthErr(ErrInvalidScope, "scope is required")
	}
	reads := false
	for _, r := range requested {
		sc, err := parseScope(r)
		if err != nil || sc.context != "system" {
			continue
		}
		if sc.typ != "*" && !fhir.IsResourceType(sc.typ) {
			return oauthErr(ErrInvalidScope, "scope %q names a resource type FHIR R4 does not have", r)
		}
		if _, ok := readOnly(sc); ok {
			reads = true
		}
	}
	if !reads {
		return oauthErr(ErrInvalidScope, "no requested scope is a system/ scope with read access (client_credentials grants system/ read scopes only)")
	}
	return nil
}

// readOnly returns the read part of a resource scope, as the scope string
// a client would have asked for: system/*.* becomes system/*.read,
// system/Patient.cruds system/Patient.rs; a scope without read access
// (.write, .cud) has none.
func readOnly(sc scope) (string, bool) {
	perms := sc.perms & (permR | permS)
	if perms == 0 {
		return "", false
	}
	if perms == sc.perms {
		return sc.raw, true
	}
	base := sc.context + "/" + sc.typ + "."
	if !sc.v2 {
		return base + "read", true
	}
	letters := ""
	if perms&permR != 0 {
		letters += "r"
	}
	if perms&permS != 0 {
		letters += "s"
	}
	out := base + letters
	if sc.query != nil {
		out += "?" + sc.query.Encode()
	}
	return out, true
}

// clientCredentials runs the client_credentials grant (SMART Backend
// Services): system/ scopes only, read access only (write permissions
// asked for are dropped from the grant).
func (s *Server) clientCredentials(c *Client, form url.Values, now time.Time) (*tokenResponse, *Error) {
	var requested []string
	for _, r := range strings.Fields(form.Get("scope")) {
		if sc, err := parseScope(r); err == nil && sc.context == "system" {
			if ro, ok := readOnly(sc); ok {
				requested = append(requested, ro)
			}
		}
	}
	granted := slices.DeleteFunc(grantScopes(c, requested), func(sc scope) bool { return sc.context != "system" })
	if len(granted) == 0 || s.fail(c.ID, func(f Failures) bool { return f.InvalidScope }) {
		return nil, oauthErr(ErrInvalidScope, "none of the requested scopes may be granted (client_credentials takes system/ scopes)")
	}
	t := tokenInfo{clientID: c.ID, scopes: scopeStrings(granted), grant: randomToken()}
	resp, err := s.issueTokens(t, "", now, false)
	if err != nil {
		return nil, oauthErr(ErrServerError, "could not issue the token")
	}
	return resp, nil
}

// issueTokens issues an access token for t and, when withRefresh and
// offline_access or online_access was granted, a refresh token; an
// id_token when openid was granted to a user.
func (s *Server) issueTokens(t tokenInfo, nonce string, now time.Time, withRefresh bool) (*tokenResponse, error) {
	t.issued = now
	t.kind = kindAccess
	t.expires = now.Add(s.opts.AccessTokenTTL)
	t.revoked = false
	access := s.st.issue(t)
	resp := &tokenResponse{
		AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int64(s.opts.AccessTokenTTL / time.Second),
		Scope:     strings.Join(t.scopes, " "),
		Patient:   t.patient, Encounter: t.encounter,
	}
	if t.user != "" {
		banner := t.banner && t.patient != ""
		resp.NeedPatientBanner = &banner
		resp.SmartStyleURL = s.styleURL()
	}
	if t.fhirUser != "" && slices.Contains(t.scopes, "fhirUser") {
		resp.FhirUser = s.opts.Issuer + "/" + t.fhirUser
	}
	if withRefresh && (slices.Contains(t.scopes, "offline_access") || slices.Contains(t.scopes, "online_access")) {
		rt := t
		rt.kind = kindRefresh
		rt.expires = now.Add(s.opts.RefreshTokenTTL)
		resp.RefreshToken = s.st.issue(rt)
	}
	if t.user != "" && slices.Contains(t.scopes, "openid") {
		idt, err := s.idToken(t, nonce, now)
		if err != nil {
			return nil, err
		}
		resp.IDToken = idt
	}
	return resp, nil
}

// idTokenClaims are the claims of an id_token.
type idTokenClaims struct {
	jwt.Claims
	Nonce    string `json:"nonce,omitempty"`
	FhirUser string `json:"fhirUser,omitempty"`
}

// signingAlg is the id_token algorithm for the signing key.
func (s *Server) signingAlg() jose.SignatureAlgorithm {
	if _, ok := s.signer.Public().(*ecdsa.PublicKey); ok {
		return jose.ES256
	}
	return jose.RS256
}

// idToken signs an OpenID Connect id_token for the user of t.
func (s *Server) idToken(t tokenInfo, nonce string, now time.Time) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{
		Algorithm: s.signingAlg(),
		Key:       jose.JSONWebKey{Key: cryptosigner.Opaque(s.signer), KeyID: s.kid},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("creating id_token signer: %w", err)
	}
	claims := idTokenClaims{
		Claims: jwt.Claims{
			Issuer: s.opts.Issuer, Subject: t.user, Audience: jwt.Audience{t.clientID},
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(s.opts.AccessTokenTTL)),
		},
		Nonce: nonce,
	}
	if t.fhirUser != "" && slices.Contains(t.scopes, "fhirUser") {
		claims.FhirUser = s.opts.Issuer + "/" + t.fhirUser
	}
	out, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing id_token: %w", err)
	}
	return out, nil
}
