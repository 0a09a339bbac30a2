package smart

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"ehrgate/store"
)

type harness struct {
	t        testing.TB
	as       *fakeAS
	clock    *fakeClock
	st       *memStore
	vault    *Vault
	keys     *KeyManager
	disc     *Discoverer
	launcher *Launcher
	client   ClientConfig
	app      *httptest.Server
	logs     *bytes.Buffer
	log      *slog.Logger
	opts     LauncherOptions // what launcher was built with
}

// newHarness builds a fake EHR and a Launcher for it; mods adjust the
// Launcher's options (its store, limits, proxies).
func newHarness(t testing.TB, method AuthMethod, mods ...func(*LauncherOptions)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), st: newMemStore(), logs: &bytes.Buffer{}}
	h.log = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.as = newFakeAS(t, h.clock)
	ring := newRing(t)
	h.vault = NewVault(h.st, ring, h.clock.Now)
	h.keys = NewKeyManager(h.st, ring, KeyOptions{Now: h.clock.Now})
	if _, err := h.keys.Rotate(context.Background(), ES384); err != nil {
		t.Fatal(err)
	}
	h.as.clientJWKS = func() jose.JSONWebKeySet {
		s, err := h.keys.JWKS(context.Background())
		if err != nil {
			t.Error(err)
		}
		return s
	}
	h.disc = NewDiscoverer(h.as.srv.Client(), h.clock.Now)
	mux := http.NewServeMux()
	h.app = httptest.NewServer(mux)
	t.Cleanup(h.app.Close)
	h.client = ClientConfig{
		Connection: "hosp", FHIRBaseURL: h.as.base(), ClientID: h.as.clientID, AuthMethod: method,
		RedirectURL: h.app.URL + "/smart/callback",
		Scopes:      ScopeRequest{Types: []string{"Patient", "Observation"}, Extra: []string{"openid", "fhirUser", "offline_access"}},
	}
	if method == AuthClientSecretBasic || method == AuthClientSecretPost {
		h.client.ClientSecret = Secret(h.as.clientSecret)
	}
	h.opts = LauncherOptions{Clients: []ClientConfig{h.client}, Vault: h.vault, Discoverer: h.disc,
		Keys: h.keys, HTTPClient: h.as.srv.Client(), Now: h.clock.Now, Logger: h.log}
	for _, m := range mods {
		m(&h.opts)
	}
	l, err := NewLauncher(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	h.launcher = l
	mux.Handle("GET /smart/launch", l.LaunchHandler())
	mux.Handle("GET /smart/login", l.StandaloneHandler())
	mux.Handle("GET /smart/callback", l.CallbackHandler())
	return h
}

// browser returns a client with a cookie jar; when stopAtCallback is set it
// does not follow the redirect to ehrgate's callback.
func (h *harness) browser(stopAtCallback bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if stopAtCallback {
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Path == "/smart/callback" {
				return http.ErrUseLastResponse
			}
			return nil
		}
	}
	return c
}

func get(t testing.TB, c *http.Client, u string) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func (h *harness) launchURL() string {
	return h.app.URL + "/smart/launch?" + url.Values{"iss": {h.as.base()}, "launch": {"L-42"}}.Encode()
}

// callbackURL runs a launch up to the redirect back to ehrgate and returns
// the callback URL and the browser holding the binding cookie.
func (h *harness) callbackURL() (string, *http.Client) {
	h.t.Helper()
	b := h.browser(true)
	status, body, resp := get(h.t, b, h.launchURL())
	if status != http.StatusFound {
		h.t.Fatalf("launch: status %d, body %s", status, body)
	}
	return resp.Header.Get("Location"), b
}

