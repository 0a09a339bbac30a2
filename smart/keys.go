package smart

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/secrets"
	"ehrgate/store"
)

// Signing algorithms ehrgate uses for client assertions (SMART Backend
// Services requires support for RS384 and ES384).
const (
	RS384 = string(jose.RS384)
	ES384 = string(jose.ES384)
)

// Key states, as KeyInfo.State reports them.
const (
	KeyPending   = "pending"   // published in the JWKS, not signing yet (grace period)
	KeyActive    = "active"    // the key that signs client assertions now
	KeyPublished = "published" // superseded; still published until RetiredAt
	KeyRetired   = "retired"   // no longer published
)

// KeyOptions configure a KeyManager. The zero value works.
type KeyOptions struct {
	// Grace is how long a new key is published before it signs, so that
	// authorization servers caching ehrgate's JWKS see it first (default 1h;
	// keep it above every server's JWKS cache lifetime).
	Grace time.Duration
	// RetireAfter is how long a superseded key stays published after its
	// successor starts signing (default 24h), for assertions still in flight
	// and servers with stale caches.
	RetireAfter time.Duration
	// AssertionLifetime is a client assertion's exp - iat (default 4m; at
	// most 5m as SMART Backend Services requires).
	AssertionLifetime time.Duration
	Now               func() time.Time
}

// KeyManager owns ehrgate's client-assertion signing keys: it generates
// them (Rotate), keeps the private halves encrypted in a store.TokenStore,
// publishes the public halves (JWKS, JWKSHandler) and signs assertions
// (ClientAssertion) with the newest key whose grace period is over.
//
// Lifecycle of a key: created and published immediately (pending) → signs
// from ActiveAt = created + Grace (active) → superseded when a newer key
// becomes active (published) → dropped from the JWKS at RetiredAt (retired).
// The first key ever created is active at once: there is no older key for
// servers to be using. It is safe for concurrent use.
type KeyManager struct {
	st   store.TokenStore
	ring *secrets.Keyring
	o    KeyOptions
}

// NewKeyManager returns a KeyManager over st whose private keys are sealed
// with ring.
func NewKeyManager(st store.TokenStore, ring *secrets.Keyring, o KeyOptions) *KeyManager {
	if o.Grace <= 0 {
		o.Grace = time.Hour
	}
	if o.RetireAfter <= 0 {
		o.RetireAfter = 24 * time.Hour
	}
	if o.AssertionLifetime <= 0 || o.AssertionLifetime > 5*time.Minute {
		o.AssertionLifetime = 4 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &KeyManager{st: st, ring: ring, o: o}
}

// KeyInfo describes a signing key; it holds no private material.
type KeyInfo struct {
	KID       string
	Alg       string
	State     string
	CreatedAt time.Time
	ActiveAt  time.Time
	RetiredAt time.Time // zero: not scheduled
}

func keyAAD(kid string) []byte { return secrets.AAD(kid, "signing-key") }

// Rotate generates a new key for alg (RS384 or ES384), publishes it at once
// and schedules it to sign after the grace period; keys it will supersede
// are scheduled to retire RetireAfter later.
func (m *KeyManager) Rotate(ctx context.Context, alg string) (KeyInfo, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS384:
		priv, err = rsa.GenerateKey(rand.Reader, 2048) // 112-bit security (NIST SP 800-57), acceptable through 2030
	case ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return KeyInfo{}, fmt.Errorf("rotating signing key: algorithm %q not supported (want RS384 or ES384)", alg)
	}
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: generating: %w", err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	pub.KeyID = kid
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: %w", err)
	}
	privJSON, err := (&jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}).MarshalJSON()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: %w", err)
	}
	sealed, err := m.ring.Seal(privJSON, keyAAD(kid))
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: %w", err)
	}
	existing, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: %w", err)
	}
	now := m.o.Now().UTC()
	k := store.SigningKey{KID: kid, Alg: alg, Public: pubJSON, Private: store.Sealed(sealed), CreatedAt: now, ActiveAt: now.Add(m.o.Grace)}
	live := slices.ContainsFunc(existing, func(e store.SigningKey) bool { return e.RetiredAt.IsZero() || now.Before(e.RetiredAt) })
	if !live {
		k.ActiveAt = now // first key: nothing to overlap with
	}
	// Publish the new key before anything else changes.
	if err := m.st.PutSigningKey(ctx, k); err != nil {
		return KeyInfo{}, fmt.Errorf("rotating signing key: %w", err)
	}
	for _, e := range existing {
		if e.RetiredAt.IsZero() {
			e.RetiredAt = k.ActiveAt.Add(m.o.RetireAfter)
			if err := m.st.PutSigningKey(ctx, e); err != nil {
				return KeyInfo{}, fmt.Errorf("rotating signing key: scheduling retirement of %s: %w", e.KID, err)
			}
		}
	}
	return m.info(k, activeKID(append(existing, k), now), now), nil
}

