package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memStore is an in-memory store.TokenStore (checked by the shared
// conformance suite below).
type memStore struct {
	mu     sync.Mutex
	tokens map[string]store.EncryptedToken
	keys   map[string]store.SigningKey
}

func newMemStore() *memStore {
	return &memStore{tokens: map[string]store.EncryptedToken{}, keys: map[string]store.SigningKey{}}
}

func (m *memStore) GetToken(_ context.Context, c string) (store.EncryptedToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[c]
	if !ok {
		return t, store.ErrNotFound
	}
	return t, nil
}

func (m *memStore) UpdateToken(_ context.Context, c string, fn func(*store.EncryptedToken) (*store.EncryptedToken, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur *store.EncryptedToken
	if t, ok := m.tokens[c]; ok {
		cur = &t
	}
	next, err := fn(cur)
	if err != nil || next == nil {
		return err
	}
	n := *next
	n.Connection = c
	if n.Status == "" {
		n.Status = store.TokenOK
	}
	m.tokens[c] = n
	return nil
}

func (m *memStore) DeleteToken(_ context.Context, c string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tokens, c)
	return nil
}

func (m *memStore) ListTokens(context.Context) ([]store.EncryptedToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.EncryptedToken
	for _, t := range m.tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b store.EncryptedToken) int { return strings.Compare(a.Connection, b.Connection) })
	return out, nil
}

func (m *memStore) PutSigningKey(_ context.Context, k store.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[k.KID] = k
	return nil
}

func (m *memStore) ListSigningKeys(context.Context) ([]store.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SigningKey
	for _, k := range m.keys {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b store.SigningKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.KID, b.KID)
	})
	return out, nil
}

var _ store.TokenStore = (*memStore)(nil)

func TestMemStoreConformance(t *testing.T) {
	storetest.RunTokenTests(t, func(*testing.T) store.TokenStore { return newMemStore() })
}

func newRing(t testing.TB) *secrets.Keyring {
	t.Helper()
	k, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	return secrets.NewKeyring(k)
}

// fakeAS is a small but honest SMART authorization server and FHIR
// endpoint: discovery, authorize (redirects back with code and state),
// token endpoint verifying PKCE, client secrets and client assertions,
// rotating refresh tokens, an id_token JWKS, and one FHIR read that checks
// bearer tokens.
type fakeAS struct {
	t     testing.TB
	srv   *httptest.Server
	clock *fakeClock

	clientID     string
	clientSecret string
	clientJWKS   func() jose.JSONWebKeySet // ehrgate's published keys

	mu            sync.Mutex
	requests      int // every request
	tokenRequests int
	tokenDelay    time.Duration
	noWellKnown   bool
	oidcOnly      bool // Cerner-style: issuer is the OIDC discovery URL, no jwks_uri
	permissionV2  bool
	expiresIn     int
	grant         func(requested string) string // scopes granted; default all
	idClaims      func(c map[string]any)        // mutate id_token claims
	codes         map[string]*codeGrant
	refresh       map[string]bool // valid refresh tokens
	access        map[string]bool // valid access tokens
	jtis          map[string]bool
	lastAuthorize url.Values
	lastForm      url.Values
	idKey         *ecdsa.PrivateKey
}

type codeGrant struct {
	challenge, redirect, scope, nonce, launch string
	used                                      bool
}

func newFakeAS(t testing.TB, clock *fakeClock) *fakeAS {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAS{t: t, clock: clock, clientID: "ehrgate-client", clientSecret: "s3cret-client-value",
		expiresIn: 300, codes: map[string]*codeGrant{}, refresh: map[string]bool{}, access: map[string]bool{},
		jtis: map[string]bool{}, idKey: k}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", f.wellKnown)
	mux.HandleFunc("GET /fhir/metadata", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not here", http.StatusNotFound)
	})
	mux.HandleFunc("GET /oidc/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL + "/oidc", "jwks_uri": f.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &f.idKey.PublicKey, KeyID: "id1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /fhir/Patient/{id}", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		ok := f.access[tok]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"Patient","id":%q}`, r.PathValue("id"))
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests++
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAS) base() string { return f.srv.URL + "/fhir" }

func (f *fakeAS) count() (all, token int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests, f.tokenRequests
}

func (f *fakeAS) wellKnown(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	no, v2 := f.noWellKnown, f.permissionV2
	f.mu.Unlock()
	if no {
		http.NotFound(w, r)
		return
	}
	caps := []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric", "sso-openid-connect"}
	if v2 {
		caps = append(caps, "permission-v2")
	}
	doc := map[string]any{
		"issuer":                                f.srv.URL,
		"jwks_uri":                              f.srv.URL + "/jwks",
		"authorization_endpoint":                f.srv.URL + "/authorize",
		"token_endpoint":                        f.srv.URL + "/token",
		"capabilities":                          caps,
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic", "client_secret_post"},
	}
	if f.oidcOnly {
		doc["issuer"] = f.srv.URL + "/oidc/.well-known/openid-configuration"
		delete(doc, "jwks_uri")
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}

func (f *fakeAS) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	f.lastAuthorize = q
	f.mu.Unlock()
	if q.Get("response_type") != "code" || q.Get("client_id") != f.clientID || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("aud") != f.base() || q.Get("redirect_uri") == "" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	code := randomToken(16)
	f.mu.Lock()
	f.codes[code] = &codeGrant{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), scope: q.Get("scope"), nonce: q.Get("nonce"), launch: q.Get("launch")}
	f.mu.Unlock()
	u, _ := url.Parse(q.Get("redirect_uri"))
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func oauthErr(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// authenticate checks the client's authentication per its method.
func (f *fakeAS) authenticate(r *http.Request) (string, bool) {
	if id, sec, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
		return "client_secret_basic", id == f.clientID && sec == f.clientSecret
	}
	if r.PostForm.Get("client_secret") != "" {
		return "client_secret_post", r.PostForm.Get("client_id") == f.clientID && r.PostForm.Get("client_secret") == f.clientSecret
	}
	if a := r.PostForm.Get("client_assertion"); a != "" {
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			return "private_key_jwt", false
		}
		return "private_key_jwt", f.checkAssertion(a) == nil
	}
	return "none", r.PostForm.Get("client_id") == f.clientID
}

