package smartauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"ehrgate/ehrsim"
)

// Keys are generated once per test binary: RSA generation is slow.
var (
	keysOnce  sync.Once
	serverKey *rsa.PrivateKey
	rsaKey    *rsa.PrivateKey
	ecKey     *ecdsa.PrivateKey
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if serverKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// jwksOf returns the public JWK Set of a key with the kid.
func jwksOf(t testing.TB, key crypto.Signer, kid, alg string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// simData is the FHIR data behind every test server.
var simData = []string{
	`{"resourceType":"Patient","id":"p1","name":[{"family":"Smith","given":["John"]}],"gender":"male","birthDate":"1970-01-01"}`,
	`{"resourceType":"Patient","id":"p2","name":[{"family":"Jones","given":["Mary"]}],"gender":"female","birthDate":"1985-06-15"}`,
	`{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"}}`,
	`{"resourceType":"Observation","id":"o2","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"subject":{"reference":"Patient/p1"}}`,
	`{"resourceType":"Observation","id":"o3","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"subject":{"reference":"Patient/p2"}}`,
	`{"resourceType":"Condition","id":"c1","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`,
	`{"resourceType":"Condition","id":"c2","code":{"text":"y"},"subject":{"reference":"Patient/p2"}}`,
	`{"resourceType":"Medication","id":"m1","code":{"text":"aspirin"}}`,
}

// Test client ids.
const (
	pubApp     = "pub-app"     // public, EHR + standalone launch
	secretApp  = "secret-app"  // confidential symmetric
	rsaBackend = "rsa-backend" // private_key_jwt, inline JWKS, RS384
	ecBackend  = "ec-backend"  // private_key_jwt, JWKS URL, ES384
)

// env is a simulated EHR with SMART in front, and a fake app that
// receives launches and callbacks.
type env struct {
	t      *testing.T
	auth   *Server
	ts     *httptest.Server // the EHR: /fhir and /auth
	app    *httptest.Server // the app: /launch, /callback, /jwks
	issuer string

	mu        sync.Mutex
	callbacks []url.Values
	verifier  string
	launchCfg *oauth2.Config
}

// newEnv starts an environment; mutate adjusts the options.
func newEnv(t *testing.T, mutate func(*Options)) *env {
	t.Helper()
	return newEnvSim(t, ehrsim.Options{}, mutate)
}

// newEnvSim is newEnv with simulator options.
func newEnvSim(t *testing.T, simOpts ehrsim.Options, mutate func(*Options)) *env {
	t.Helper()
	keys(t)
	sim := ehrsim.New(simOpts)
	for _, raw := range simData {
		if err := sim.Load(json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t}
	e.ts = httptest.NewUnstartedServer(nil)
	e.issuer = "http://" + e.ts.Listener.Addr().String() + "/fhir"
	e.app = httptest.NewServer(http.HandlerFunc(e.serveApp))
	t.Cleanup(e.app.Close)

	opts := Options{
		Issuer: e.issuer,
		Clients: []Client{
			{ID: pubApp, Public: true, RedirectURIs: []string{e.app.URL + "/callback"}, LaunchURL: e.app.URL + "/launch"},
			{ID: secretApp, Secret: "s3cret", RedirectURIs: []string{e.app.URL + "/callback"},
				Scopes: []string{"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs", "system/Observation.rs"}},
			{ID: rsaBackend, JWKS: jwksOf(t, rsaKey, "rsa1", "RS384"), Scopes: []string{"system/*.rs"}},
			{ID: ecBackend, JWKSURL: e.app.URL + "/jwks", Scopes: []string{"system/Observation.rs", "system/Patient.rs"}},
		},
		SigningKey: serverKey,
		Patients: func() []PatientChoice {
			return []PatientChoice{{ID: "p1", Name: "John Smith", Encounter: "e1"}, {ID: "p2", Name: "Mary Jones"}}
		},
	}
	if mutate != nil {
		mutate(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.auth = s
	e.ts.Config.Handler = WithSMART(sim.Handler(), s)
	e.ts.Start()
	t.Cleanup(e.ts.Close)
	return e
}

// serveApp is the fake SMART app.
func (e *env) serveApp(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/callback":
		e.mu.Lock()
		e.callbacks = append(e.callbacks, r.URL.Query())
		e.mu.Unlock()
		_, _ = io.WriteString(w, "app callback")
	case "/launch":
		e.mu.Lock()
		cfg, v := e.launchCfg, e.verifier
		e.mu.Unlock()
		q := r.URL.Query()
		http.Redirect(w, r, cfg.AuthCodeURL("st-launch", oauth2.S256ChallengeOption(v),
			oauth2.SetAuthURLParam("aud", q.Get("iss")), oauth2.SetAuthURLParam("launch", q.Get("launch"))), http.StatusFound)
	case "/jwks":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwksOf(e.t, ecKey, "ec1", "ES384"))
	default:
		http.NotFound(w, r)
	}
}

// lastCallback returns the query of the app's latest callback.
func (e *env) lastCallback() url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.callbacks) == 0 {
		e.t.Fatal("the app received no callback")
	}
	return e.callbacks[len(e.callbacks)-1]
}

// oauthConfig is an x/oauth2 configuration for a client.
func (e *env) oauthConfig(clientID, secret string, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, Scopes: scopes,
		RedirectURL: e.app.URL + "/callback",
		Endpoint: oauth2.Endpoint{
			AuthURL: e.auth.authorizeURL(), TokenURL: e.auth.tokenURL(), AuthStyle: style,
		},
	}
}

