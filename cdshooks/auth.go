package cdshooks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/clients"
	"ehrgate/internal/es384"
	"ehrgate/store"
)

// ClientLookup finds registered clients; *clients.Registry implements it.
type ClientLookup interface {
	Get(ctx context.Context, id string) (clients.Client, error)
	List(ctx context.Context) ([]clients.Client, error)
}

// Caller is an authenticated CDS client.
type Caller struct {
	Client  clients.Client
	Issuer  string
	Subject string
	Tenant  string
}

// AuthError is a refused call: a reason safe to show the caller (never the
// token) and the failure class for metrics.
type AuthError struct {
	Reason string // for the caller and the log
	Class  string // metrics label: missing, malformed, unknown-client, keys, signature, claims, replay, store
}

func (e *AuthError) Error() string { return "cdshooks: unauthenticated: " + e.Reason }

func authErr(class, format string, args ...any) *AuthError {
	return &AuthError{Class: class, Reason: fmt.Sprintf(format, args...)}
}

// jwtAlgorithms are the JWS algorithms accepted: asymmetric only (CDS
// Hooks requires ES384 and RS384; "none" and HMAC are never accepted).
var jwtAlgorithms = []jose.SignatureAlgorithm{jose.ES384, jose.RS384, jose.ES256, jose.RS256, jose.ES512, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512}

// DocJTI is the store.Documents kind of seen JWT ids (replay protection
// shared by every replica on the store). A document's name is the token's
// expiry (Unix seconds, zero-padded, so names sort by expiry) and a hash of
// iss and jti; its body is empty. PruneJTIs removes expired ones.
const DocJTI = "cds-jti"

// errReplay is what the jti update returns when the document exists.
var errReplay = errors.New("jti seen before")

// authenticator verifies the JWTs CDS clients sign (CDS Hooks 2.0
// "Trusting CDS Clients").
type authenticator struct {
	clients     ClientLookup
	docs        store.Documents
	jkuAllow    []string
	http        *http.Client
	now         func() time.Time
	skew        time.Duration
	maxLifetime time.Duration

	mu        sync.Mutex
	jwks      map[string]cachedKeys // by URL
	lastPrune time.Time
	// known caches registered CDS clients by iss for clientTTL, with their
	// parsed inline JWKS: a call need not read the registry and parse
	// keys (a client removed or changed is seen within clientTTL).
	known map[string]cachedClient
}

// cachedClient is a registered CDS client found by its iss.
type cachedClient struct {
	c       clients.Client
	set     *jose.JSONWebKeySet // the inline JWKS parsed; nil when none or unreadable
	fetched time.Time
}

// clientTTL is how long a client registration found by iss is reused.
const clientTTL = 10 * time.Second

type cachedKeys struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

const (
	jwksTTL        = 5 * time.Minute
	jwksMinRefetch = time.Minute
	maxJWKSBytes   = 1 << 20
	pruneEvery     = 10 * time.Minute
)

// authenticate checks r's bearer JWT: a compact JWS with an asymmetric
// algorithm and a kid, from a registered CDS client (iss), signed by a key
// of that client's JWKS (registered inline or by URL, or at the header's
// jku when that is the registered URL or on the allow-list), with sub,
// aud among audiences, exp in the future but at most maxLifetime ahead,
// iat not in the future, and a jti not seen before (recorded in the store,
// so a replay to another replica is refused too).
func (a *authenticator) authenticate(ctx context.Context, r *http.Request, audiences []string) (Caller, *AuthError) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return Caller{}, authErr("missing", "the call carries no bearer JWT")
	}
	return a.verify(ctx, strings.TrimSpace(raw), audiences)
}

type cdsClaims struct {
	jwt.Claims
	Tenant string `json:"tenant,omitempty"`
}