func (f *fakeAS) checkAssertion(a string) error {
	tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.RS384, jose.ES384})
	if err != nil {
		return err
	}
	kid := tok.Headers[0].KeyID
	if kid == "" || f.clientJWKS == nil {
		return fmt.Errorf("no kid")
	}
	set := f.clientJWKS()
	keys := set.Key(kid)
	if len(keys) != 1 {
		return fmt.Errorf("unknown kid %s", kid)
	}
	var c jwt.Claims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return err
	}
	now := f.clock.Now()
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: f.clientID, Subject: f.clientID, AnyAudience: jwt.Audience{f.srv.URL + "/token"}, Time: now}, 0); err != nil {
		return err
	}
	if c.Expiry.Time().Sub(now) > 5*time.Minute {
		return fmt.Errorf("exp too far")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jtis[c.ID] || c.ID == "" {
		return fmt.Errorf("jti replayed")
	}
	f.jtis[c.ID] = true
	return nil
}

func (f *fakeAS) issue(w http.ResponseWriter, scope, nonce string, withRefresh bool, extra map[string]any) {
	at, rt := "at-"+randomToken(12), ""
	f.mu.Lock()
	f.access[at] = true
	if withRefresh {
		rt = "rt-" + randomToken(12)
		f.refresh[rt] = true
	}
	if f.grant != nil {
		scope = f.grant(scope)
	}
	exp := f.expiresIn
	idMut := f.idClaims
	iss := f.srv.URL
	if f.oidcOnly {
		iss += "/oidc"
	}
	f.mu.Unlock()
	resp := map[string]any{"access_token": at, "token_type": "bearer", "expires_in": exp, "scope": scope}
	if rt != "" {
		resp["refresh_token"] = rt
	}
	for k, v := range extra {
		resp[k] = v
	}
	if slices.Contains(strings.Fields(scope), "openid") {
		now := f.clock.Now()
		claims := map[string]any{"iss": iss, "sub": "u1", "aud": f.clientID, "exp": now.Add(5 * time.Minute).Unix(),
			"iat": now.Unix(), "nonce": nonce, "fhirUser": "Practitioner/p1"}
		if idMut != nil {
			idMut(claims)
		}
		key := any(f.idKey)
		if k, ok := claims["_key"]; ok {
			key = k
			delete(claims, "_key")
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "id1"}}, nil)
		if err != nil {
			f.t.Error(err)
		}
		idt, err := jwt.Signed(s).Claims(claims).Serialize()
		if err != nil {
			f.t.Error(err)
		}
		resp["id_token"] = idt
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(resp)
}

func (f *fakeAS) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenRequests++
	delay := f.tokenDelay
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(w, 400, "invalid_request", "bad form")
		return
	}
	f.mu.Lock()
	f.lastForm = r.PostForm
	f.mu.Unlock()
	method, ok := f.authenticate(r)
	if !ok {
		oauthErr(w, 401, "invalid_client", "client authentication failed ("+method+")")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		f.mu.Lock()
		g, found := f.codes[r.PostForm.Get("code")]
		used := found && g.used
		if found {
			g.used = true
		}
		f.mu.Unlock()
		switch {
		case !found:
			oauthErr(w, 400, "invalid_grant", "unknown code")
		case used:
			oauthErr(w, 400, "invalid_grant", "code already used")
		case g.redirect != r.PostForm.Get("redirect_uri"):
			oauthErr(w, 400, "invalid_grant", "redirect_uri mismatch")
		case S256Challenge(r.PostForm.Get("code_verifier")) != g.challenge:
			oauthErr(w, 400, "invalid_grant", "PKCE verification failed")
		default:
			extra := map[string]any{}
			if g.launch != "" {
				extra = map[string]any{"patient": "pat-123", "encounter": "enc-9", "need_patient_banner": true,
					"smart_style_url": f.srv.URL + "/style.json", "intent": "reconcile", "tenant": "t1",
					"fhirContext": []any{map[string]any{"reference": "DocumentReference/d1"}}}
			}
			f.issue(w, g.scope, g.nonce, true, extra)
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		f.mu.Lock()
		valid := f.refresh[rt]
		delete(f.refresh, rt) // rotation: each refresh token is single use
		f.mu.Unlock()
		if !valid {
			oauthErr(w, 400, "invalid_grant", "refresh token revoked")
			return
		}
		f.issue(w, "patient/Patient.read", "", true, nil)
	case "client_credentials":
		if method != "private_key_jwt" {
			oauthErr(w, 400, "unauthorized_client", "backend services need private_key_jwt")
			return
		}
		f.issue(w, r.PostForm.Get("scope"), "", false, nil)
	default:
		oauthErr(w, 400, "unsupported_grant_type", "")
	}
}

// revokeAll makes every refresh token invalid (server-side revocation).
func (f *fakeAS) revokeAll() {
	f.mu.Lock()
	f.refresh = map[string]bool{}
	f.mu.Unlock()
}

// expireAccess makes every access token invalid (401 on the FHIR read).
func (f *fakeAS) expireAccess() {
	f.mu.Lock()
	f.access = map[string]bool{}
	f.mu.Unlock()
}
