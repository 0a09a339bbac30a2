package refresh_test

// End-to-end tests of a sync through SMART on FHIR with the real pieces:
// refresh.Syncer + smart.TokenSource + fhir.Client against ehrsim behind its
// SMART authorization server (ehrsim/smartauth), tokens and keys in an
// encrypted SQLite store. Each test names the failure it would catch.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/ehrsim/smartauth"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/smart"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

const (
	backendClient = "ehrgate-backend"
	launchClient  = "ehrgate-launch"
)

// smartEnv is a simulated EHR behind its SMART authorization server, and
// ehrgate's side: an encrypted token vault and signing keys in SQLite.
type smartEnv struct {
	t       *testing.T
	sim     *ehrsim.Server
	auth    *smartauth.Server
	base    string // FHIR base (the SMART iss and aud)
	st      *sqlite.Store
	ring    *secrets.Keyring
	keys    *smart.KeyManager
	vault   *smart.Vault
	disc    *smart.Discoverer
	offset  atomic.Int64                   // added to time.Now by every clock of the test (ns)
	tokens  atomic.Int64                   // requests to the token endpoint
	issued  atomic.Int64                   // token endpoint answers 200
	fhir401 atomic.Int64                   // FHIR requests answered 401
	fhirN   atomic.Int64                   // FHIR requests
	onFHIR  func(n int64, r *http.Request) // called with the count before each FHIR request is served; set before syncing
	jwks    *jwksServer                    // ehrgate's published JWKS, for clients registered by URL
	handler atomic.Pointer[http.Handler]
}

type envOptions struct {
	patients int
	faults   ehrsim.Faults
	auth     func(*smartauth.Options)
	keys     smart.KeyOptions
	backend  func(*smartEnv, *smartauth.Client) // adjusts the backend client registration
}

// now is the clock shared by both sides; tests move it with e.offset.
func (e *smartEnv) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

func newSmartEnv(t *testing.T, o envOptions) *smartEnv {
	t.Helper()
	ctx := t.Context()
	if o.patients == 0 {
		o.patients = 5
	}
	e := &smartEnv{t: t}
	e.sim = ehrsim.New(ehrsim.Options{Faults: o.faults})
	gen := synth.New(synth.Options{Patients: o.patients, Seed: 3})
	if err := gen.Each(func(_ string, raw json.RawMessage) error { return e.sim.Load(raw) }); err != nil {
		t.Fatal(err)
	}

	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.ring = st, secrets.NewKeyring(kek)
	o.keys.Now = e.now
	e.keys = smart.NewKeyManager(st, e.ring, o.keys)
	if _, err := e.keys.Rotate(ctx, smart.ES384); err != nil {
		t.Fatal(err)
	}
	e.vault = smart.NewVault(st, e.ring, e.now)
	e.disc = smart.NewDiscoverer(nil, e.now)
	e.jwks = &jwksServer{h: e.keys.JWKSHandler()}
	jwksSrv := httptest.NewServer(e.jwks)
	t.Cleanup(jwksSrv.Close)
	e.jwks.url = jwksSrv.URL + "/.well-known/jwks.json"

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + ln.Addr().String() + "/fhir"
	inline, err := e.keys.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(inline)
	backend := smartauth.Client{ID: backendClient, JWKS: raw, TokenEndpointAuth: "private_key_jwt", Scopes: []string{"system/*.rs"}}
	if o.backend != nil {
		o.backend(e, &backend)
	}
	opts := smartauth.Options{Issuer: e.base, Clients: []smartauth.Client{backend}, Clock: e.now, RotateRefreshTokens: true}
	if o.auth != nil {
		o.auth(&opts)
	}
	e.auth, err = smartauth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.setHandler(smartauth.WithSMART(e.sim.Handler(), e.auth))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return e
}

func (e *smartEnv) setHandler(h http.Handler) { e.handler.Store(&h) }

