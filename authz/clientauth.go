package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"ehrgate/clients"
)

// clientAssertionType is the only client_assertion_type accepted (RFC 7523
// section 2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the client-assertion algorithms SMART Backend Services
// names (ES384, RS384).
var assertionAlgs = []jose.SignatureAlgorithm{jose.ES384, jose.RS384}

const (
	maxAssertionLife = 5 * time.Minute // SMART Backend Services: exp at most 5 minutes ahead
	assertionSkew    = time.Minute
)

// authenticateClient is fosite's ClientAuthenticationStrategy: a client
// assertion (private_key_jwt) for confidential apps, the client_id alone
// for public ones. Client secrets are not accepted: no app has one.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if _, _, ok := r.BasicAuth(); ok || form.Get("client_secret") != "" {
		return nil, fosite.ErrInvalidClient.WithHint("Client secrets are not accepted: authenticate with a private_key_jwt client assertion, or as a public client with PKCE.")
	}
	if form.Get("client_assertion") != "" || form.Get("client_assertion_type") != "" {
		c, err := s.verifyAssertion(ctx, form, s.endpoint(PathToken), r.URL.Path)
		if err != nil {
			return nil, err
		}
		return &appClient{c: c, audience: s.o.Audience}, nil
	}
	id := form.Get("client_id")
	if id == "" {
		return nil, fosite.ErrInvalidClient.WithHint("No client_id and no client assertion.")
	}
	c, err := s.o.Clients.Get(ctx, id)
	if errors.Is(err, clients.ErrNotFound) {
		return nil, fosite.ErrInvalidClient.WithHint("Unknown client.")
	}
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	if !c.Public || c.CDS {
		return nil, fosite.ErrInvalidClient.WithHint("This client must authenticate with a private_key_jwt client assertion.")
	}
	return &appClient{c: c, audience: s.o.Audience}, nil
}

// verifyAssertion checks a private_key_jwt client assertion (RFC 7523,
// SMART Backend Services "Authenticating to the Token endpoint"): ES384 or
// RS384, signed by a key of the client's JWKS, iss = sub = a confidential
// client's id (and client_id, when given), aud = the token endpoint (or
// the endpoint called, path), exp at most 5 minutes ahead, a jti never
// seen before (recorded in the store until exp, so replicas share it).
func (s *Server) verifyAssertion(ctx context.Context, form url.Values, tokenURL, path string) (clients.Client, error) {
	bad := func(hint string) error { return fosite.ErrInvalidClient.WithHint(hint) }
	if form.Get("client_assertion_type") != clientAssertionType {
		return clients.Client{}, fosite.ErrInvalidRequest.WithHintf("client_assertion_type must be %s.", clientAssertionType)
	}
	raw := form.Get("client_assertion")
	tok, err := jwt.ParseSigned(raw, assertionAlgs)
	if err != nil {
		return clients.Client{}, bad("The client assertion is not a JWT signed with ES384 or RS384.")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return clients.Client{}, bad("The client assertion's claims cannot be read.")
	}
	id := unverified.Issuer
	if id == "" || (form.Get("client_id") != "" && form.Get("client_id") != id) {
		return clients.Client{}, bad("The client assertion's iss must be the client_id.")
	}
	c, err := s.o.Clients.Get(ctx, id)
	if errors.Is(err, clients.ErrNotFound) {
		return clients.Client{}, bad("Unknown client.")
	}
	if err != nil {
		return clients.Client{}, fosite.ErrServerError.WithWrap(err)
	}
	if c.Public || c.CDS {
		return clients.Client{}, bad("This client has no keys registered to sign client assertions.")
	}
	// A jku header must name the JWKS URL the client registered (SMART
	// Backend Services: it "SHALL match a value that the client supplied
	// to the FHIR server at client registration time"); keys are only
	// ever fetched from the registration.
	if jku, ok := tok.Headers[0].ExtraHeaders["jku"]; ok {
		if u, _ := jku.(string); c.JWKSURL == "" || u != c.JWKSURL {
			return clients.Client{}, bad("The client assertion's jku header is not the client's registered JWKS URL.")
		}
	}
	keys, err := s.clientKeys(ctx, c, tok.Headers[0].KeyID)
	if err != nil {
		return clients.Client{}, err
	}
	var claims jwt.Claims
	verified := false
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != tok.Headers[0].Algorithm {
			continue
		}
		if err := tok.Claims(k.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return clients.Client{}, bad("The client assertion's signature does not verify with the client's keys.")
	}
	now := s.o.Now()
	switch {
	case claims.Issuer != c.ID || claims.Subject != c.ID:
		return clients.Client{}, bad("The client assertion's iss and sub must both be the client_id.")
	case !slices.Contains(claims.Audience, tokenURL) && !slices.Contains(claims.Audience, s.endpoint(path)):
		return clients.Client{}, bad("The client assertion's aud must be the token endpoint URL.")
	case claims.Expiry == nil:
		return clients.Client{}, bad("The client assertion has no exp.")
	case claims.Expiry.Time().After(now.Add(maxAssertionLife + assertionSkew)):
		return clients.Client{}, bad("The client assertion's exp is more than 5 minutes ahead.")
	case claims.ID == "":
		return clients.Client{}, bad("The client assertion has no jti.")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Time: now}, assertionSkew); err != nil {
		return clients.Client{}, bad("The client assertion has expired or is not valid yet.")
	}
	// Replay: the jti, per client, once until the assertion expires.
	exp := claims.Expiry.Time().Add(assertionSkew)
	err = s.o.Docs.UpdateDocument(ctx, kindAssertion, hashName(c.ID+"\x00"+claims.ID), func(old []byte) ([]byte, error) {
		if old != nil {
			var r record
			if json.Unmarshal(old, &r) != nil || now.Before(r.Expires) {
				return nil, errReplay
			}
		}
		return json.Marshal(record{Expires: exp})
	})
	if errors.Is(err, errReplay) {
		return clients.Client{}, bad("The client assertion was used before (jti replay).")
	}
	if err != nil {
		return clients.Client{}, fosite.ErrServerError.WithWrap(err)
	}
	return c, nil
}