func (a *authenticator) verify(ctx context.Context, raw string, audiences []string) (Caller, *AuthError) {
	tok, err := jwt.ParseSigned(raw, jwtAlgorithms)
	if err != nil {
		return Caller{}, authErr("malformed", "the bearer token is not a JWT signed with ES384, RS384 or another asymmetric algorithm")
	}
	if len(tok.Headers) != 1 {
		return Caller{}, authErr("malformed", "the JWT must have exactly one signature")
	}
	hdr := tok.Headers[0]
	if hdr.KeyID == "" {
		return Caller{}, authErr("malformed", "the JWT header has no kid")
	}
	var unverified cdsClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer == "" {
		return Caller{}, authErr("malformed", "the JWT has no iss")
	}
	client, err := a.lookup(ctx, unverified.Issuer)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			return Caller{}, ae
		}
		return Caller{}, authErr("store", "the client registry could not be read")
	}
	jku, _ := hdr.ExtraHeaders["jku"].(string)
	keys, aerr := a.keys(ctx, client, jku, hdr.KeyID)
	if aerr != nil {
		return Caller{}, aerr
	}
	var claims cdsClaims
	verified := false
	for _, k := range keys {
		key := k.Key
		// ES384, which CDS Hooks 2.0 requires services to accept, is most
		// of a call's CPU with crypto/ecdsa: package es384 verifies it in
		// less than half the time.
		if pub, ok := key.(*ecdsa.PublicKey); ok && hdr.Algorithm == string(jose.ES384) {
			if v, ok := es384.New(pub); ok {
				key = v
			}
		}
		if err := tok.Claims(key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return Caller{}, authErr("signature", "the JWT's signature does not verify with the client's key %q", hdr.KeyID)
	}
	now := a.now()
	switch {
	case claims.Subject == "":
		return Caller{}, authErr("claims", "the JWT has no sub")
	case claims.ID == "":
		return Caller{}, authErr("claims", "the JWT has no jti")
	case claims.Expiry == nil:
		return Caller{}, authErr("claims", "the JWT has no exp")
	case claims.IssuedAt == nil:
		return Caller{}, authErr("claims", "the JWT has no iat")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: unverified.Issuer, AnyAudience: audiences, Time: now}, a.skew); err != nil {
		switch {
		case errors.Is(err, jwt.ErrInvalidAudience):
			return Caller{}, authErr("claims", "the JWT's aud is not this service's URL")
		case errors.Is(err, jwt.ErrExpired):
			return Caller{}, authErr("claims", "the JWT has expired")
		case errors.Is(err, jwt.ErrIssuedInTheFuture):
			return Caller{}, authErr("claims", "the JWT's iat is in the future")
		case errors.Is(err, jwt.ErrNotValidYet):
			return Caller{}, authErr("claims", "the JWT is not valid yet (nbf)")
		}
		return Caller{}, authErr("claims", "the JWT's claims are not valid")
	}
	exp := claims.Expiry.Time()
	if exp.After(now.Add(a.maxLifetime + a.skew)) {
		return Caller{}, authErr("claims", "the JWT's exp is more than %s ahead", a.maxLifetime)
	}
	if err := a.useJTI(ctx, unverified.Issuer, claims.ID, exp); err != nil {
		if errors.Is(err, errReplay) {
			return Caller{}, authErr("replay", "the JWT's jti was used before")
		}
		return Caller{}, authErr("store", "the JWT could not be checked for replay")
	}
	return Caller{Client: client, Issuer: unverified.Issuer, Subject: claims.Subject, Tenant: claims.Tenant}, nil
}

// lookup finds the CDS client whose iss is iss: the client with that id
// (and no other Issuer), else the client whose Issuer is iss.
func (a *authenticator) lookup(ctx context.Context, iss string) (clients.Client, error) {
	now := a.now()
	a.mu.Lock()
	cc, ok := a.known[iss]
	a.mu.Unlock()
	if ok && now.Sub(cc.fetched) < clientTTL && !now.Before(cc.fetched) {
		return cc.c, nil
	}
	c, err := a.lookupStored(ctx, iss)
	if err != nil {
		return c, err
	}
	cc = cachedClient{c: c, fetched: now}
	if len(c.JWKS) > 0 {
		var set jose.JSONWebKeySet
		if json.Unmarshal(c.JWKS, &set) == nil {
			cc.set = &set
		}
	}
	a.mu.Lock()
	if a.known == nil || len(a.known) > 10_000 {
		a.known = map[string]cachedClient{}
	}
	a.known[iss] = cc
	a.mu.Unlock()
	return c, nil
}

// inlineKeys returns the parsed inline JWKS of the client cached for iss,
// if it is still the registration c.
func (a *authenticator) inlineKeys(c clients.Client) *jose.JSONWebKeySet {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cc := range a.known {
		if cc.c.ID == c.ID && bytes.Equal(cc.c.JWKS, c.JWKS) {
			return cc.set
		}
	}
	return nil
}

// lookupStored finds the CDS client with iss in the registry: by id, else
// by registered issuer.
func (a *authenticator) lookupStored(ctx context.Context, iss string) (clients.Client, error) {
	c, err := a.clients.Get(ctx, iss)
	if err == nil && c.CDS && (c.Issuer == "" || c.Issuer == iss) {
		return c, nil
	}
	if err != nil && !errors.Is(err, clients.ErrNotFound) {
		return clients.Client{}, err
	}
	all, err := a.clients.List(ctx)
	if err != nil {
		return clients.Client{}, err
	}
	for _, c := range all {
		if c.CDS && c.Issuer == iss {
			return c, nil
		}
	}
	return clients.Client{}, authErr("unknown-client", "no CDS client is registered with this iss")
}

