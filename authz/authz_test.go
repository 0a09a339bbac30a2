package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"ehrgate/apiauth"
	"ehrgate/audit"
	"ehrgate/authz"
	"ehrgate/clients"
	"ehrgate/internal/pgtest"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/store"
	"ehrgate/store/postgres"
	"ehrgate/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

const (
	publicApp   = "growth-chart"
	redirectURI = "http://127.0.0.1:9/callback"
	esApp       = "analytics-es"
	rsApp       = "analytics-rs"
	noScopesApp = "no-scopes"
	personHdr   = "X-Test-Person" // the fake people login
)

type testStore interface {
	store.Documents
	store.Reader
	store.Writer
	Close() error
}

// recorder is a fake audit.Recorder; fail makes it refuse.
type recorder struct {
	mu     sync.Mutex
	events []audit.Event
	fail   bool
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("audit trail unavailable")
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) setFail(b bool) { r.mu.Lock(); r.fail = b; r.mu.Unlock() }

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.events) }

type signingKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func (k signingKey) jwks() []byte {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}}})
	return b
}

// env is a running authorization server on a real store.
type env struct {
	t        *testing.T
	srv      *authz.Server
	http     *httptest.Server
	issuer   string
	audience string
	audit    *recorder
	esKey    signingKey
	rsKey    signingKey
	now      *time.Time // the server's clock, when a test moves it
	browser  *http.Client
	opts     authz.Options
	kek      secrets.KEK
}

func newEnv(t *testing.T, st testStore) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, audit: &recorder{}}
	var h http.Handler
	e.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.http.Close)
	e.issuer, e.audience = e.http.URL, e.http.URL+"/fhir"

	es, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.esKey = signingKey{es, jose.ES384, "es-1"}
	e.rsKey = signingKey{rs, jose.RS384, "rs-1"}
	// The RS384 app publishes its keys at a URL (https, as clients requires).
	jwksSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(e.rsKey.jwks()) }))
	t.Cleanup(jwksSrv.Close)

	reg := clients.NewRegistry(st)
	for _, c := range []clients.Client{
		{ID: publicApp, Public: true, RedirectURIs: []string{redirectURI},
			Scopes: []string{"launch/patient", "patient/Patient.rs", "patient/Observation.rs", "offline_access", "openid", "fhirUser", "user/AuditEvent.rs"}},
		{ID: esApp, JWKS: e.esKey.jwks(), Scopes: []string{"system/Patient.rs", "system/Observation.rs"}},
		{ID: rsApp, JWKSURL: jwksSrv.URL + "/jwks.json", Scopes: []string{"system/*.rs"}},
		{ID: noScopesApp, JWKS: e.esKey.jwks()},
	} {
		if _, err := reg.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	putPatients(t, st)
	e.kek, err = secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	e.opts = authz.Options{
		Issuer: e.issuer, Audience: e.audience,
		Docs: st, Patients: st, Clients: reg, Keyring: secrets.NewKeyring(e.kek),
		Person: func(r *http.Request) (authz.Person, bool) {
			id := r.Header.Get(personHdr)
			return authz.Person{ID: id, Name: "Dr " + id, MayAudit: strings.HasPrefix(id, "auditor")}, id != ""
		},
		LoginURL:   "/login",
		Audit:      e.audit,
		HTTPClient: jwksSrv.Client(),
		Now: func() time.Time {
			if e.now != nil {
				return *e.now
			}
			return time.Now()
		},
	}
	e.srv, err = authz.New(ctx, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	// Mounted as the gateway will: server.New with the routes (it checks
	// that each declares its access, and adds its middleware).
	h = server.New(server.Options{Routes: e.srv.Routes()}).Handler()
	e.browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e
}

func putPatients(t *testing.T, w store.Writer) {
	t.Helper()
	var recs []store.Record
	for _, p := range []struct{ conn, id, family, given, birth, mrn string }{
		{"conn_a", "p1", "Lovelace", "Ada", "1815-12-10", "MRN-1"},
		{"conn_b", "p9", "Lovelace", "Byron", "1816-01-01", "MRN-9"},
		{"conn_a", "p2", "Hopper", "Grace", "1906-12-09", "MRN-2"},
	} {
		raw := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q,"given":[%q]}],"birthDate":%q,"identifier":[{"value":%q}]}`,
			p.id, p.family, p.given, p.birth, p.mrn)
		recs = append(recs, store.Record{Key: store.Key{Connection: p.conn, Type: "Patient", ID: p.id, VersionID: "1"},
			PatientID: p.id, Raw: []byte(raw), FetchedAt: time.Now(),
			Patient: &store.PatientKeys{Names: []string{p.given + " " + p.family}, MRNs: []string{p.mrn}, BirthDate: p.birth}})
	}
	if _, err := w.PutResources(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

func openSQLite(t *testing.T) testStore {
	t.Helper()
	st, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openPostgres(t *testing.T) testStore {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// backends runs f on every store backend.
func backends(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t, openSQLite(t))) })
	t.Run("postgres", func(t *testing.T) { f(t, newEnv(t, openPostgres(t))) })
}

func (e *env) oauthConfig(scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: publicApp, RedirectURL: redirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: e.issuer + authz.PathAuthorize, TokenURL: e.issuer + authz.PathToken, AuthStyle: oauth2.AuthStyleInParams}}
}

var (
	csrfRE    = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	requestRE = regexp.MustCompile(`name="request" value="([^"]*)"`)
)