// browser is a user agent with cookies that follows redirects.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenRE = regexp.MustCompile(`name="(csrf|req)" value="([^"]*)"`)

// hidden returns the page's csrf and req fields.
func hidden(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], m[2])
	}
	return v
}

// flow drives the pages after an authorize request until the app's
// callback: logs in, picks the patient, gives the decision. It returns the
// callback query.
func (e *env) flow(b *browser, resp *http.Response, body, patient, decision string) url.Values {
	e.t.Helper()
	for range 6 {
		u := resp.Request.URL
		if strings.HasPrefix(u.String(), e.app.URL) {
			return e.lastCallback()
		}
		f := hidden(body)
		switch u.Path {
		case "/auth/login":
			f.Set("username", "dr.smith")
			f.Set("password", "password")
		case "/auth/picker":
			f.Set("patient", patient)
		case "/auth/consent":
			f.Set("decision", decision)
		default:
			e.t.Fatalf("flow reached %s (status %d): %.300s", u.Path, resp.StatusCode, body)
		}
		resp, body = b.post(e.ts.URL+u.Path, f)
	}
	e.t.Fatal("flow did not reach the app")
	return nil
}

// standalone runs a standalone authorization for the client and returns
// the code and verifier.
func (e *env) standalone(clientID, secret, scope, patient string) (string, string) {
	e.t.Helper()
	v := oauth2.GenerateVerifier()
	cfg := e.oauthConfig(clientID, secret, strings.Fields(scope)...)
	b := newBrowser(e.t)
	resp, body := b.get(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("aud", e.issuer)))
	cb := e.flow(b, resp, body, patient, "allow")
	if cb.Get("code") == "" || cb.Get("state") != "st-1" {
		e.t.Fatalf("callback = %v, want a code and state st-1", cb)
	}
	return cb.Get("code"), v
}

// tokenForm posts a form to the token endpoint and decodes the answer.
func (e *env) tokenForm(form url.Values, basicUser, basicPass string) (int, map[string]any) {
	e.t.Helper()
	return e.postJSON(e.auth.tokenURL(), form, basicUser, basicPass)
}

func (e *env) postJSON(u string, form url.Values, basicUser, basicPass string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// fhirGet GETs a FHIR path with a bearer token ("" = none).
func (e *env) fhirGet(path, token string, hdr ...string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.fhirDo(req)
}

func (e *env) fhirDo(req *http.Request) (*http.Response, map[string]any) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// ids returns the resource ids of a Bundle's entries.
func ids(bundle map[string]any) []string {
	var out []string
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		res, _ := e.(map[string]any)["resource"].(map[string]any)
		out = append(out, res["id"].(string))
	}
	return out
}

// mint issues an access token directly, for Protect tests.
func (e *env) mint(patient string, scopes ...string) string {
	now := e.auth.now()
	return e.auth.st.issue(tokenInfo{
		kind: kindAccess, clientID: pubApp, scopes: scopes, patient: patient,
		issued: now, expires: now.Add(e.auth.opts.AccessTokenTTL), grant: randomToken(),
	})
}

// assertion mints a client assertion.
type assertionSpec struct {
	key      crypto.Signer
	alg      jose.SignatureAlgorithm
	kid      string
	iss, sub string
	aud      string
	exp      time.Duration // from now; 0 = no exp
	iat      time.Duration
	jti      string
	jku      string // header; "" = none
}

func (e *env) assertion(a assertionSpec) string {
	e.t.Helper()
	so := (&jose.SignerOptions{}).WithType("JWT")
	if a.jku != "" {
		so = so.WithHeader("jku", a.jku)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: a.alg, Key: jose.JSONWebKey{Key: a.key, KeyID: a.kid}}, so)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now()
	c := jwt.Claims{Issuer: a.iss, Subject: a.sub, Audience: jwt.Audience{a.aud}, ID: a.jti, IssuedAt: jwt.NewNumericDate(now.Add(a.iat))}
	if a.exp != 0 {
		c.Expiry = jwt.NewNumericDate(now.Add(a.exp))
	}
	out, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// rsaAssertion is a valid RS384 assertion for rsaBackend.
func (e *env) rsaAssertion() assertionSpec {
	return assertionSpec{key: rsaKey, alg: jose.RS384, kid: "rsa1", iss: rsaBackend, sub: rsaBackend,
		aud: e.auth.tokenURL(), exp: 4 * time.Minute, jti: randomToken()}
}

// backendForm is a client_credentials request with an assertion.
func backendForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {AssertionType}, "client_assertion": {assertion},
	}
}

// jsonDecode decodes one JSON value from r.
func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// ctx is the tests' context.
func ctx(t *testing.T) context.Context { return t.Context() }

// jsonUnmarshal is json.Unmarshal.
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