// serve counts token requests and 401s around the simulator.
func (e *smartEnv) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	if strings.HasPrefix(r.URL.Path, "/fhir/") && !strings.HasSuffix(r.URL.Path, "/metadata") && !strings.Contains(r.URL.Path, ".well-known") {
		if n := e.fhirN.Add(1); e.onFHIR != nil {
			e.onFHIR(n, r)
		}
	}
	(*e.handler.Load()).ServeHTTP(rec, r)
	switch {
	case r.URL.Path == "/auth/token":
		e.tokens.Add(1)
		if rec.status == 200 {
			e.issued.Add(1)
		}
	case strings.HasPrefix(r.URL.Path, "/fhir/") && rec.status == http.StatusUnauthorized:
		e.fhir401.Add(1)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

// jwksServer serves ehrgate's JWKS and counts fetches.
type jwksServer struct {
	h       http.Handler
	url     string
	fetches atomic.Int64
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.fetches.Add(1)
	j.h.ServeHTTP(w, r)
}

// backendSource is a backend-services TokenSource for connection.
func (e *smartEnv) backendSource(connection string, skew time.Duration) *smart.TokenSource {
	e.t.Helper()
	ts, err := smart.NewTokenSource(smart.TokenSourceOptions{
		Client: smart.ClientConfig{Connection: connection, FHIRBaseURL: e.base, ClientID: backendClient,
			AuthMethod: smart.AuthPrivateKeyJWT,
			Scopes:     smart.ScopeRequest{Context: smart.ContextSystem, Types: refresh.ChartTypes}},
		Grant: smart.GrantClientCredentials, Vault: e.vault, Discoverer: e.disc, Keys: e.keys, Skew: skew, Now: e.now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ts
}

// syncer syncs connection through ts into the env's store.
func (e *smartEnv) syncer(connection string, ts *smart.TokenSource, workers int) *refresh.Syncer {
	e.t.Helper()
	c, err := fhir.NewClient(e.base, fhir.Options{Connection: connection, Authorizer: ts,
		Retry: fhir.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}})
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := refresh.New(c, e.st, refresh.Options{Connection: connection, Workers: workers, PageSize: 20})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// storeCounts returns the store's current resources per type for connection.
func (e *smartEnv) storeCounts(connection string) map[string]int {
	e.t.Helper()
	stats, err := e.st.Stats(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string]int{}
	for _, tc := range stats.Resources {
		if tc.Connection == connection {
			got[tc.Type] += tc.Count
		}
	}
	return got
}

func (e *smartEnv) assertStoreMatchesSim(connection string) {
	e.t.Helper()
	got := e.storeCounts(connection)
	for typ, n := range e.sim.Counts() {
		if got[typ] != n {
			e.t.Errorf("store holds %d %s on %s; the simulator serves %d", got[typ], typ, connection, n)
		}
	}
}

// An access token that expires while a sync is running is refreshed
// transparently: no fetch fails, the store ends up with everything the
// simulator serves, and the server issued more than one token. Two ways:
// short-lived tokens the TokenSource renews before expiry (1s, the least
// expires_in can say; the sync is slowed past it), and a token the server
// stops honouring before its expiry mid-sync (revoked, or the EHR's clock
// runs ahead), which only the refresh-once-after-401 path survives.
func TestSMARTSyncRefreshesAnAccessTokenExpiringMidSync(t *testing.T) {
	tests := []struct {
		name     string
		ttl      time.Duration
		killAt   int64 // the FHIR request at which the server revokes the token it carries (0: never)
		want401s bool
		faults   ehrsim.Faults
	}{
		{name: "short-lived tokens", ttl: time.Second,
			faults: ehrsim.Faults{Rate: 0.3, Kinds: []ehrsim.FaultKind{ehrsim.FaultSlow}, SlowDelay: 150 * time.Millisecond, Seed: 7}},
		{name: "server drops the token mid-sync", ttl: time.Hour, killAt: 25, want401s: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSmartEnv(t, envOptions{
				patients: 12,
				faults:   tc.faults,
				auth:     func(o *smartauth.Options) { o.AccessTokenTTL = tc.ttl },
			})
			if tc.killAt > 0 {
				e.onFHIR = func(n int64, r *http.Request) {
					if n == tc.killAt {
						e.auth.Revoke(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
					}
				}
			}
			ts := e.backendSource("expiring", time.Millisecond)
			start := time.Now()
			sum, err := e.syncer("expiring", ts, 2).Run(t.Context())
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tc.killAt == 0 && took < 2*tc.ttl {
				t.Fatalf("the sync took %v; it must outlast a %v token for this test to mean anything", took, tc.ttl)
			}
			if sum.Errors != 0 {
				t.Errorf("sync errors = %d, want 0 (the expiring token must be refreshed transparently)", sum.Errors)
			}
			e.assertStoreMatchesSim("expiring")
			if n := e.issued.Load(); n < 2 {
				t.Errorf("the authorization server issued %d tokens during a %v sync, want more than 1", n, took)
			}
			if bad := e.tokens.Load() - e.issued.Load(); bad != 0 {
				t.Errorf("%d token requests were refused", bad)
			}
			if got := e.fhir401.Load(); tc.want401s && got == 0 {
				t.Errorf("no FHIR request was answered 401; the token was not dropped mid-sync")
			}
			t.Logf("sync took %v; %d tokens issued; %d FHIR requests answered 401 and retried", took, e.issued.Load(), e.fhir401.Load())
		})
	}
}

// launchApp is ehrgate's side of user launches: a Launcher mounted at
// /launch, /login and /callback of a test server, registered with the
// simulator as a public app.
type launchApp struct {
	url string
	mu  sync.Mutex
	res *smart.LaunchResult
}

func (a *launchApp) result() *smart.LaunchResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.res
}

// newLaunchApp starts ehrgate's launch endpoints for connection; transport,
// when not nil, carries its token requests.
func (e *smartEnv) newLaunchApp(connection string, transport http.RoundTripper) *launchApp {
	e.t.Helper()
	a := &launchApp{}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	a.url = srv.URL
	if err := e.auth.RegisterClient(smartauth.Client{ID: launchClient, Public: true, TokenEndpointAuth: "none",
		RedirectURIs: []string{a.url + "/callback"}, LaunchURL: a.url + "/launch",
		Scopes: []string{"launch", "launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs"}}); err != nil {
		e.t.Fatal(err)
	}
	var hc *http.Client
	if transport != nil {
		hc = &http.Client{Transport: transport, Timeout: 20 * time.Second}
	}
	l, err := smart.NewLauncher(smart.LauncherOptions{
		Clients: []smart.ClientConfig{{Connection: connection, FHIRBaseURL: e.base, ClientID: launchClient,
			AuthMethod: smart.AuthNone, RedirectURL: a.url + "/callback",
			Scopes: smart.ScopeRequest{Context: smart.ContextPatient, Types: refresh.ChartTypes,
				Extra: []string{"openid", "fhirUser", "offline_access"}}}},
		Vault: e.vault, Discoverer: e.disc, Keys: e.keys, Now: e.now, HTTPClient: hc,
		OnComplete: func(w http.ResponseWriter, r *http.Request, res *smart.LaunchResult) {
			a.mu.Lock()
			a.res = res
			a.mu.Unlock()
			io.WriteString(w, "launched")
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	mux.Handle("/launch", l.LaunchHandler())
	mux.Handle("/login", l.StandaloneHandler())
	mux.Handle("/callback", l.CallbackHandler())
	return a
}

// userAgent is a browser: cookies and redirects. With stopAtCallback it
// does not follow the EHR's redirect to the app's callback, and keeps it.
type userAgent struct {
	*http.Client
	callback string
}

func newUserAgent(app *launchApp, stopAtCallback bool) *userAgent {
	jar, _ := cookiejar.New(nil)
	ua := &userAgent{}
	ua.Client = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if app != nil && strings.HasPrefix(req.URL.String(), app.url+"/callback") {
			ua.callback = req.URL.String()
			if stopAtCallback {
				return http.ErrUseLastResponse
			}
		}
		return nil
	}}
	return ua
}

// authorize opens start in ua and goes through the simulator's login,
// picker and consent pages (allowing) until the browser leaves the EHR.
func (e *smartEnv) authorize(ua *userAgent, start, patient string) (*http.Response, string) {
	e.t.Helper()
	resp, body := httpDo(e.t, ua.Client, http.MethodGet, start, nil)
	origin := strings.TrimSuffix(e.base, "/fhir")
	for range 6 {
		if !strings.HasPrefix(resp.Request.URL.String(), origin+"/auth/") || resp.StatusCode/100 == 3 {
			return resp, body
		}
		f := url.Values{}
		for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
			f.Set(m[1], m[2])
		}
		switch resp.Request.URL.Path {
		case "/auth/login":
			f.Set("username", "dr.smith")
			f.Set("password", "password")
		case "/auth/picker":
			f.Set("patient", patient)
		case "/auth/consent":
			f.Set("decision", "allow")
		default:
			e.t.Fatalf("authorization reached %s (%d): %.300s", resp.Request.URL, resp.StatusCode, body)
		}
		u := *resp.Request.URL
		u.RawQuery = ""
		resp, body = httpDo(e.t, ua.Client, http.MethodPost, u.String(), f)
	}
	e.t.Fatalf("authorization did not leave the EHR: at %s", resp.Request.URL)
	return nil, ""
}

// launch runs a standalone launch with the patient picker through ehrgate's
// Launcher, as a browser would (cookies, redirects, the simulator's login,
// picker and consent forms), and returns what the callback produced.
func (e *smartEnv) launch(connection, patient string) *smart.LaunchResult {
	e.t.Helper()
	app := e.newLaunchApp(connection, nil)
	resp, body := e.authorize(newUserAgent(app, false), app.url+"/login?connection="+url.QueryEscape(connection)+"&patient=pick", patient)
	res := app.result()
	if resp.StatusCode != 200 || res == nil {
		e.t.Fatalf("launch ended at %s with %d: %.300s", resp.Request.URL, resp.StatusCode, body)
	}
	return res
}

var hiddenRE = regexp.MustCompile(`name="(csrf|req)" value="([^"]*)"`)

func httpDo(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if form != nil {
		r = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, r)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *smartEnv) launchSource(connection string) *smart.TokenSource {
	e.t.Helper()
	ts, err := smart.NewTokenSource(smart.TokenSourceOptions{
		Client: smart.ClientConfig{Connection: connection, FHIRBaseURL: e.base, ClientID: launchClient, AuthMethod: smart.AuthNone,
			Scopes: smart.ScopeRequest{Context: smart.ContextPatient, Types: refresh.ChartTypes}},
		Grant: smart.GrantRefreshToken, Vault: e.vault, Discoverer: e.disc, Skew: time.Millisecond, Now: e.now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ts
}

// A refresh token the EHR revoked (an administrator disconnected the app)
// turns into "needs re-authorization": the refresh is refused once, the
// vault's status says so, and no later call, in this TokenSource or a new
// one (another process), sends another token request. Without the sticky
// state every fetch of a sync would retry the refresh (a retry storm).
func TestSMARTRevokedRefreshTokenNeedsReauthorizationWithoutRetryStorm(t *testing.T) {
	e := newSmartEnv(t, envOptions{patients: 3})
	patient := e.sim.PatientIDs()[1]
	res := e.launch("user-launch", patient)
	if res.Token == nil || res.Token.Context.Patient != patient {
		t.Fatalf("launch context = %+v, want patient %s", res.Token, patient)
	}

	// The launched token works: one patient's chart, no errors.
	ts := e.launchSource("user-launch")
	sum, err := e.syncer("user-launch", ts, 4).Patient(t.Context(), patient)
	if err != nil || sum.Errors != 0 {
		t.Fatalf("Patient with a fresh launch = %+v, %v", sum, err)
	}

	// The EHR revokes the grant (RFC 7009: revoking the refresh token
	// revokes every token of its grant, the access token too).
	tok, _, err := e.vault.Load(t.Context(), "user-launch")
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("vault has no refresh token after an offline_access launch: %v", err)
	}
	e.auth.Revoke(string(tok.RefreshToken))
	before := e.tokens.Load()

	sum, err = e.syncer("user-launch", ts, 4).Patient(t.Context(), patient)
	var reauth *smart.ReauthorizationError
	if !errors.As(err, &reauth) && sum.Errors == 0 {
		t.Fatalf("Patient after revocation = %+v, %v; want a needs-re-authorization failure", sum, err)
	}
	if _, err := ts.Token(t.Context()); !errors.Is(err, smart.ErrNeedsReauthorization) || !errors.As(err, &reauth) {
		t.Errorf("Token after invalid_grant = %v, want a *ReauthorizationError matching ErrNeedsReauthorization", err)
	} else if reauth.Reason != "invalid_grant" {
		t.Errorf("ReauthorizationError.Reason = %q, want invalid_grant", reauth.Reason)
	}
	// Another process starting later fails fast too.
	if _, err := e.launchSource("user-launch").Token(t.Context()); !errors.Is(err, smart.ErrNeedsReauthorization) {
		t.Errorf("a new TokenSource's Token = %v, want ErrNeedsReauthorization", err)
	}
	if n := e.tokens.Load() - before; n != 1 {
		t.Errorf("%d token requests after the revocation across a patient sync and two Token calls, want exactly 1 (no retry storm)", n)
	}
	st, err := e.vault.Status(t.Context(), "user-launch")
	if err != nil || st.State != store.TokenNeedsReauthorization || st.Reason != "invalid_grant" {
		t.Errorf("vault Status = %+v, %v; want %s because of invalid_grant", st, err, store.TokenNeedsReauthorization)
	}

	// A new launch revives the connection.
	e.launch("user-launch", patient)
	if _, err := e.launchSource("user-launch").Token(t.Context()); err != nil {
		t.Errorf("Token after a new launch = %v, want the new token", err)
	}
}

// The simulator's clock is off by up to ±2 minutes (the SMART Backend
// Services tolerance for client assertions): syncs still work. Beyond it,
// the token request fails with a clear invalid_client error naming the
// time check, and the sync does not start.
func TestSMARTBackendSyncToleratesClockSkew(t *testing.T) {
	tests := []struct {
		skew time.Duration
		ok   bool
	}{
		{0, true},
		{2 * time.Minute, true},
		{-2 * time.Minute, true},
		{-3 * time.Minute, false}, // the assertion's iat is 3 minutes in the server's future
		{6 * time.Minute, false},  // the assertion (4-minute lifetime) has expired by the server's clock
	}
	e := newSmartEnv(t, envOptions{patients: 2})
	for i, tc := range tests {
		t.Run(tc.skew.String(), func(t *testing.T) {
			e.auth.SetClockSkew(tc.skew)
			conn := "skew-" + string(rune('a'+i))
			ts := e.backendSource(conn, time.Second)
			sum, err := e.syncer(conn, ts, 2).Run(t.Context())
			if tc.ok {
				if err != nil || sum.Errors != 0 {
					t.Fatalf("sync with the server clock off by %v = %+v, %v; want success", tc.skew, sum, err)
				}
				e.assertStoreMatchesSim(conn)
				return
			}
			_, terr := ts.Token(t.Context())
			var oe *smart.OAuthError
			if !errors.As(terr, &oe) || !errors.Is(terr, smart.ErrInvalidClient) {
				t.Fatalf("Token with the server clock off by %v = %v, want an invalid_client OAuthError", tc.skew, terr)
			}
			msg := strings.ToLower(terr.Error())
			if !strings.Contains(msg, "iat") && !strings.Contains(msg, "nbf") && !strings.Contains(msg, "exp") && !strings.Contains(msg, "expired") && !strings.Contains(msg, "future") {
				t.Errorf("error %q does not say which time check failed", terr)
			}
			if err == nil && sum.Errors == 0 {
				t.Errorf("sync with the server clock off by %v succeeded (%+v); want it refused", tc.skew, sum)
			}
		})
	}
}

// ehrgate rotates its client-assertion key. The new key is published at
// once but signs only after the grace period, so an EHR with the old JWKS
// keeps accepting ehrgate during the grace. Afterwards an EHR that fetches
// ehrgate's JWKS URL picks the new key up (its cache misses the new kid and
// refetches); one given the JWKS inline at registration refuses the new
// key, which is why EHRs should be given the JWKS URL.
func TestSMARTBackendSyncAcrossEhrgateKeyRotation(t *testing.T) {
	const grace = 10 * time.Minute
	tests := []struct {
		name       string
		byURL      bool
		afterGrace bool // whether the sync after the grace period succeeds
	}{
		{"JWKS URL", true, true},
		{"inline JWKS", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSmartEnv(t, envOptions{
				patients: 2,
				keys:     smart.KeyOptions{Grace: grace},
				auth:     func(o *smartauth.Options) { o.JWKSCacheTTL = time.Hour },
				backend: func(e *smartEnv, c *smartauth.Client) {
					if tc.byURL {
						c.JWKS, c.JWKSURL = nil, e.jwks.url
					}
				},
			})
			sync := func(conn string) (refresh.Summary, error) {
				return e.syncer(conn, e.backendSource(conn, time.Second), 2).Run(t.Context())
			}
			if sum, err := sync("before"); err != nil || sum.Errors != 0 {
				t.Fatalf("sync before rotation = %+v, %v", sum, err)
			}
			fetches := e.jwks.fetches.Load()

			newKey, err := e.keys.Rotate(t.Context(), smart.ES384)
			if err != nil {
				t.Fatal(err)
			}
			set, _ := e.keys.JWKS(t.Context())
			if len(set.Key(newKey.KID)) == 0 || len(set.Keys) != 2 {
				t.Fatalf("JWKS right after rotation has %d keys (new key published: %v); want old and new", len(set.Keys), len(set.Key(newKey.KID)) > 0)
			}
			if sum, err := sync("during-grace"); err != nil || sum.Errors != 0 {
				t.Fatalf("sync during the grace period (old key signs, server has the old JWKS) = %+v, %v", sum, err)
			}

			e.offset.Add(int64(grace + time.Minute)) // both clocks: the new key signs now
			if tc.byURL {
				// smartauth refetches a JWKS for an unknown kid at most every
				// 5s of real time (its cache ages ignore Options.Clock).
				time.Sleep(5*time.Second + 100*time.Millisecond)
			}
			sum, err := sync("after-grace")
			if tc.afterGrace {
				if err != nil || sum.Errors != 0 {
					t.Fatalf("sync after the grace period = %+v, %v; the server should refetch the JWKS URL for the new kid", sum, err)
				}
				if e.jwks.fetches.Load() <= fetches {
					t.Errorf("the JWKS URL was not fetched again after the new key started signing")
				}
				e.assertStoreMatchesSim("after-grace")
				return
			}
			if err == nil && sum.Errors == 0 {
				t.Fatalf("sync after the grace period succeeded against a server holding only the old inline JWKS; the new key did not sign?")
			}
			if !errors.Is(err, smart.ErrInvalidClient) {
				t.Errorf("sync error = %v, want invalid_client (unknown kid)", err)
			}
		})
	}
}

// The simulator rotates its id_token signing key. ehrgate's launch
// verification must fetch the new JWKS even though it cached the old one
// (real EHRs send Cache-Control: max-age on their JWKS), instead of failing
// every launch until the cache expires.
func TestSMARTLaunchAcrossSimulatorSigningKeyRotation(t *testing.T) {
	e := newSmartEnv(t, envOptions{patients: 2})
	// Real EHRs let their JWKS be cached; make the simulator's cacheable.
	cacheable := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/auth/jwks" {
				w.Header().Set("Cache-Control", "public, max-age=3600")
				rec := &headerPinner{ResponseWriter: w}
				h.ServeHTTP(rec, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	e.setHandler(cacheable(smartauth.WithSMART(e.sim.Handler(), e.auth)))
	patient := e.sim.PatientIDs()[0]
	if res := e.launch("rotating", patient); res.ID == nil {
		t.Fatalf("launch with openid returned no verified id_token claims")
	}

	// The "same" EHR with a new signing key: a new authorization server for
	// the same issuer and clients.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inline, _ := e.keys.JWKS(t.Context())
	raw, _ := json.Marshal(inline)
	auth2, err := smartauth.New(smartauth.Options{Issuer: e.base, SigningKey: key, Clock: e.now,
		Clients: []smartauth.Client{{ID: backendClient, JWKS: raw, Scopes: []string{"system/*.rs"}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.auth = auth2
	e.setHandler(cacheable(smartauth.WithSMART(e.sim.Handler(), auth2)))
	res := e.launch("rotating", patient)
	if res.ID == nil || res.Token.Context.Patient != patient {
		t.Fatalf("launch after the EHR's key rotation = %+v", res)
	}
}

// headerPinner keeps the Cache-Control set before the wrapped handler ran.
type headerPinner struct {
	http.ResponseWriter
	wrote bool
}

func (h *headerPinner) WriteHeader(code int) {
	if !h.wrote {
		h.wrote = true
		h.ResponseWriter.Header().Set("Cache-Control", "public, max-age=3600")
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *headerPinner) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

// rewriteVerifier is a transport that swaps the code_verifier of token
// requests for another valid one: what the server sees when the verifier
// does not belong to the code (an intercepted code redeemed elsewhere).
type rewriteVerifier struct{}

func (rewriteVerifier) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(b))
		if err == nil && form.Has("code_verifier") {
			form.Set("code_verifier", smart.NewVerifier())
			b = []byte(form.Encode())
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		r.ContentLength = int64(len(b))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestSMARTLaunchCallbackAttacksAgainstTheSimulator runs ehrgate's
// Launcher against the simulator's authorization server and tampers with
// the callback the way an attacker could. Each case fails when the defence
// it names is missing: a state check, single use of state, browser binding,
// PKCE, single use of codes.
func TestSMARTLaunchCallbackAttacksAgainstTheSimulator(t *testing.T) {
	tests := []struct {
		name      string
		transport http.RoundTripper
		// attack gets the callback URL the EHR sent the user's browser to
		// and that browser; it returns ehrgate's answer to the attack.
		attack     func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int
		wantTokens int64 // token requests the EHR received after the authorization (ehrgate's and the attacker's)
		wantStored bool  // whether ehrgate holds a token at the end
	}{
		{name: "wrong state", attack: func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int {
			resp, _ := httpDo(t, ua.Client, http.MethodGet, withQuery(cb, "state", "forged"), nil)
			return resp.StatusCode
		}},
		{name: "missing state", attack: func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int {
			resp, _ := httpDo(t, ua.Client, http.MethodGet, withQuery(cb, "state", ""), nil)
			return resp.StatusCode
		}},
		{name: "callback in another browser (login CSRF)", attack: func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int {
			resp, _ := httpDo(t, newUserAgent(nil, false).Client, http.MethodGet, cb, nil)
			return resp.StatusCode
		}},
		{name: "replayed state", wantTokens: 1, wantStored: true, attack: func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int {
			u, _ := url.Parse(cb)
			cookies := ua.Jar.Cookies(u)
			if resp, body := httpDo(t, ua.Client, http.MethodGet, cb, nil); resp.StatusCode != 200 {
				t.Fatalf("the genuine callback = %d: %.300s", resp.StatusCode, body)
			}
			jar, _ := cookiejar.New(nil)
			jar.SetCookies(u, cookies) // keep the binding cookie: only single use can stop the replay
			resp, _ := httpDo(t, &http.Client{Jar: jar}, http.MethodGet, cb, nil)
			return resp.StatusCode
		}},
		{name: "wrong PKCE verifier", transport: rewriteVerifier{}, wantTokens: 1, attack: func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int {
			resp, _ := httpDo(t, ua.Client, http.MethodGet, cb, nil)
			return resp.StatusCode
		}},
		{name: "replayed code revokes the tokens issued from it", wantTokens: 2, wantStored: true, attack: func(t *testing.T, e *smartEnv, cb string, ua *userAgent) int {
			if resp, body := httpDo(t, ua.Client, http.MethodGet, cb, nil); resp.StatusCode != 200 {
				t.Fatalf("the genuine callback = %d: %.300s", resp.StatusCode, body)
			}
			u, _ := url.Parse(cb)
			origin := strings.TrimSuffix(e.base, "/fhir")
			resp, body := httpDo(t, http.DefaultClient, http.MethodPost, origin+"/auth/token", url.Values{
				"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "client_id": {launchClient},
				"redirect_uri": {strings.Split(cb, "?")[0]}, "code_verifier": {smart.NewVerifier()},
			})
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
				t.Errorf("replayed code = %d %s, want 400 invalid_grant", resp.StatusCode, body)
			}
			// RFC 6749 §4.1.2: the tokens issued from the code are revoked.
			tok, _, err := e.vault.Load(t.Context(), "attacked")
			if err != nil || tok == nil {
				t.Fatalf("no token stored by the genuine callback: %v", err)
			}
			req, _ := http.NewRequest(http.MethodGet, e.base+"/Patient", nil)
			req.Header.Set("Authorization", "Bearer "+string(tok.AccessToken))
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("ehrgate's access token after the code was replayed: FHIR answers %d, want 401 (revoked)", r.StatusCode)
			}
			return http.StatusBadRequest
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSmartEnv(t, envOptions{patients: 2})
			app := e.newLaunchApp("attacked", tc.transport)
			ua := newUserAgent(app, true)
			e.authorize(ua, app.url+"/login?connection=attacked&patient=pick", e.sim.PatientIDs()[0])
			if ua.callback == "" || !strings.Contains(ua.callback, "code=") {
				t.Fatalf("the EHR did not send the browser to the callback with a code (got %q)", ua.callback)
			}
			before := e.tokens.Load()
			if status := tc.attack(t, e, ua.callback, ua); status != http.StatusBadRequest && status != http.StatusBadGateway {
				t.Errorf("ehrgate answered the attack with %d, want a 400 (or 502 for an EHR refusal) error page", status)
			}
			if n := e.tokens.Load() - before; n != tc.wantTokens {
				t.Errorf("the EHR received %d token requests, want %d", n, tc.wantTokens)
			}
			if tc.transport != nil && e.issued.Load() != 0 {
				t.Errorf("the EHR issued %d tokens for a code redeemed with the wrong verifier, want 0", e.issued.Load())
			}
			tok, _, _ := e.vault.Load(t.Context(), "attacked")
			if (tok != nil) != tc.wantStored {
				t.Errorf("token stored = %v, want %v", tok != nil, tc.wantStored)
			}
		})
	}
}

func withQuery(u, key, value string) string {
	p, _ := url.Parse(u)
	q := p.Query()
	if value == "" {
		q.Del(key)
	} else {
		q.Set(key, value)
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// TestSMARTEHRLaunchFromAnUnregisteredIssuer: an EHR launch whose iss is
// not the registered FHIR base (a lookalike) is refused with a 400 page
// before any outbound request: neither the lookalike nor the real server
// hears from ehrgate, so no code or assertion can be phished.
func TestSMARTEHRLaunchFromAnUnregisteredIssuer(t *testing.T) {
	e := newSmartEnv(t, envOptions{patients: 1})
	var attacker atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { attacker.Add(1) }))
	defer evil.Close()
	app := e.newLaunchApp("registered", nil)
	u, _ := url.Parse(e.base)
	tests := []string{
		evil.URL + "/fhir",
		e.base + "x",
		e.base + "/../other",
		"http://user@" + u.Host + "/fhir",
		e.base + "?x=1",
		"https://" + u.Host + "/fhir",
		"http://localhost:" + u.Port() + "/fhir",
	}
	var simBefore int64
	for _, iss := range tests {
		t.Run(iss, func(t *testing.T) {
			simBefore = e.tokens.Load()
			ua := newUserAgent(app, true)
			resp, body := httpDo(t, ua.Client, http.MethodGet, app.url+"/launch?"+url.Values{"iss": {iss}, "launch": {"abc"}}.Encode(), nil)
			if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Host != strings.TrimPrefix(app.url, "http://") {
				t.Errorf("launch from iss %q = %d at %s, want a 400 page from ehrgate: %.200s", iss, resp.StatusCode, resp.Request.URL, body)
			}
			if n := attacker.Load(); n != 0 {
				t.Errorf("the lookalike server received %d requests", n)
			}
			if e.tokens.Load() != simBefore {
				t.Errorf("a token request was sent")
			}
		})
	}
	// The registered iss works (the test can fail the other way too).
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := httpDo(t, noFollow, http.MethodGet, app.url+"/launch?"+url.Values{"iss": {e.base}, "launch": {"abc"}}.Encode(), nil)
	if resp.StatusCode/100 != 3 || !strings.Contains(resp.Header.Get("Location"), "/auth/authorize") {
		t.Errorf("launch from the registered iss = %d (Location %q), want a redirect to the EHR's authorize endpoint", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// recordToken is a transport that keeps the bodies of token requests.
type recordToken struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recordToken) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/auth/token") && req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(strings.NewReader(string(b)))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestSMARTSimulatorRejectsAReplayedClientAssertion replays a client
// assertion ehrgate really sent: the simulator refuses the reused jti,
// while ehrgate's own next token request (a fresh jti) is accepted.
func TestSMARTSimulatorRejectsAReplayedClientAssertion(t *testing.T) {
	e := newSmartEnv(t, envOptions{patients: 1})
	rec := &recordToken{}
	ts, err := smart.NewTokenSource(smart.TokenSourceOptions{
		Client: smart.ClientConfig{Connection: "jti", FHIRBaseURL: e.base, ClientID: backendClient, AuthMethod: smart.AuthPrivateKeyJWT,
			Scopes: smart.ScopeRequest{Context: smart.ContextSystem, Types: refresh.ChartTypes}},
		Grant: smart.GrantClientCredentials, Vault: e.vault, Discoverer: e.disc, Keys: e.keys, Now: e.now,
		HTTPClient: &http.Client{Transport: rec},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(t.Context()); err != nil {
		t.Fatalf("first token: %v", err)
	}
	if len(rec.bodies) != 1 {
		t.Fatalf("recorded %d token requests, want 1", len(rec.bodies))
	}
	form, _ := url.ParseQuery(rec.bodies[0])
	if form.Get("client_assertion") == "" {
		t.Fatalf("ehrgate's token request has no client_assertion: fields %v", keysOf(form))
	}
	origin := strings.TrimSuffix(e.base, "/fhir")
	resp, body := httpDo(t, http.DefaultClient, http.MethodPost, origin+"/auth/token", form)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") || !strings.Contains(body, "jti") {
		t.Errorf("replayed assertion = %d %s, want 401 invalid_client naming the jti", resp.StatusCode, body)
	}
	// ehrgate's next request carries a new jti and is accepted.
	fresh := e.backendSource("jti-2", time.Second)
	if _, err := fresh.Token(t.Context()); err != nil {
		t.Errorf("a new token request after the replay = %v, want success (fresh jti)", err)
	}
}

func keysOf(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

// TestSMARTLaunchToleratesClockSkew: the simulator's clock is off by up to
// ±2 minutes, so the id_token it signs is issued "in the future" or "in
// the past" by ehrgate's clock: launches still complete. A server clock
// further ahead makes the id_token's iat implausible: the launch fails with
// a page that says the id_token was rejected, and nothing is stored.
func TestSMARTLaunchToleratesClockSkew(t *testing.T) {
	tests := []struct {
		skew time.Duration
		ok   bool
	}{
		{2 * time.Minute, true},
		{-2 * time.Minute, true},
		{5 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.skew.String(), func(t *testing.T) {
			e := newSmartEnv(t, envOptions{patients: 1, auth: func(o *smartauth.Options) { o.ClockSkew = tc.skew }})
			app := e.newLaunchApp("skewed", nil)
			patient := e.sim.PatientIDs()[0]
			resp, body := e.authorize(newUserAgent(app, false), app.url+"/login?connection=skewed&patient=pick", patient)
			tok, _, _ := e.vault.Load(t.Context(), "skewed")
			if tc.ok {
				if resp.StatusCode != 200 || app.result() == nil || tok == nil || tok.Context.Patient != patient {
					t.Fatalf("launch with the EHR clock off by %v = %d %.300s; want it to complete", tc.skew, resp.StatusCode, body)
				}
				return
			}
			if resp.StatusCode == 200 || app.result() != nil || tok != nil {
				t.Fatalf("launch with the EHR clock off by %v completed; want the id_token refused", tc.skew)
			}
			if !strings.Contains(body, "id_token") {
				t.Errorf("the error page does not say what failed: %.300s", body)
			}
		})
	}
}