// picker is an open patient-picker page.
type picker struct {
	csrf, request, body string
}

// get requests u as person (a browser that does not follow redirects).
func (e *env) get(u, person string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if person != "" {
		req.Header.Set(personHdr, person)
	}
	resp, err := e.browser.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// openPicker starts the authorization at authURL and returns the picker.
func (e *env) openPicker(authURL, person string) picker {
	e.t.Helper()
	resp := e.get(authURL, person)
	b := body(e.t, resp)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET authorize = %d %s (%s), want the picker", resp.StatusCode, resp.Header.Get("Location"), b)
	}
	c, r := csrfRE.FindStringSubmatch(b), requestRE.FindStringSubmatch(b)
	if c == nil || r == nil {
		e.t.Fatalf("no picker form in %s", b)
	}
	return picker{csrf: html.UnescapeString(c[1]), request: html.UnescapeString(r[1]), body: b}
}

// post submits the picker form.
func (e *env) post(p picker, person string, fields url.Values) *http.Response {
	e.t.Helper()
	f := url.Values{"csrf": {p.csrf}, "request": {p.request}}
	for k, v := range fields {
		f[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+authz.PathPick, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if person != "" {
		req.Header.Set(personHdr, person)
	}
	resp, err := e.browser.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// launch runs a standalone launch through the picker (search, choose
// patient) and returns the redirect back to the app.
func (e *env) launch(authURL, person, search, patient string) *url.URL {
	e.t.Helper()
	p := e.openPicker(authURL, person)
	resp := e.post(p, person, url.Values{"action": {"search"}, "q": {search}})
	if b := body(e.t, resp); !strings.Contains(b, patient) {
		e.t.Fatalf("search %q: %s does not list %s", search, b, patient)
	}
	resp = e.post(p, person, url.Values{"action": {"choose"}, "patient": {patient}})
	body(e.t, resp)
	loc, err := resp.Location()
	if err != nil {
		e.t.Fatalf("choose %s = %d, want a redirect to the app", patient, resp.StatusCode)
	}
	return loc
}

func verifier() string { return oauth2.GenerateVerifier() }

// authURL is the app's authorization URL with PKCE S256 and aud.
func (e *env) authURL(cfg *oauth2.Config, state, v string, extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", e.audience)}, extra...)
	return cfg.AuthCodeURL(state, opts...)
}

func oauthCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func TestStandaloneLaunch(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "patient/Condition.rs", "patient/Patient.cruds", "offline_access", "system/Patient.rs")
		v := verifier()
		loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_b/p9")
		if got := loc.Query().Get("state"); got != "state-123456" {
			t.Errorf("redirect state = %q, want %q", got, "state-123456")
		}
		if !strings.HasPrefix(loc.String(), redirectURI) {
			t.Errorf("redirect = %s, want to %s", loc.Redacted(), redirectURI)
		}
		tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatalf("Exchange = %v", err)
		}
		if got := tok.Extra("patient"); got != "conn-b.p9" {
			t.Errorf("token response patient = %v, want %q", got, "conn-b.p9")
		}
		wantScope := "launch/patient patient/Observation.rs patient/Patient.rs offline_access"
		if got := tok.Extra("scope"); got != wantScope {
			t.Errorf("token response scope = %v, want %q (beyond the registration dropped)", got, wantScope)
		}
		if tok.RefreshToken == "" {
			t.Errorf("no refresh token with offline_access")
		}
		p, err := e.srv.Verifier().Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("Verify(access token) = %v", err)
		}
		if p.Patient != "conn-b.p9" || p.Subject != "dr-who" || p.ClientID != publicApp || p.Scopes.String() != wantScope {
			t.Errorf("Verify(access token) = %+v, want patient conn-b.p9, sub dr-who, client %s, scopes %q", p, publicApp, wantScope)
		}
		if ok, _ := p.Scopes.CanSearch("patient", "Observation"); !ok {
			t.Errorf("the token cannot search Observation")
		}
		if ok, _ := p.Scopes.CanSearch("patient", "Condition"); ok {
			t.Errorf("the token can search Condition, which the app is not registered for")
		}
		if e.audit.count() != 1 || e.audit.events[0].Patient != (audit.PatientRef{Connection: "conn_b", ID: "p9"}) || e.audit.events[0].Agent.ClientID != publicApp {
			t.Errorf("audit events = %+v, want one launch of conn_b/p9 by %s", e.audit.events, publicApp)
		}
		// The access token's claims, as SMART asks.
		var claims map[string]any
		parsed, _ := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.ES384})
		parsed.UnsafeClaimsWithoutVerification(&claims)
		for _, c := range []string{"iss", "aud", "exp", "iat", "jti", "scope", "client_id", "sub", "patient"} {
			if claims[c] == nil {
				t.Errorf("access token claim %s missing", c)
			}
		}
		if exp := int64(claims["exp"].(float64)) - int64(claims["iat"].(float64)); exp > 3600 {
			t.Errorf("access token lifetime = %ds, want at most 1h", exp)
		}
	})
}