// keys returns the client's keys with kid: from the registered inline
// JWKS, or fetched from the registered JWKS URL or the header's jku (only
// the registered URL or one on the allow-list).
func (a *authenticator) keys(ctx context.Context, c clients.Client, jku, kid string) ([]jose.JSONWebKey, *AuthError) {
	if jku == "" && len(c.JWKS) > 0 {
		set := a.inlineKeys(c)
		if set == nil {
			set = new(jose.JSONWebKeySet)
			if err := json.Unmarshal(c.JWKS, set); err != nil {
				return nil, authErr("keys", "the client's registered JWKS cannot be read")
			}
		}
		if ks := set.Key(kid); len(ks) > 0 {
			return ks, nil
		}
		return nil, authErr("keys", "the client's registered JWKS has no key %q", kid)
	}
	u := c.JWKSURL
	if jku != "" {
		if jku != c.JWKSURL && !a.jkuAllowed(jku) {
			return nil, authErr("keys", "the JWT's jku is neither the client's registered JWKS URL nor on the allow-list")
		}
		u = jku
	}
	if u == "" {
		return nil, authErr("keys", "the client has no keys registered")
	}
	set, err := a.fetchJWKS(ctx, u, kid)
	if err != nil {
		return nil, authErr("keys", "the client's JWKS could not be fetched")
	}
	if ks := set.Key(kid); len(ks) > 0 {
		return ks, nil
	}
	return nil, authErr("keys", "the client's JWKS has no key %q", kid)
}

func (a *authenticator) jkuAllowed(jku string) bool {
	for _, p := range a.jkuAllow {
		if jku == p {
			return true
		}
	}
	return false
}

// fetchJWKS returns the JWKS at u, cached for jwksTTL; an unknown kid
// fetches it again, at most once every jwksMinRefetch.
func (a *authenticator) fetchJWKS(ctx context.Context, u, kid string) (*jose.JSONWebKeySet, error) {
	a.mu.Lock()
	c, ok := a.jwks[u]
	a.mu.Unlock()
	now := a.now()
	if ok && now.Sub(c.fetched) < jwksTTL && (len(c.set.Key(kid)) > 0 || now.Sub(c.fetched) < jwksMinRefetch) {
		return c.set, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, err
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("the JWKS holds a private key")
		}
	}
	a.mu.Lock()
	a.jwks[u] = cachedKeys{set: &set, fetched: now}
	a.mu.Unlock()
	return &set, nil
}

// jtiName is the document name of a seen jti.
func jtiName(iss, jti string, exp time.Time) string {
	sum := sha256.Sum256([]byte(iss + "\x00" + jti))
	return fmt.Sprintf("%012d.%s", exp.Unix(), hex.EncodeToString(sum[:16]))
}

// useJTI records (iss, jti) until exp, failing with errReplay when it was
// recorded before.
func (a *authenticator) useJTI(ctx context.Context, iss, jti string, exp time.Time) error {
	err := a.docs.UpdateDocument(ctx, DocJTI, jtiName(iss, jti, exp), func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, errReplay
		}
		return []byte("{}"), nil
	})
	if err != nil {
		return err
	}
	a.maybePrune(ctx)
	return nil
}

func (a *authenticator) maybePrune(ctx context.Context) {
	a.mu.Lock()
	due := a.now().Sub(a.lastPrune) >= pruneEvery
	if due {
		a.lastPrune = a.now()
	}
	a.mu.Unlock()
	if due {
		_, _ = PruneJTIs(ctx, a.docs, a.now().Add(-a.skew))
	}
}

// PruneJTIs removes the seen-jti records of tokens that expired before
// before (their replays are refused by exp anyway) and reports how many.
func PruneJTIs(ctx context.Context, docs store.Documents, before time.Time) (int, error) {
	names, err := docs.ListDocuments(ctx, DocJTI)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		secs, _, ok := strings.Cut(name, ".")
		exp, err := strconv.ParseInt(secs, 10, 64)
		if !ok || err != nil {
			continue
		}
		if exp >= before.Unix() {
			break // names sort by expiry
		}
		if removed, err := docs.DeleteDocument(ctx, DocJTI, name); err != nil {
			return n, err
		} else if removed {
			n++
		}
	}
	return n, nil
}