// activeKID returns the kid that signs at now: the newest key whose
// ActiveAt has passed and which is not retired.
func activeKID(keys []store.SigningKey, now time.Time) string {
	kid := ""
	var at time.Time
	for _, k := range keys {
		if now.Before(k.ActiveAt) || (!k.RetiredAt.IsZero() && !now.Before(k.RetiredAt)) {
			continue
		}
		if kid == "" || k.ActiveAt.After(at) {
			kid, at = k.KID, k.ActiveAt
		}
	}
	return kid
}

func (m *KeyManager) info(k store.SigningKey, active string, now time.Time) KeyInfo {
	st := KeyPublished
	switch {
	case !k.RetiredAt.IsZero() && !now.Before(k.RetiredAt):
		st = KeyRetired
	case k.KID == active:
		st = KeyActive
	case now.Before(k.ActiveAt):
		st = KeyPending
	}
	return KeyInfo{KID: k.KID, Alg: k.Alg, State: st, CreatedAt: k.CreatedAt, ActiveAt: k.ActiveAt, RetiredAt: k.RetiredAt}
}

// List returns every key with its state, oldest first.
func (m *KeyManager) List(ctx context.Context) ([]KeyInfo, error) {
	keys, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	now := m.o.Now()
	active := activeKID(keys, now)
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, m.info(k, active, now))
	}
	return out, nil
}

// JWKS returns the public keys to publish: every key not yet retired
// (pending ones included, which is the point of the grace period).
func (m *KeyManager) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	keys, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("building JWKS: %w", err)
	}
	now := m.o.Now()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range keys {
		if !k.RetiredAt.IsZero() && !now.Before(k.RetiredAt) {
			continue
		}
		var j jose.JSONWebKey
		if err := j.UnmarshalJSON(k.Public); err != nil {
			return jose.JSONWebKeySet{}, fmt.Errorf("building JWKS: key %s: %w", k.KID, err)
		}
		set.Keys = append(set.Keys, j)
	}
	return set, nil
}

// JWKSCacheSeconds is the max-age JWKSHandler sends; it is far below the
// default grace period so servers see a new key before it signs.
const JWKSCacheSeconds = 300

// JWKSHandler serves the JWKS (mount it at /.well-known/jwks.json and
// register that URL with each EHR as the client's JWKS URL).
func (m *KeyManager) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		set, err := m.JWKS(r.Context())
		if err != nil {
			http.Error(w, "JWKS unavailable", http.StatusInternalServerError)
			return
		}
		b, err := json.Marshal(set)
		if err != nil {
			http.Error(w, "JWKS unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", JWKSCacheSeconds))
		w.Write(b)
	})
}

// assertionClaims are a client assertion's claims (RFC 7523 §3, SMART
// Backend Services "Authenticating to the Token endpoint").
type assertionClaims struct {
	jwt.Claims
}

// ClientAssertion returns a signed JWT client assertion for clientID at the
// token endpoint tokenURL: iss = sub = clientID, aud = tokenURL, a unique
// jti, exp at most 5 minutes ahead, kid and alg in the header.
func (m *KeyManager) ClientAssertion(ctx context.Context, clientID, tokenURL string) (string, error) {
	keys, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return "", fmt.Errorf("signing client assertion: %w", err)
	}
	now := m.o.Now()
	kid := activeKID(keys, now)
	if kid == "" {
		return "", fmt.Errorf("signing client assertion: %w (run `ehrgate keys rotate`)", ErrNoSigningKey)
	}
	var k store.SigningKey
	for _, c := range keys {
		if c.KID == kid {
			k = c
		}
	}
	privJSON, err := m.ring.Open(secrets.Sealed(k.Private), keyAAD(kid))
	if err != nil {
		return "", fmt.Errorf("signing client assertion: opening key %s: %w", kid, err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(privJSON); err != nil {
		return "", fmt.Errorf("signing client assertion: decoding key %s: %w", kid, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: jwk},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("signing client assertion: %w", err)
	}
	c := jwt.Claims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.Audience{tokenURL},
		ID:        randomToken(16),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(m.o.AssertionLifetime)),
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing client assertion: %w", err)
	}
	return s, nil
}

// RewrapKeys re-wraps every signing key's data key under the keyring's
// primary KEK (part of `ehrgate keys rotate-kek`). It returns how many keys
// changed.
func (m *KeyManager) RewrapKeys(ctx context.Context) (int, error) {
	keys, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("re-wrapping signing keys: %w", err)
	}
	n := 0
	for _, k := range keys {
		s, err := m.ring.Rewrap(secrets.Sealed(k.Private), keyAAD(k.KID))
		if err != nil {
			return n, fmt.Errorf("re-wrapping signing key %s: %w", k.KID, err)
		}
		if s.KEKID == k.Private.KEKID {
			continue
		}
		k.Private = store.Sealed(s)
		if err := m.st.PutSigningKey(ctx, k); err != nil {
			return n, fmt.Errorf("re-wrapping signing key %s: %w", k.KID, err)
		}
		n++
	}
	return n, nil
}