func TestAuditFailClosed(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs")
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "hopper", "conn_a/p2")
	e.audit.setFail(true)
	if tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v)); err == nil {
		t.Fatalf("Exchange with the audit trail down = %v, want refused", tok.Extra("patient"))
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs")
	v := verifier()
	good := func(mod func(q url.Values)) string {
		u, _ := url.Parse(e.authURL(cfg, "state-123456", v))
		q := u.Query()
		mod(q)
		u.RawQuery = q.Encode()
		return u.String()
	}
	tests := []struct {
		name     string
		url      string
		person   string
		status   int
		redirect string // prefix of Location, when status is a redirect
		error    string // the error parameter of that redirect
	}{
		{"no PKCE", good(func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }), "dr-who", http.StatusSeeOther, redirectURI, "invalid_request"},
		{"PKCE plain", good(func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", v) }), "dr-who", http.StatusSeeOther, redirectURI, "invalid_request"},
		{"wrong aud", good(func(q url.Values) { q.Set("aud", "https://other.example/fhir") }), "dr-who", http.StatusSeeOther, redirectURI, "invalid_request"},
		{"no aud", good(func(q url.Values) { q.Del("aud") }), "dr-who", http.StatusSeeOther, redirectURI, "invalid_request"},
		{"wrong redirect URI", good(func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9/other") }), "dr-who", http.StatusBadRequest, "", ""},
		{"redirect URI another port", good(func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:10/callback") }), "dr-who", http.StatusBadRequest, "", ""},
		{"no redirect URI", good(func(q url.Values) { q.Del("redirect_uri") }), "dr-who", http.StatusBadRequest, "", ""},
		{"unknown client", good(func(q url.Values) { q.Set("client_id", "nobody") }), "dr-who", http.StatusBadRequest, "", ""},
		{"no registered scope", good(func(q url.Values) { q.Set("scope", "patient/Condition.rs") }), "dr-who", http.StatusSeeOther, redirectURI, "invalid_scope"},
		{"token response type", good(func(q url.Values) { q.Set("response_type", "token") }), "dr-who", http.StatusSeeOther, redirectURI, "unsupported_response_type"},
		{"not signed in", good(func(url.Values) {}), "", http.StatusSeeOther, "/login?return=", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.get(tc.url, tc.person)
			b := body(t, resp)
			if resp.StatusCode != tc.status && !(tc.status == http.StatusSeeOther && resp.StatusCode == http.StatusFound) {
				t.Fatalf("GET authorize (%s) = %d, want %d (%s)", tc.name, resp.StatusCode, tc.status, b)
			}
			loc := resp.Header.Get("Location")
			if tc.redirect == "" {
				if loc != "" {
					t.Errorf("GET authorize (%s) redirected to %s, want no redirect", tc.name, loc)
				}
				return
			}
			if !strings.HasPrefix(loc, tc.redirect) {
				t.Fatalf("GET authorize (%s) Location = %q, want prefix %q", tc.name, loc, tc.redirect)
			}
			if tc.error != "" {
				u, _ := url.Parse(loc)
				if got := u.Query().Get("error"); got != tc.error {
					t.Errorf("GET authorize (%s) error = %q, want %q (%s)", tc.name, got, tc.error, u.Query().Get("error_description"))
				}
				if u.Query().Get("code") != "" {
					t.Errorf("GET authorize (%s) issued a code", tc.name)
				}
			}
		})
	}
}

func TestTokenRefusals(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
	tests := []struct {
		name string
		use  func(code, v string) error
		want string
	}{
		{"wrong verifier", func(code, _ string) error {
			_, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier()))
			return err
		}, "invalid_grant"},
		{"no verifier", func(code, _ string) error { _, err := cfg.Exchange(ctx, code); return err }, "invalid_grant"},
		{"another redirect URI", func(code, v string) error {
			c := *cfg
			c.RedirectURL = "http://127.0.0.1:9/other"
			_, err := c.Exchange(ctx, code, oauth2.VerifierOption(v))
			return err
		}, "invalid_grant"},
		{"another client", func(code, v string) error {
			_, err := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
				"code_verifier": {v}, "client_id": {esApp}})
			return err
		}, "invalid_client"},
		{"client secret", func(code, v string) error {
			_, err := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
				"code_verifier": {v}, "client_id": {publicApp}, "client_secret": {"guess"}})
			return err
		}, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := verifier()
			loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "MRN-1", "conn_a/p1")
			err := tc.use(loc.Query().Get("code"), v)
			if got := oauthCode(err); got != tc.want {
				t.Errorf("token (%s) = %v, want %s", tc.name, err, tc.want)
			}
		})
	}
}