func TestEHRLaunchClientTypes(t *testing.T) {
	for _, m := range []AuthMethod{AuthNone, AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT} {
		t.Run(string(m), func(t *testing.T) {
			h := newHarness(t, m)
			status, body, _ := get(t, h.browser(false), h.launchURL())
			if status != http.StatusOK || !strings.Contains(body, "Authorized") {
				t.Fatalf("launch: status %d body %s", status, body)
			}
			h.as.mu.Lock()
			az, form := h.as.lastAuthorize, h.as.lastForm
			h.as.mu.Unlock()
			scopes := strings.Fields(az.Get("scope"))
			for _, want := range []string{"launch", "openid", "fhirUser", "patient/Patient.read", "patient/Observation.read"} {
				if !contains(scopes, want) {
					t.Errorf("authorize scope %q lacks %q", az.Get("scope"), want)
				}
			}
			if az.Get("launch") != "L-42" || az.Get("aud") != h.as.base() || az.Get("code_challenge_method") != "S256" || az.Get("nonce") == "" {
				t.Errorf("authorize params = %v", az)
			}
			switch m {
			case AuthNone:
				if form.Get("client_secret") != "" || form.Get("client_assertion") != "" || form.Get("client_id") != h.as.clientID {
					t.Errorf("public client form = %v", form)
				}
			case AuthClientSecretPost:
				if form.Get("client_secret") == "" {
					t.Errorf("client_secret_post form lacks client_secret")
				}
			case AuthClientSecretBasic:
				if form.Get("client_secret") != "" {
					t.Errorf("client_secret_basic sent the secret in the form")
				}
			case AuthPrivateKeyJWT:
				if form.Get("client_assertion") == "" {
					t.Errorf("private_key_jwt form lacks client_assertion")
				}
			}
			tok, st, err := h.vault.Load(context.Background(), "hosp")
			if err != nil || tok == nil || st.State != store.TokenOK {
				t.Fatalf("vault.Load = %v, %+v, %v", tok, st, err)
			}
			c := tok.Context
			if c.Patient != "pat-123" || c.Encounter != "enc-9" || c.FHIRUser != "Practitioner/p1" || !c.NeedPatientBanner ||
				c.Intent != "reconcile" || c.Tenant != "t1" || c.SMARTStyleURL == "" || len(c.FHIRContext) != 1 {
				t.Errorf("launch context = %+v", c)
			}
			if tok.RefreshToken == "" {
				t.Error("no refresh token stored")
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestStandaloneLaunchPatientPicker(t *testing.T) {
	h := newHarness(t, AuthNone)
	h.as.permissionV2 = true
	status, body, _ := get(t, h.browser(false), h.app.URL+"/smart/login?connection=hosp&patient=pick")
	if status != http.StatusOK {
		t.Fatalf("standalone: %d %s", status, body)
	}
	az := h.as.lastAuthorize
	scopes := strings.Fields(az.Get("scope"))
	if !contains(scopes, "launch/patient") || contains(scopes, "launch") || az.Has("launch") {
		t.Errorf("standalone authorize scope = %q launch=%q", az.Get("scope"), az.Get("launch"))
	}
	if !contains(scopes, "patient/Observation.rs") {
		t.Errorf("server declares permission-v2 but scope = %q", az.Get("scope"))
	}
	if status, _, _ := get(t, h.browser(false), h.app.URL+"/smart/login?connection=nope"); status != http.StatusNotFound {
		t.Errorf("unknown connection: status %d", status)
	}
}

// TestCallbackState runs against each launch store: in memory and in the
// SQLite store.
func TestCallbackState(t *testing.T) {
	for _, be := range launchBackends {
		t.Run(be.name, func(t *testing.T) { testCallbackState(t, be.open) })
	}
}

func testCallbackState(t *testing.T, backend func(t *testing.T) func(*LauncherOptions)) {
	cases := []struct {
		name string
		do   func(h *harness, cb string, b *http.Client) (int, int) // final status, then callback status of a replay (0 if none)
	}{
		{"wrong state", func(h *harness, cb string, b *http.Client) (int, int) {
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", q.Get("state")+"x")
			u.RawQuery = q.Encode()
			s, _, _ := get(h.t, b, u.String())
			return s, 0
		}},
		{"missing state", func(h *harness, cb string, b *http.Client) (int, int) {
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Del("state")
			u.RawQuery = q.Encode()
			s, _, _ := get(h.t, b, u.String())
			return s, 0
		}},
		{"expired state", func(h *harness, cb string, b *http.Client) (int, int) {
			h.clock.Advance(11 * time.Minute)
			s, _, _ := get(h.t, b, cb)
			return s, 0
		}},
		{"other browser", func(h *harness, cb string, _ *http.Client) (int, int) {
			s, _, _ := get(h.t, h.browser(false), cb)
			return s, 0
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, AuthNone, backend(t))
			cb, b := h.callbackURL()
			if status, _ := c.do(h, cb, b); status != http.StatusBadRequest {
				t.Errorf("callback status = %d, want 400", status)
			}
			if _, n := h.as.count(); n != 0 {
				t.Errorf("token requests = %d, want 0", n)
			}
			if tok, _, _ := h.vault.Load(context.Background(), "hosp"); tok != nil {
				t.Error("a token was stored")
			}
		})
	}
	t.Run("replayed state", func(t *testing.T) {
		h := newHarness(t, AuthNone, backend(t))
		cb, b := h.callbackURL()
		u, _ := url.Parse(cb)
		cookies := b.Jar.Cookies(u) // replay with the binding cookie kept, so only single use can stop it
		if s, body, _ := get(t, b, cb); s != http.StatusOK {
			t.Fatalf("first callback: %d %s", s, body)
		}
		req, _ := http.NewRequest("GET", cb, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(cookies) == 0 || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback (with %d cookies) status = %d, want 400", len(cookies), resp.StatusCode)
		}
		if _, n := h.as.count(); n != 1 {
			t.Errorf("token requests = %d, want 1", n)
		}
	})
}

func TestReplayedCodeSurfacesError(t *testing.T) {
	h := newHarness(t, AuthNone)
	first, b := h.callbackURL()
	if s, _, _ := get(t, b, first); s != http.StatusOK {
		t.Fatalf("first launch failed: %d", s)
	}
	oldCode := mustQuery(t, first).Get("code")
	second, b2 := h.callbackURL()
	u, _ := url.Parse(second)
	q := u.Query()
	q.Set("code", oldCode)
	u.RawQuery = q.Encode()
	s, body, _ := get(t, b2, u.String())
	if s != http.StatusBadGateway || !strings.Contains(body, "invalid_grant") || !strings.Contains(body, "code already used") {
		t.Errorf("replayed code: status %d body %s", s, body)
	}
	if strings.Contains(body, oldCode) {
		t.Error("the error page shows the authorization code")
	}
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}

func TestPKCE(t *testing.T) {
	// RFC 7636 Appendix B.
	const verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	if got := S256Challenge(verifier); got != challenge {
		t.Errorf("S256Challenge(%q) = %q, want %q", verifier, got, challenge)
	}
	v := NewVerifier()
	if len(v) < 43 || len(v) > 128 || S256Challenge(v) != oauth2.S256ChallengeFromVerifier(v) {
		t.Errorf("NewVerifier() = %q (len %d); challenge disagrees with x/oauth2", v, len(v))
	}
	if NewVerifier() == v {
		t.Error("NewVerifier repeats")
	}
	t.Run("server rejects a wrong verifier", func(t *testing.T) {
		h := newHarness(t, AuthNone)
		cb, _ := h.callbackURL()
		form := url.Values{"grant_type": {"authorization_code"}, "code": {mustQuery(t, cb).Get("code")},
			"redirect_uri": {h.client.RedirectURL}, "client_id": {h.as.clientID}, "code_verifier": {NewVerifier()}}
		te := &tokenEndpoint{hc: h.as.srv.Client(), now: h.clock.Now}
		_, err := te.request(context.Background(), ClientConfig{ClientID: h.as.clientID}, h.as.srv.URL+"/token", form, "")
		var oe *OAuthError
		if !errors.As(err, &oe) || !errors.Is(err, ErrInvalidGrant) || oe.StatusCode != 400 || !strings.Contains(oe.Description, "PKCE") {
			t.Errorf("token request with a wrong verifier: %v", err)
		}
	})
}

func TestUnregisteredIssuerRefusedBeforeAnyRequest(t *testing.T) {
	h := newHarness(t, AuthPrivateKeyJWT)
	base, _ := url.Parse(h.as.base())
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("attacker server contacted: %s %s", r.Method, r.URL.Path)
	}))
	defer evil.Close()
	for _, iss := range []string{
		evil.URL + "/fhir",
		"https://" + base.Host + "/fhir",           // other scheme
		base.Scheme + "://" + base.Host + "/fhir2", // other path
		base.Scheme + "://" + base.Host + "/fhir/../evil",
		base.Scheme + "://" + base.Host + "/",
		base.Scheme + "://" + base.Host + "/fhir?x=1",
		base.Scheme + "://user@" + base.Host + "/fhir",
		base.Scheme + "://" + base.Hostname() + ":1/fhir", // other port
		base.Scheme + "://" + base.Host + ".evil.example/fhir",
		"not a url",
	} {
		t.Run(iss, func(t *testing.T) {
			before, _ := h.as.count()
			status, body, _ := get(t, h.browser(false), h.app.URL+"/smart/launch?"+url.Values{"iss": {iss}, "launch": {"x"}}.Encode())
			if status != http.StatusBadRequest || !strings.Contains(body, "not registered") {
				t.Errorf("launch from %q: status %d body %s", iss, status, body)
			}
			if after, _ := h.as.count(); after != before {
				t.Errorf("launch from %q caused %d requests to the registered server", iss, after-before)
			}
		})
	}
	// Equivalent spellings of the registered base are accepted.
	for _, iss := range []string{h.as.base() + "/", strings.ToUpper(base.Scheme) + "://" + strings.ToUpper(base.Host) + "/fhir"} {
		b := h.browser(true)
		if status, body, _ := get(t, b, h.app.URL+"/smart/launch?"+url.Values{"iss": {iss}, "launch": {"x"}}.Encode()); status != http.StatusFound {
			t.Errorf("launch from equivalent iss %q: status %d %s", iss, status, body)
		}
	}
}

func TestNormalizeIssuer(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://EHR.example.org:443/fhir/", "https://ehr.example.org/fhir"},
		{"http://ehr.example.org:80/a/b", "http://ehr.example.org/a/b"},
		{"https://ehr.example.org:8443/R4", "https://ehr.example.org:8443/R4"},
		{"https://ehr.example.org", "https://ehr.example.org"},
	}
	for _, c := range cases {
		if got, err := NormalizeIssuer(c.in); err != nil || got != c.want {
			t.Errorf("NormalizeIssuer(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "ftp://x/y", "https://u:p@x/y", "https://x/y?q", "https://x/y#f", "/relative"} {
		if got, err := NormalizeIssuer(bad); err == nil {
			t.Errorf("NormalizeIssuer(%q) = %q, want error", bad, got)
		}
	}
}

func TestIDTokenVerification(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct {
		name string
		mut  func(c map[string]any, now time.Time)
		ok   bool
	}{
		{"valid", func(map[string]any, time.Time) {}, true},
		{"bad signature", func(c map[string]any, _ time.Time) { c["_key"] = other }, false},
		{"wrong aud", func(c map[string]any, _ time.Time) { c["aud"] = "someone-else" }, false},
		{"wrong iss", func(c map[string]any, _ time.Time) { c["iss"] = "https://evil.example" }, false},
		{"wrong nonce", func(c map[string]any, _ time.Time) { c["nonce"] = "forged" }, false},
		{"no nonce", func(c map[string]any, _ time.Time) { delete(c, "nonce") }, false},
		{"expired beyond skew", func(c map[string]any, now time.Time) { c["exp"] = now.Add(-3 * time.Minute).Unix() }, false},
		{"expired within skew", func(c map[string]any, now time.Time) { c["exp"] = now.Add(-90 * time.Second).Unix() }, true},
		{"issued in the future within skew", func(c map[string]any, now time.Time) { c["iat"] = now.Add(90 * time.Second).Unix() }, true},
		{"issued in the future beyond skew", func(c map[string]any, now time.Time) { c["iat"] = now.Add(3 * time.Minute).Unix() }, false},
		{"not before beyond skew", func(c map[string]any, now time.Time) { c["nbf"] = now.Add(3 * time.Minute).Unix() }, false},
		{"no exp", func(c map[string]any, _ time.Time) { delete(c, "exp") }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, AuthNone)
			h.as.idClaims = func(m map[string]any) { c.mut(m, h.clock.Now()) }
			status, body, _ := get(t, h.browser(false), h.launchURL())
			tok, _, _ := h.vault.Load(context.Background(), "hosp")
			if c.ok {
				if status != http.StatusOK || tok == nil || tok.Context.FHIRUser != "Practitioner/p1" {
					t.Errorf("status %d, token %v; want accepted: %s", status, tok, body)
				}
				return
			}
			if status != http.StatusBadGateway || !strings.Contains(body, "id_token rejected") || tok != nil {
				t.Errorf("status %d, token stored %v; want rejected: %s", status, tok != nil, body)
			}
		})
	}
}

func TestScopesNotGrantedDegrade(t *testing.T) {
	h := newHarness(t, AuthNone)
	h.as.grant = func(req string) string { return strings.ReplaceAll(req, "patient/Observation.read", "") }
	status, body, _ := get(t, h.browser(false), h.launchURL())
	if status != http.StatusOK || !strings.Contains(body, "patient/Observation.read") {
		t.Errorf("partial grant: status %d body %s", status, body)
	}
}

func TestIDTokenViaOpenIDDiscovery(t *testing.T) {
	h := newHarness(t, AuthNone)
	h.as.oidcOnly = true
	if status, body, _ := get(t, h.browser(false), h.launchURL()); status != http.StatusOK {
		t.Fatalf("Cerner-style issuer without jwks_uri: status %d %s", status, body)
	}
	h2 := newHarness(t, AuthNone)
	h2.as.oidcOnly = true
	h2.as.idClaims = func(c map[string]any) { c["iss"] = h2.as.srv.URL } // not the OIDC issuer
	if status, _, _ := get(t, h2.browser(false), h2.launchURL()); status != http.StatusBadGateway {
		t.Errorf("wrong iss under OpenID discovery: status %d, want 502", status)
	}
}
