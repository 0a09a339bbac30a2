// Package apiauth authenticates the callers of ehrgate's own API from
// their bearer access tokens, in resource-server mode: the tokens are JWTs
// issued by the site's authorization server (issuer, audience and JWKS
// configured), carrying SMART scopes and, for patient-level access, the
// patient in context.
//
// Verify checks, in order: a compact JWS signed with an asymmetric
// algorithm (RS*, PS*, ES*; never "none" or HMAC, which would let anyone
// holding the verification key mint tokens), by a key of the JWKS (fetched
// again once when the kid is unknown, at most once a minute, so a rotation
// at the authorization server is followed and a flood of forged kids is
// not), iss, aud, exp (required), nbf and iat within the clock skew, then
// the scopes (SMART v1 or v2; a token without any resource scope is
// refused) and, with patient/ scopes, the patient claim, and last, when
// Options.Revoked is set, that the token (its jti) was not revoked. Every
// refusal is
// an *Error with an OAuth error code and a reason fit for the
// WWW-Authenticate header and the caller, never the token.
package apiauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/smart"
)

// Options configure a Verifier.
type Options struct {
	// Issuer is the iss the tokens must carry.
	Issuer string
	// Audience must be among the tokens' aud: ehrgate's FHIR base URL as
	// the authorization server knows it.
	Audience string
	// JWKSURL is where the authorization server publishes its keys; or
	// give JWKS inline.
	JWKSURL string
	JWKS    *jose.JSONWebKeySet
	// KeySet, instead of JWKSURL or JWKS, returns the issuer's current
	// keys: for an authorization server in the same process (package
	// authz), whose keys rotate. It is called for every token, so it must
	// be cheap (cached); an error refuses the token.
	KeySet func(ctx context.Context) (*jose.JSONWebKeySet, error)
	// Revoked, when set, reports whether the token with this jti was
	// revoked; a revoked token is refused (invalid_token, 401). A token
	// without a jti is then refused too, and so is every token while
	// Revoked fails (fail closed).
	Revoked func(ctx context.Context, jti string) (bool, error)
	// ScopeClaim names the claim holding the scopes (default "scope"; a
	// space-separated string or an array, as in "scp").
	ScopeClaim string
	// PatientClaim names the claim holding the patient in context
	// (default "patient").
	PatientClaim string
	// ClockSkew tolerated on exp, nbf and iat (default 60 s).
	ClockSkew time.Duration
	// HTTPClient fetches the JWKS (default a client with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Principal is an authenticated caller.
type Principal struct {
	Subject  string // sub: the user, or the client for backend services
	ClientID string // client_id, azp or cid, when the token says
	Scopes   smart.Scopes
	// Patient is the patient in context (patient/ scopes are limited to
	// its compartment); "" without one.
	Patient string
	Expiry  time.Time
	// TokenID is the token's jti ("" without one): what a revocation
	// names.
	TokenID string
}

// Error is a refused token: an OAuth error code (RFC 6750 section 3.1)
// and a reason safe to show the caller.
type Error struct {
	Code   string // invalid_request, invalid_token, insufficient_scope
	Reason string
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// Status is the HTTP status the error answers with.
func (e *Error) Status() int {
	switch e.Code {
	case "invalid_request":
		return http.StatusBadRequest
	case "insufficient_scope":
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// WWWAuthenticate is the challenge header value for e.
func (e *Error) WWWAuthenticate() string {
	return fmt.Sprintf(`Bearer error=%q, error_description=%q`, e.Code, e.Reason)
}

func invalid(format string, args ...any) *Error {
	return &Error{Code: "invalid_token", Reason: fmt.Sprintf(format, args...)}
}

// algorithms are the signature algorithms accepted: asymmetric only.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512}

// minRefetch bounds how often an unknown kid makes the Verifier fetch the
// JWKS again.
const minRefetch = time.Minute

// Verifier checks access tokens. It is safe for concurrent use.
//
// A token whose signature and claims verified is remembered (by its
// SHA-256) for at most cacheFor, so an app's next requests with it skip
// the signature check, a sizeable part of a request's work; its expiry is
// still checked on every use, and so is its revocation (Options.Revoked).
// A key withdrawn from the JWKS stops being trusted within cacheFor, as
// when it is fetched again.
type Verifier struct {
	o Options

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time

	cmu   sync.Mutex
	cache map[[sha256.Size]byte]verified
}

// verified is a token that passed every check but revocation.
type verified struct {
	p      Principal
	jti    string
	expiry time.Time // exp plus the clock skew
	until  time.Time // when the entry is dropped (at most cacheFor after it was made)
}

// cacheFor bounds how long a verified token is remembered; cacheSize how
// many are.
const (
	cacheFor  = time.Minute
	cacheSize = 8192
)

// NewVerifier returns a Verifier; Issuer, Audience and JWKSURL or JWKS are
// required.
func NewVerifier(o Options) (*Verifier, error) {
	var errs []error
	if o.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if o.Audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	given := 0
	for _, set := range []bool{o.JWKSURL != "", o.JWKS != nil, o.KeySet != nil} {
		if set {
			given++
		}
	}
	if given != 1 {
		errs = append(errs, errors.New("give the issuer's keys by URL, inline or as a function, one of them"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("api authentication: %w", errors.Join(errs...))
	}
	if o.ScopeClaim == "" {
		o.ScopeClaim = "scope"
	}
	if o.PatientClaim == "" {
		o.PatientClaim = "patient"
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Verifier{o: o, keys: o.JWKS}, nil
}

// Authenticate verifies the bearer token of r (Authorization: Bearer
// TOKEN; a token in the query string is refused, RFC 6750 section 2.3 is
// not offered because URLs are logged).
func (v *Verifier) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return Principal{}, &Error{Code: "invalid_request", Reason: "no access token: send Authorization: Bearer TOKEN"}
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, &Error{Code: "invalid_request", Reason: "the Authorization header is not a Bearer token"}
	}
	return v.Verify(r.Context(), strings.TrimSpace(token))
}

// Verify checks one access token (see the package comment).
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	key := sha256.Sum256([]byte(token))
	now := v.o.Now()
	v.cmu.Lock()
	e, ok := v.cache[key]
	v.cmu.Unlock()
	if !ok || now.After(e.until) {
		var err error
		if e, err = v.verify(ctx, token, now); err != nil {
			return Principal{}, err
		}
		v.cmu.Lock()
		if v.cache == nil || len(v.cache) >= cacheSize {
			v.cache = map[[sha256.Size]byte]verified{} // crude, and enough: a cold start costs one check per token
		}
		v.cache[key] = e
		v.cmu.Unlock()
	}
	if now.After(e.expiry) {
		return Principal{}, invalid("the token has expired")
	}
	if v.o.Revoked != nil {
		if e.jti == "" {
			return Principal{}, invalid("the token has no jti, so its revocation cannot be checked")
		}
		revoked, err := v.o.Revoked(ctx, e.jti)
		if err != nil {
			return Principal{}, &Error{Code: "invalid_token", Reason: "the token's revocation cannot be checked now; try again"}
		}
		if revoked {
			return Principal{}, invalid("the token was revoked")
		}
	}
	return e.p, nil
}

// verify checks everything but revocation.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (verified, error) {
	tok, err := jwt.ParseSigned(token, algorithms)
	if err != nil {
		return verified{}, invalid("not a JWT signed with an accepted algorithm")
	}
	kid := tok.Headers[0].KeyID
	keys, err := v.keysFor(ctx, kid)
	if err != nil {
		return verified{}, err
	}
	var (
		c     jwt.Claims
		extra map[string]any
	)
	sigOK := false
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if err := tok.Claims(k.Key, &c, &extra); err == nil {
			sigOK = true
			break
		}
	}
	if !sigOK {
		return verified{}, invalid("the signature does not verify with the issuer's keys")
	}
	if c.Expiry == nil {
		return verified{}, invalid("the token has no exp")
	}
	err = c.ValidateWithLeeway(jwt.Expected{Issuer: v.o.Issuer, AnyAudience: jwt.Audience{v.o.Audience}, Time: now}, v.o.ClockSkew)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return verified{}, invalid("the token has expired")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return verified{}, invalid("the token was issued by another authorization server")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return verified{}, invalid("the token is for another audience")
	case err != nil:
		return verified{}, invalid("the token is not valid now")
	}
	p := Principal{Subject: c.Subject, Expiry: c.Expiry.Time()}
	for _, name := range []string{"client_id", "azp", "cid"} {
		if s, ok := extra[name].(string); ok && s != "" {
			p.ClientID = s
			break
		}
	}
	raw, err := scopeString(extra[v.o.ScopeClaim])
	if err != nil {
		return verified{}, invalid("claim %s: %v", v.o.ScopeClaim, err)
	}
	scopes, err := smart.ParseScopes(raw)
	if err != nil {
		return verified{}, invalid("the token's scopes are not SMART scopes")
	}
	p.Scopes = scopes
	patientScoped, resource := false, false
	for _, s := range scopes {
		if s.IsResource() {
			resource = true
			patientScoped = patientScoped || s.Context == smart.ContextPatient
		}
	}
	if !resource {
		return verified{}, &Error{Code: "insufficient_scope", Reason: "the token grants no access to FHIR resources"}
	}
	if s, ok := extra[v.o.PatientClaim].(string); ok {
		p.Patient = s
	}
	if patientScoped && p.Patient == "" {
		return verified{}, invalid("patient scopes without a patient in context (claim %s)", v.o.PatientClaim)
	}
	until := now.Add(cacheFor)
	if exp := p.Expiry.Add(v.o.ClockSkew); exp.Before(until) {
		until = exp
	}
	p.TokenID = c.ID
	return verified{p: p, jti: c.ID, expiry: p.Expiry.Add(v.o.ClockSkew), until: until}, nil
}

// scopeString accepts a space-separated string or an array of strings.
func scopeString(v any) (string, error) {
	switch s := v.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	case []any:
		parts := make([]string, 0, len(s))
		for _, e := range s {
			str, ok := e.(string)
			if !ok {
				return "", errors.New("not a list of strings")
			}
			parts = append(parts, str)
		}
		return strings.Join(parts, " "), nil
	}
	return "", errors.New("neither a string nor a list of strings")
}