// tokenForm posts a raw token request; the error is an *oauth2.RetrieveError-like error code.
func (e *env) tokenForm(f url.Values) (map[string]any, error) {
	resp, err := http.PostForm(e.issuer+authz.PathToken, f)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		code, _ := out["error"].(string)
		return out, &oauth2.RetrieveError{Response: resp, ErrorCode: code}
	}
	return out, nil
}

func TestCodeReuseRevokes(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
		v := verifier()
		loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
		code := loc.Query().Get("code")
		tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.srv.Verifier().Verify(ctx, tok.AccessToken); err != nil {
			t.Fatalf("Verify(first token) = %v", err)
		}
		_, err = cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
		if got := oauthCode(err); got != "invalid_grant" {
			t.Errorf("second Exchange(code) = %v, want invalid_grant", err)
		}
		assertRevoked(t, e, tok.AccessToken)
		_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if got := oauthCode(err); got != "invalid_grant" {
			t.Errorf("refresh after code reuse = %v, want invalid_grant", err)
		}
	})
}

func assertRevoked(t *testing.T, e *env, token string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/fhir/Observation", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	_, err := e.srv.Verifier().Authenticate(req)
	var ae *apiauth.Error
	if !errors.As(err, &ae) || ae.Status() != http.StatusUnauthorized {
		t.Errorf("Authenticate(revoked token) = %v, want 401", err)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
		v := verifier()
		loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
		first, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		refresh := func(rt string) (*oauth2.Token, error) {
			return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		}
		second, err := refresh(first.RefreshToken)
		if err != nil {
			t.Fatalf("refresh = %v", err)
		}
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh returned refresh token %v, want a new one", second.RefreshToken != "")
		}
		if second.Extra("patient") != "conn-a.p1" {
			t.Errorf("refresh response patient = %v, want conn-a.p1", second.Extra("patient"))
		}
		p, err := e.srv.Verifier().Verify(ctx, second.AccessToken)
		if err != nil || p.Patient != "conn-a.p1" {
			t.Fatalf("Verify(refreshed token) = %+v, %v", p, err)
		}
		// The old refresh token again: reuse, the whole grant is revoked.
		_, err = refresh(first.RefreshToken)
		if got := oauthCode(err); got != "invalid_grant" {
			t.Errorf("refresh with the rotated token = %v, want invalid_grant", err)
		}
		_, err = refresh(second.RefreshToken)
		if got := oauthCode(err); got != "invalid_grant" {
			t.Errorf("refresh with the newest token after reuse = %v, want invalid_grant", err)
		}
		assertRevoked(t, e, first.AccessToken)
		assertRevoked(t, e, second.AccessToken)
	})
}

func TestNoRefreshWithoutOfflineAccess(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs")
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Errorf("Exchange without offline_access returned a refresh token")
	}
}

// assertion signs a client assertion; mod changes its claims.
func assertion(t *testing.T, k signingKey, clientID, aud string, mod func(*jwt.Claims)) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: base64.RawURLEncoding.EncodeToString(randomBytes(t)),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute))}
	if mod != nil {
		mod(&c)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(t *testing.T) []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

func (e *env) backend(clientID, assertion string, scopes ...string) (*oauth2.Token, error) {
	cc := clientcredentials.Config{ClientID: clientID, TokenURL: e.issuer + authz.PathToken, Scopes: scopes, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}}
	return cc.Token(context.Background())
}

