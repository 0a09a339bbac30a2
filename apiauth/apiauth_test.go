package apiauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/apiauth"
)

const (
	issuer   = "https://auth.hospital.example.org"
	audience = "https://ehrgate.hospital.example.org/fhir"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

type keypair struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newKey(t *testing.T, kid string) keypair {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keypair{k, kid}
}

func (k keypair) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}
}

// sign makes a token with the standard claims (overridable) and extra.
func sign(t *testing.T, k keypair, claims jwt.Claims, extra map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func good() jwt.Claims {
	return jwt.Claims{Issuer: issuer, Audience: jwt.Audience{audience}, Subject: "user-7",
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute))}
}

// jwksServer serves the keys (changeable) and counts fetches.
type jwksServer struct {
	*httptest.Server
	keys    atomic.Pointer[jose.JSONWebKeySet]
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...keypair) *jwksServer {
	s := &jwksServer{}
	s.set(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		json.NewEncoder(w).Encode(s.keys.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...keypair) {
	set := &jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public())
	}
	s.keys.Store(set)
}

func verifier(t *testing.T, url string, clock *time.Time) *apiauth.Verifier {
	t.Helper()
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience, JWKSURL: url,
		Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	k := newKey(t, "k1")
	other := newKey(t, "k1") // same kid, another key: a forgery
	srv := newJWKSServer(t, k)
	clock := now
	v := verifier(t, srv.URL, &clock)
	patient := map[string]any{"scope": "launch/patient patient/Observation.rs openid", "patient": "p-42", "client_id": "growth-chart"}
	system := map[string]any{"scope": []any{"system/Patient.rs"}, "azp": "analytics"}
	with := func(f func(c *jwt.Claims)) jwt.Claims { c := good(); f(&c); return c }
	tests := []struct {
		name    string
		token   string
		code    string // "" = accepted
		patient string
	}{
		{"patient-level token", sign(t, k, good(), patient), "", "p-42"},
		{"wrong issuer", sign(t, k, with(func(c *jwt.Claims) { c.Issuer = "https://evil.example" }), patient), "invalid_token", ""},
		{"wrong audience", sign(t, k, with(func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://other.example/fhir"} }), patient), "invalid_token", ""},
		{"expired", sign(t, k, with(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute)) }), patient), "invalid_token", ""},
		{"no exp", sign(t, k, with(func(c *jwt.Claims) { c.Expiry = nil }), patient), "invalid_token", ""},
		{"not yet valid", sign(t, k, with(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Minute)) }), patient), "invalid_token", ""},
		{"forged signature", sign(t, other, good(), patient), "invalid_token", ""},
		{"no resource scope", sign(t, k, good(), map[string]any{"scope": "openid fhirUser"}), "insufficient_scope", ""},
		{"patient scope without patient", sign(t, k, good(), map[string]any{"scope": "patient/Observation.rs"}), "invalid_token", ""},
		{"bad scope claim", sign(t, k, good(), map[string]any{"scope": 7}), "invalid_token", ""},
		{"not a JWT", "not-a-token", "invalid_token", ""},
		{"unsigned (alg none)", unsigned(t), "invalid_token", ""},
		{"HMAC with the public key", hmacToken(t, k), "invalid_token", ""},
	}
	for _, tc := range tests {
		p, err := v.Verify(context.Background(), tc.token)
		var ae *apiauth.Error
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: Verify = %v, want accepted", tc.name, err)
		case tc.code == "" && (p.Patient != tc.patient || p.Subject != "user-7" || p.ClientID != "growth-chart" || len(p.Scopes) != 3):
			t.Errorf("%s: principal %+v", tc.name, p)
		case tc.code != "" && (!errors.As(err, &ae) || ae.Code != tc.code):
			t.Errorf("%s: Verify = %v, want %s", tc.name, err, tc.code)
		case tc.code != "" && strings.Contains(err.Error(), tc.token):
			t.Errorf("%s: the error repeats the token", tc.name)
		}
	}
	p, err := v.Verify(context.Background(), sign(t, k, good(), system))
	if err != nil || p.ClientID != "analytics" || p.Patient != "" || len(p.Scopes) != 1 {
		t.Errorf("system token (scope array, azp) = %+v, %v", p, err)
	}
	// Authorization servers that name the claim otherwise (Okta: scp).
	okta, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience, JWKSURL: srv.URL,
		ScopeClaim: "scp", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := okta.Verify(context.Background(), sign(t, k, good(), map[string]any{"scp": []any{"system/Patient.rs"}, "cid": "etl"})); err != nil || p.ClientID != "etl" {
		t.Errorf("scp claim = %+v, %v", p, err)
	}
}

func unsigned(t *testing.T) string {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	c := good()
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(c) + "."
}