// keysFor returns the keys that may have signed a token with kid,
// fetching the JWKS when there is none yet or (at most once a minute) when
// kid is unknown.
func (v *Verifier) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if v.o.KeySet != nil {
		set, err := v.o.KeySet(ctx)
		if err != nil || set == nil {
			return nil, &Error{Code: "invalid_token", Reason: "the issuer's keys cannot be read now; try again"}
		}
		ks := set.Keys
		if kid != "" {
			ks = set.Key(kid)
		}
		if len(ks) == 0 {
			return nil, invalid("no key %q among the issuer's keys", kid)
		}
		return ks, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	pick := func() []jose.JSONWebKey {
		if v.keys == nil {
			return nil
		}
		if kid == "" {
			return v.keys.Keys
		}
		return v.keys.Key(kid)
	}
	if ks := pick(); len(ks) > 0 {
		return ks, nil
	}
	if v.o.JWKSURL == "" || (!v.fetched.IsZero() && v.o.Now().Sub(v.fetched) < minRefetch && v.keys != nil) {
		return nil, invalid("no key %q among the issuer's keys", kid)
	}
	set, err := v.fetch(ctx)
	if err != nil {
		if v.keys == nil {
			return nil, &Error{Code: "invalid_token", Reason: "the issuer's keys cannot be read now; try again"}
		}
		return nil, invalid("no key %q among the issuer's keys", kid)
	}
	v.keys, v.fetched = set, v.o.Now()
	if ks := pick(); len(ks) > 0 {
		return ks, nil
	}
	return nil, invalid("no key %q among the issuer's keys", kid)
}

func (v *Verifier) fetch(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.o.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the issuer's JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the issuer's JWKS: HTTP %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding the issuer's JWKS: %w", err)
	}
	return &set, nil
}