func TestBackendServices(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		tokenURL := e.issuer + authz.PathToken
		replayed := assertion(t, e.esKey, esApp, tokenURL, nil)
		if _, err := e.backend(esApp, replayed, "system/Patient.rs"); err != nil {
			t.Fatalf("first use of an assertion = %v", err)
		}
		otherKey := signingKey{mustEC(t), jose.ES384, "es-1"}
		tests := []struct {
			name      string
			client    string
			assertion string
			scopes    []string
			want      string // "" = a token with wantScope
			wantScope string
		}{
			{"ES384 inline JWKS", esApp, assertion(t, e.esKey, esApp, tokenURL, nil), []string{"system/Patient.rs", "system/Observation.read", "system/Condition.rs", "patient/Patient.rs"}, "", "system/Patient.rs system/Observation.read"},
			{"RS384 JWKS by URL", rsApp, assertion(t, e.rsKey, rsApp, tokenURL, nil), []string{"system/Observation.rs"}, "", "system/Observation.rs"},
			{"v2 permissions narrowed", esApp, assertion(t, e.esKey, esApp, tokenURL, nil), []string{"system/Patient.cruds"}, "", "system/Patient.rs"},
			{"replayed assertion", esApp, replayed, []string{"system/Patient.rs"}, "invalid_client", ""},
			{"no registered scopes", noScopesApp, assertion(t, e.esKey, noScopesApp, tokenURL, nil), []string{"system/Patient.rs"}, "invalid_scope", ""},
			{"nothing registered requested", esApp, assertion(t, e.esKey, esApp, tokenURL, nil), []string{"system/Condition.rs"}, "invalid_scope", ""},
			{"wrong aud", esApp, assertion(t, e.esKey, esApp, "https://other.example/token", nil), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"exp too far", esApp, assertion(t, e.esKey, esApp, tokenURL, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(time.Hour)) }), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"expired", esApp, assertion(t, e.esKey, esApp, tokenURL, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-5 * time.Minute)) }), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"no jti", esApp, assertion(t, e.esKey, esApp, tokenURL, func(c *jwt.Claims) { c.ID = "" }), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"sub not client", esApp, assertion(t, e.esKey, esApp, tokenURL, func(c *jwt.Claims) { c.Subject = "someone" }), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"forged signature", esApp, assertion(t, otherKey, esApp, tokenURL, nil), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"ES256 not accepted", esApp, assertion(t, signingKey{mustP256(t), jose.ES256, "es-1"}, esApp, tokenURL, nil), []string{"system/Patient.rs"}, "invalid_client", ""},
			{"public client cannot use client_credentials", publicApp, "", []string{"patient/Patient.rs"}, "invalid_grant", ""}, // fosite: invalid_grant for a public client
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var tok *oauth2.Token
				var err error
				if tc.assertion == "" {
					var out map[string]any
					out, err = e.tokenForm(url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.client}, "scope": {strings.Join(tc.scopes, " ")}})
					_ = out
				} else {
					tok, err = e.backend(tc.client, tc.assertion, tc.scopes...)
				}
				if tc.want != "" {
					if got := oauthCode(err); got != tc.want {
						t.Errorf("token (%s) = %v, want %s", tc.name, err, tc.want)
					}
					return
				}
				if err != nil {
					t.Fatalf("token (%s) = %v", tc.name, err)
				}
				if got := tok.Extra("scope"); got != tc.wantScope {
					t.Errorf("token (%s) scope = %v, want %q", tc.name, got, tc.wantScope)
				}
				if tok.RefreshToken != "" {
					t.Errorf("token (%s) has a refresh token", tc.name)
				}
				p, err := e.srv.Verifier().Verify(context.Background(), tok.AccessToken)
				if err != nil || p.Subject != tc.client || p.ClientID != tc.client || p.Patient != "" {
					t.Errorf("Verify(%s token) = %+v, %v", tc.name, p, err)
				}
			})
		}
	})
}

func mustP256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRevocationAndIntrospection(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tokenURL := e.issuer + authz.PathToken
		tok, err := e.backend(esApp, assertion(t, e.esKey, esApp, tokenURL, nil), "system/Patient.rs")
		if err != nil {
			t.Fatal(err)
		}
		introspect := func(token string, withAssertion bool) (int, map[string]any) {
			f := url.Values{"token": {token}}
			if withAssertion {
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
				f.Set("client_assertion", assertion(t, e.esKey, esApp, e.issuer+authz.PathIntrospect, nil))
			}
			resp, err := http.PostForm(e.issuer+authz.PathIntrospect, f)
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			return resp.StatusCode, out
		}
		if status, out := introspect(tok.AccessToken, true); status != 200 || out["active"] != true || out["scope"] != "system/Patient.rs" || out["client_id"] != esApp {
			t.Errorf("introspect(live token) = %d %v, want active", status, out)
		}
		if status, _ := introspect(tok.AccessToken, false); status != http.StatusUnauthorized {
			t.Errorf("introspect without a client assertion = %d, want 401", status)
		}
		if status, out := introspect("egr_unknown", true); status != 200 || out["active"] != false {
			t.Errorf("introspect(unknown) = %d %v, want inactive", status, out)
		}
		// Revoke (RFC 7009), authenticated with a client assertion.
		resp, err := http.PostForm(e.issuer+authz.PathRevoke, url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion(t, e.esKey, esApp, tokenURL, nil)}})
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke = %d, want 200", resp.StatusCode)
		}
		assertRevoked(t, e, tok.AccessToken)
		if _, out := introspect(tok.AccessToken, true); out["active"] != false {
			t.Errorf("introspect(revoked) = %v, want inactive", out)
		}
		if ok, err := e.srv.Revoked(ctx, "never-issued"); ok || err != nil {
			t.Errorf("Revoked(never issued) = %v, %v, want false", ok, err)
		}
	})
}

func TestRevokeRefreshTokenRevokesGrant(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(e.issuer+authz.PathRevoke, url.Values{"token": {tok.RefreshToken}, "client_id": {publicApp}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke(refresh token) = %d", resp.StatusCode)
	}
	assertRevoked(t, e, tok.AccessToken)
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); oauthCode(err) != "invalid_grant" {
		t.Errorf("refresh after revocation = %v, want invalid_grant", err)
	}
}