var errReplay = errors.New("client assertion replayed")

// clientKeys returns the client's keys that may have signed with kid.
func (s *Server) clientKeys(ctx context.Context, c clients.Client, kid string) ([]jose.JSONWebKey, error) {
	pick := func(set *jose.JSONWebKeySet) []jose.JSONWebKey {
		if kid == "" {
			return set.Keys
		}
		return set.Key(kid)
	}
	if len(c.JWKS) > 0 {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(c.JWKS, &set); err != nil {
			return nil, fosite.ErrInvalidClient.WithHint("The client's registered keys cannot be read.")
		}
		return pick(&set), nil
	}
	set, err := s.jwks.get(ctx, c.JWKSURL, false)
	if err == nil && len(pick(set)) == 0 {
		set, err = s.jwks.get(ctx, c.JWKSURL, true) // a new key at the client: fetch again
	}
	if err != nil {
		s.log.Warn("fetching a client's JWKS failed", "client", c.ID, "error", err)
		return nil, fosite.ErrInvalidClient.WithHint("The client's JWKS URL cannot be read now.")
	}
	return pick(set), nil
}

// jwksCache holds clients' JWKS fetched by URL for jwksTTL; a forced
// fetch (unknown kid) happens at most once per jwksMinRefetch per URL.
type jwksCache struct {
	hc  *http.Client
	now func() time.Time

	mu  sync.Mutex
	got map[string]cachedJWKS
}

type cachedJWKS struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

const (
	jwksTTL        = 5 * time.Minute
	jwksMinRefetch = 30 * time.Second
)

func newJWKSCache(hc *http.Client, now func() time.Time) *jwksCache {
	return &jwksCache{hc: hc, now: now, got: map[string]cachedJWKS{}}
}

func (c *jwksCache) get(ctx context.Context, u string, force bool) (*jose.JSONWebKeySet, error) {
	c.mu.Lock()
	e, ok := c.got[u]
	c.mu.Unlock()
	age := c.now().Sub(e.fetched)
	if ok && (age < jwksMinRefetch || (!force && age < jwksTTL)) {
		return e.set, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: HTTP %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("the JWKS holds a private key")
		}
	}
	c.mu.Lock()
	c.got[u] = cachedJWKS{set: &set, fetched: c.now()}
	c.mu.Unlock()
	return &set, nil
}