func hmacToken(t *testing.T, k keypair) string {
	t.Helper()
	pub, _ := json.Marshal(k.public())
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(good()).Claims(map[string]any{"scope": "system/*.rs"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A key rotated at the authorization server is picked up (one JWKS fetch
// for the new kid), and unknown kids do not make the verifier fetch the
// JWKS more than once a minute.
func TestKeyRotationAndRefetchLimit(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	srv := newJWKSServer(t, k1)
	clock := now
	v := verifier(t, srv.URL, &clock)
	claims := map[string]any{"scope": "system/*.rs"}
	if _, err := v.Verify(context.Background(), sign(t, k1, good(), claims)); err != nil {
		t.Fatal(err)
	}
	srv.set(k1, k2)
	clock = now.Add(2 * time.Minute)
	c := good()
	c.Expiry = jwt.NewNumericDate(clock.Add(5 * time.Minute))
	if _, err := v.Verify(context.Background(), sign(t, k2, c, claims)); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	before := srv.fetches.Load()
	for i := range 20 {
		bogus := newKey(t, "bogus")
		bogus.kid = "bogus-" + string(rune('a'+i))
		v.Verify(context.Background(), sign(t, bogus, c, claims))
	}
	if got := srv.fetches.Load() - before; got != 0 {
		t.Errorf("20 unknown kids within a minute fetched the JWKS %d more times, want 0", got)
	}
}

func TestAuthenticateHeader(t *testing.T) {
	k := newKey(t, "k1")
	srv := newJWKSServer(t, k)
	clock := now
	v := verifier(t, srv.URL, &clock)
	tok := sign(t, k, good(), map[string]any{"scope": "system/*.rs"})
	for _, tc := range []struct {
		header string
		status int
	}{
		{"Bearer " + tok, 0},
		{"bearer " + tok, 0},
		{"", http.StatusBadRequest},
		{"Basic dXNlcjpwYXNz", http.StatusBadRequest},
		{"Bearer ", http.StatusBadRequest},
	} {
		r := httptest.NewRequest("GET", "/fhir/Patient", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		_, err := v.Authenticate(r)
		var ae *apiauth.Error
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("Authorization %.20q: %v", tc.header, err)
		case tc.status != 0 && (!errors.As(err, &ae) || ae.Status() != tc.status || !strings.HasPrefix(ae.WWWAuthenticate(), "Bearer error=")):
			t.Errorf("Authorization %.20q: %v, want HTTP %d", tc.header, err, tc.status)
		}
	}
}

func TestNewVerifierNeedsIssuerAudienceKeys(t *testing.T) {
	if _, err := apiauth.NewVerifier(apiauth.Options{}); err == nil || !strings.Contains(err.Error(), "issuer") ||
		!strings.Contains(err.Error(), "audience") || !strings.Contains(err.Error(), "keys") {
		t.Errorf("NewVerifier(zero) = %v, want every missing setting named", err)
	}
}

func TestRevokedAndKeySet(t *testing.T) {
	k := newKey(t, "k1")
	clock := now
	revoked := map[string]bool{"jti-revoked": true}
	var failing atomic.Bool
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience,
		KeySet: func(context.Context) (*jose.JSONWebKeySet, error) {
			return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}}, nil
		},
		Revoked: func(_ context.Context, jti string) (bool, error) {
			if failing.Load() {
				return false, errors.New("store down")
			}
			return revoked[jti], nil
		},
		Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string]any{"scope": "system/Patient.rs", "client_id": "analytics"}
	withID := func(id string) jwt.Claims { c := good(); c.ID = id; return c }
	tests := []struct {
		name    string
		token   string
		failing bool
		want    string // "" = accepted, else the error code
	}{
		{"live", sign(t, k, withID("jti-live"), extra), false, ""},
		{"revoked", sign(t, k, withID("jti-revoked"), extra), false, "invalid_token"},
		{"no jti", sign(t, k, withID(""), extra), false, "invalid_token"},
		{"revocation unknown: fail closed", sign(t, k, withID("jti-live"), extra), true, "invalid_token"},
		{"unknown kid", sign(t, newKey(t, "k2"), withID("jti-live"), extra), false, "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			failing.Store(tc.failing)
			_, err := v.Verify(context.Background(), tc.token)
			var ae *apiauth.Error
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Verify(%q) = %v, want accepted", tc.name, err)
			case tc.want != "" && (!errors.As(err, &ae) || ae.Code != tc.want || ae.Status() != http.StatusUnauthorized):
				t.Errorf("Verify(%q) = %v, want %s (401)", tc.name, err, tc.want)
			}
		})
	}
	if _, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience, JWKSURL: "https://x.example/jwks",
		KeySet: func(context.Context) (*jose.JSONWebKeySet, error) { return nil, nil }}); err == nil {
		t.Errorf("NewVerifier(JWKSURL and KeySet) = nil error, want one source of keys only")
	}
}

// TestRememberedTokensAreStillCheckedForExpiryAndRevocation: a token
// verified once is remembered, but each use still checks its expiry and
// its revocation, and after a minute its signature again.
func TestRememberedTokensAreStillCheckedForExpiryAndRevocation(t *testing.T) {
	k := newKey(t, "k1")
	clock := now
	revoked := false
	var keys atomic.Pointer[jose.JSONWebKeySet]
	keys.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}})
	v, err := apiauth.NewVerifier(apiauth.Options{Issuer: issuer, Audience: audience,
		KeySet:  func(context.Context) (*jose.JSONWebKeySet, error) { return keys.Load(), nil },
		Revoked: func(context.Context, string) (bool, error) { return revoked, nil },
		Now:     func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	c := good()
	c.ID = "jti-1"
	tok := sign(t, k, c, map[string]any{"scope": "system/Patient.rs"})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("first Verify = %v", err)
	}
	revoked = true
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Error("Verify after revocation = nil, want refused (the remembered token is checked again)")
	}
	revoked = false
	// The key is withdrawn: within the minute the token is still trusted,
	// after it not.
	keys.Store(&jose.JSONWebKeySet{})
	clock = now.Add(30 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Errorf("Verify 30 s later = %v, want the remembered token accepted", err)
	}
	clock = now.Add(2 * time.Minute)
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Error("Verify 2 min later with its key withdrawn = nil, want refused")
	}
	keys.Store(&jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.public()}})
	clock = now.Add(10 * time.Minute) // past exp (good() expires in 5 min) plus the skew
	if _, err := v.Verify(ctx, tok); err == nil {
		t.Error("Verify after exp = nil, want refused")
	}
}