func TestPickerCSRF(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs")
	authURL := e.authURL(cfg, "state-123456", verifier())
	p := e.openPicker(authURL, "dr-who")
	other := e.openPicker(e.authURL(cfg, "state-654321", verifier()), "dr-who")
	choose := url.Values{"action": {"choose"}, "patient": {"conn_a/p1"}}
	tests := []struct {
		name   string
		p      picker
		person string
		want   int
	}{
		{"no token", picker{request: p.request}, "dr-who", http.StatusForbidden},
		{"forged token", picker{csrf: "forged", request: p.request}, "dr-who", http.StatusForbidden},
		{"another person", p, "mallory", http.StatusForbidden},
		{"another request's token", picker{csrf: other.csrf, request: p.request}, "dr-who", http.StatusForbidden},
		{"request changed", picker{csrf: p.csrf, request: strings.Replace(p.request, "state-123456", "state-evil-1", 1)}, "dr-who", http.StatusForbidden},
		{"not signed in", p, "", http.StatusForbidden},
		{"unknown patient", p, "dr-who", http.StatusOK},
		{"the right one", p, "dr-who", http.StatusSeeOther},
		{"used twice", p, "dr-who", http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := choose
			if tc.name == "unknown patient" {
				f = url.Values{"action": {"choose"}, "patient": {"conn_a/nobody"}}
			}
			resp := e.post(tc.p, tc.person, f)
			b := body(t, resp)
			if resp.StatusCode != tc.want && !(tc.want == http.StatusSeeOther && resp.StatusCode == http.StatusFound) {
				t.Errorf("POST pick (%s) = %d, want %d: %s", tc.name, resp.StatusCode, tc.want, b)
			}
		})
	}
	if !strings.Contains(p.body, "frame") && p.csrf == "" {
		t.Errorf("picker page without CSRF token")
	}
}

func TestPickerHeaders(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs")
	resp := e.get(e.authURL(cfg, "state-123456", verifier()), "dr-who")
	b := body(t, resp)
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("picker header %s = %q, want %q", h, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("picker CSP = %q", csp)
	}
	if strings.Contains(b, "<script") || strings.Contains(b, "http://") && strings.Contains(b, "cdn") {
		t.Errorf("picker page loads scripts or a CDN")
	}
}

func TestVerifierRefusesExpiredAndForged(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	tok, err := e.backend(esApp, assertion(t, e.esKey, esApp, e.issuer+authz.PathToken, nil), "system/Patient.rs")
	if err != nil {
		t.Fatal(err)
	}
	// forged: same header and claims, signed by another key.
	parts := strings.Split(tok.AccessToken, ".")
	var hdr struct {
		Kid string `json:"kid"`
	}
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(hb, &hdr)
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: mustEC(t)}, (&jose.SignerOptions{}).WithHeader("kid", hdr.Kid))
	obj, _ := signer.Sign(pb)
	forged, _ := obj.CompactSerialize()
	// tampered: the payload changed under the original signature.
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(pb), esApp, rsApp, -1))) + "." + parts[2]

	later := time.Now().Add(2 * time.Hour)
	tests := []struct {
		name  string
		token string
		now   *time.Time
		ok    bool
	}{
		{"live", tok.AccessToken, nil, true},
		{"expired", tok.AccessToken, &later, false},
		{"forged", forged, nil, false},
		{"tampered", tampered, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.now = tc.now
			defer func() { e.now = nil }()
			_, err := e.srv.Verifier().Verify(ctx, tc.token)
			if (err == nil) != tc.ok {
				t.Errorf("Verify(%s) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	get := func() (*oauth2.Token, string) {
		tok, err := e.backend(esApp, assertion(t, e.esKey, esApp, e.issuer+authz.PathToken, nil), "system/Patient.rs")
		if err != nil {
			t.Fatal(err)
		}
		h, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[0])
		var hdr struct{ Kid string }
		json.Unmarshal(h, &hdr)
		return tok, hdr.Kid
	}
	before, oldKid := get()
	newKid, err := e.srv.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, kid := get()
	if kid != newKid || kid == oldKid {
		t.Errorf("token after rotation signed by %s, want %s", kid, newKid)
	}
	for _, tok := range []*oauth2.Token{before, after} {
		if _, err := e.srv.Verifier().Verify(ctx, tok.AccessToken); err != nil {
			t.Errorf("Verify after rotation = %v", err)
		}
	}
	resp, err := http.Get(e.issuer + authz.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if len(set.Keys) != 2 || len(set.Key(oldKid)) != 1 || len(set.Key(newKid)) != 1 {
		t.Errorf("JWKS after rotation has %d keys, want the old and the new", len(set.Keys))
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("JWKS publishes a private key")
		}
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	resp, err := http.Get(e.audience + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != 200 || d["issuer"] != e.issuer || d["token_endpoint"] != e.issuer+authz.PathToken {
		t.Fatalf("discovery = %d %v", resp.StatusCode, d)
	}
	want := map[string][]string{
		"code_challenge_methods_supported":                 {"S256"},
		"token_endpoint_auth_signing_alg_values_supported": {"ES384", "RS384"},
	}
	for k, w := range want {
		got, _ := json.Marshal(d[k])
		wb, _ := json.Marshal(w)
		if string(got) != string(wb) {
			t.Errorf("discovery %s = %s, want %s", k, got, wb)
		}
	}
	caps, _ := json.Marshal(d["capabilities"])
	for _, c := range []string{"launch-standalone", "context-standalone-patient", "client-public", "client-confidential-asymmetric", "permission-v1", "permission-v2", "permission-offline"} {
		if !strings.Contains(string(caps), `"`+c+`"`) {
			t.Errorf("discovery capabilities %s lack %s", caps, c)
		}
	}
}

func TestStateHoldsNoSecrets(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st)
	ctx := context.Background()
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
	code := loc.Query().Get("code")
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	// Codes, tokens, the PKCE verifier, and the patient (Documents hold no
	// patient data in the clear).
	secretsSeen := []string{code, tok.AccessToken, tok.RefreshToken, strings.Split(tok.AccessToken, ".")[2], v, "conn-a.p1", "conn_a"}
	for _, kind := range []string{"authz-keys", "authz-code", "authz-pkce", "authz-access", "authz-refresh", "authz-family", "authz-revoked", "authz-assertion", "authz-pending"} {
		names, err := st.ListDocuments(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			d, err := st.GetDocument(ctx, kind, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secretsSeen {
				if strings.Contains(n, s) || strings.Contains(string(d.Body), s) {
					t.Errorf("document %s/%s holds a code or token", kind, n)
				}
			}
			if kind == "authz-keys" && (strings.Contains(string(d.Body), `"d":`) || strings.Contains(string(d.Body), `\"d\"`)) {
				t.Errorf("the signing key is stored in the clear")
			}
		}
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	if _, err := e.backend(esApp, assertion(t, e.esKey, esApp, e.issuer+authz.PathToken, nil), "system/Patient.rs"); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(72 * time.Hour)
	e.now = &later
	n, err := e.srv.Purge(context.Background())
	if err != nil || n < 3 { // the assertion jti, the access token, its family
		t.Errorf("Purge() = %d, %v, want at least 3 documents", n, err)
	}
}

// TestConcurrentRefresh: of several concurrent refreshes with one token at
// most one succeeds (the store's atomic update decides); the others count
// as reuse.
func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	if ok > 1 {
		t.Errorf("%d of %d concurrent refreshes with one token succeeded, want at most 1", ok, n)
	}
}

func TestOnlineAccess(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st)
	reg := clients.NewRegistry(st)
	if _, err := reg.Add(context.Background(), clients.Client{ID: "online-app", Public: true, RedirectURIs: []string{redirectURI},
		Scopes: []string{"launch/patient", "patient/Observation.rs", "online_access"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "online_access", "offline_access")
	cfg.ClientID = "online-app"
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
	tok, err := cfg.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != "launch/patient patient/Observation.rs online_access" {
		t.Fatalf("Exchange with online_access = scope %v, refresh %v; want online_access and a refresh token", tok.Extra("scope"), tok.RefreshToken != "")
	}
	// Its refresh token lives 12h, not 30 days: introspect it.
	f := url.Values{"token": {tok.RefreshToken}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assertion(t, e.esKey, esApp, e.issuer+authz.PathIntrospect, nil)}}
	resp, err := http.PostForm(e.issuer+authz.PathIntrospect, f)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	exp, _ := out["exp"].(float64)
	if out["active"] != true || time.Until(time.Unix(int64(exp), 0)) > 13*time.Hour {
		t.Errorf("introspect(online refresh token) = %v, want active and expiring within 12h", out)
	}
}

// TestReplicas: two servers on one store (one issuer behind a load
// balancer) share codes, tokens, revocations and assertion jtis.
func TestReplicas(t *testing.T) {
	backends(t, func(t *testing.T, a *env) {
		ctx := context.Background()
		b, err := authz.New(ctx, a.opts)
		if err != nil {
			t.Fatal(err)
		}
		bHTTP := httptest.NewServer(server.New(server.Options{Routes: b.Routes()}).Handler())
		defer bHTTP.Close()
		tokenURL := a.issuer + authz.PathToken // the issuer's, whichever replica answers

		// An assertion used at A is a replay at B.
		as := assertion(t, a.esKey, esApp, tokenURL, nil)
		tok, err := a.backend(esApp, as, "system/Patient.rs")
		if err != nil {
			t.Fatal(err)
		}
		cc := clientcredentials.Config{ClientID: esApp, TokenURL: bHTTP.URL + authz.PathToken, Scopes: []string{"system/Patient.rs"}, AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {as}}}
		if _, err := cc.Token(ctx); oauthCode(err) != "invalid_client" {
			t.Errorf("the same assertion at replica B = %v, want invalid_client", err)
		}
		// A's token verifies at B; revoked at B, A refuses it.
		if _, err := b.Verifier().Verify(ctx, tok.AccessToken); err != nil {
			t.Errorf("B.Verify(A's token) = %v", err)
		}
		resp, err := http.PostForm(bHTTP.URL+authz.PathRevoke, url.Values{"token": {tok.AccessToken},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion(t, a.esKey, esApp, tokenURL, nil)}})
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		assertRevoked(t, a, tok.AccessToken)

		// A code from A redeemed at B; its refresh token rotated at B, the
		// old one reused at A.
		cfg := a.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
		v := verifier()
		loc := a.launch(a.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
		cfgB := *cfg
		cfgB.Endpoint.TokenURL = bHTTP.URL + authz.PathToken
		first, err := cfgB.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatalf("B.Exchange(A's code) = %v", err)
		}
		if _, err := cfgB.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token(); err != nil {
			t.Fatalf("refresh at B = %v", err)
		}
		if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token(); oauthCode(err) != "invalid_grant" {
			t.Errorf("rotated refresh token reused at A = %v, want invalid_grant", err)
		}
		assertRevoked(t, a, first.AccessToken)
	})
}

// TestConfidentialLaunch: a confidential app (redirect URIs and keys)
// runs the standalone launch and redeems the code with a client assertion
// (client-confidential-asymmetric); without one it is refused.
func TestConfidentialLaunch(t *testing.T) {
	st := openSQLite(t)
	e := newEnv(t, st)
	ctx := context.Background()
	if _, err := clients.NewRegistry(st).Add(ctx, clients.Client{ID: "conf-app", RedirectURIs: []string{redirectURI}, JWKS: e.esKey.jwks(),
		Scopes: []string{"launch/patient", "patient/Observation.rs"}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs")
	cfg.ClientID = "conf-app"
	for _, withAssertion := range []bool{false, true} {
		v := verifier()
		loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
		opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(v)}
		if withAssertion {
			opts = append(opts, oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
				oauth2.SetAuthURLParam("client_assertion", assertion(t, e.esKey, "conf-app", e.issuer+authz.PathToken, nil)))
		}
		tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), opts...)
		switch {
		case !withAssertion && oauthCode(err) != "invalid_client":
			t.Errorf("Exchange(confidential app, no assertion) = %v, want invalid_client", err)
		case withAssertion && err != nil:
			t.Errorf("Exchange(confidential app, assertion) = %v", err)
		case withAssertion && tok.Extra("patient") != "conn-a.p1":
			t.Errorf("Exchange(confidential app) patient = %v, want conn-a.p1", tok.Extra("patient"))
		}
	}
}

// TestRewrapKeys: after a KEK rotation the signing key is re-sealed under
// the new KEK; once the old KEK is gone, tokens are still issued.
func TestRewrapKeys(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	newKEK, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Keyring.Set(newKEK, e.kek)
	if err := e.srv.RewrapKeys(ctx); err != nil {
		t.Fatalf("RewrapKeys = %v", err)
	}
	e.opts.Keyring.Set(newKEK) // the old KEK retired
	b, err := authz.New(ctx, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	bHTTP := httptest.NewServer(server.New(server.Options{Routes: b.Routes()}).Handler())
	defer bHTTP.Close()
	cc := clientcredentials.Config{ClientID: esApp, TokenURL: bHTTP.URL + authz.PathToken, Scopes: []string{"system/Patient.rs"}, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assertion(t, e.esKey, esApp, e.issuer+authz.PathToken, nil)}}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("token after the KEK rotation = %v", err)
	}
	if _, err := e.srv.Verifier().Verify(ctx, tok.AccessToken); err != nil {
		t.Errorf("Verify(token signed after re-wrap) = %v", err)
	}
}

// TestRewrapKeepsGrantsAlive: a refresh token issued before a KEK
// rotation still refreshes after Rewrap, once the old KEK is gone (its
// grant's session, naming the patient, was sealed under the old KEK).
func TestRewrapKeepsGrantsAlive(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	cfg := e.oauthConfig("launch/patient", "patient/Observation.rs", "offline_access")
	v := verifier()
	loc := e.launch(e.authURL(cfg, "state-123456", v), "dr-who", "lovelace", "conn_a/p1")
	first, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	newKEK, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Keyring.Set(newKEK, e.kek)
	n, err := authz.Rewrap(ctx, e.opts.Docs, e.opts.Keyring)
	if err != nil || n < 2 {
		t.Fatalf("Rewrap = %d, %v; want the signing key and the grant's sessions", n, err)
	}
	e.opts.Keyring.Set(newKEK) // the old KEK retired
	second, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh after the KEK rotation = %v", err)
	}
	if second.Extra("patient") != "conn-a.p1" {
		t.Errorf("refreshed patient = %v, want conn-a.p1", second.Extra("patient"))
	}
}

// TestAuditScopesOnlyForAuditors: an app registered for the audit trail
// gets AuditEvent scopes only when the person authorizing it may audit.
func TestAuditScopesOnlyForAuditors(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	for person, want := range map[string]bool{"dr-who": false, "auditor-ann": true} {
		cfg := e.oauthConfig("user/AuditEvent.rs", "patient/Observation.rs", "launch/patient")
		v := verifier()
		loc := e.launch(e.authURL(cfg, "state-123456", v), person, "lovelace", "conn_a/p1")
		tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatalf("%s: %v", person, err)
		}
		if got := strings.Contains(fmt.Sprint(tok.Extra("scope")), "AuditEvent"); got != want {
			t.Errorf("%s authorized scope %q; AuditEvent granted %v, want %v", person, tok.Extra("scope"), got, want)
		}
	}
}
