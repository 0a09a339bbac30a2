package login_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/audit"
	"ehrgate/internal/pgtest"
	"ehrgate/login"
	"ehrgate/store"
	_ "ehrgate/store/postgres"
	_ "ehrgate/store/sqlite"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

var cheap = &login.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const password = "correct horse battery staple"

// clock is a settable clock shared by the replicas of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := e.Validate(); err != nil {
		return err
	}
	r.events = append(r.events, e)
	return nil
}

// env is one store with accounts and any number of gateways ("replicas")
// serving the sign-in routes and a few guarded pages over it.
type env struct {
	t     *testing.T
	st    store.Backend
	clock *clock
	rec   *recorder
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// backends are the stores the end-to-end tests run on.
var backends = map[string]func(t *testing.T) string{
	"sqlite":   func(t *testing.T) string { return "sqlite:" + t.TempDir() },
	"postgres": func(t *testing.T) string { return pgtest.NewDatabaseURL(t) },
}

func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for name, url := range backends {
		t.Run(name, func(t *testing.T) {
			if name == "postgres" && testing.Short() {
				t.Skip("starts PostgreSQL")
			}
			fn(t, newEnv(t, url(t)))
		})
	}
}

func newEnv(t *testing.T, storeURL string) *env {
	t.Helper()
	st, err := store.Open(context.Background(), storeURL, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, clock: &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}, rec: &recorder{}, logs: &syncBuffer{}}
	accts := login.NewAccounts(st, login.AccountOptions{Params: cheap, Clock: e.clock.now})
	ctx := context.Background()
	for name, role := range map[string]login.Role{"alice": login.RoleClinician, "audrey": login.RoleAuditor, "root": login.RoleAdmin} {
		if err := accts.Add(ctx, name, strings.ToUpper(name[:1])+name[1:], []login.Role{role}, []byte(password)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// replica starts a gateway-like server over the env's store.
func (e *env) replica(secure bool) *httptest.Server {
	e.t.Helper()
	svc, err := login.New(e.st, login.Options{Mode: login.ModeLocal, IdleTimeout: 30 * time.Minute, MaxAge: 2 * time.Hour,
		SecureCookies: secure, Clock: e.clock.now, Accounts: login.AccountOptions{Params: cheap},
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Audit: e.rec})
	if err != nil {
		e.t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range svc.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	page := func(w http.ResponseWriter, r *http.Request) {
		p, _ := login.PersonFrom(r.Context())
		io.WriteString(w, "hello "+p.ID+" csrf="+login.CSRFToken(r.Context()))
	}
	mux.Handle("GET /{$}", svc.Require(http.HandlerFunc(page)))
	mux.Handle("GET /chart", svc.Require(login.Allow(login.SeePatients, http.HandlerFunc(page))))
	mux.Handle("POST /action", svc.Require(http.HandlerFunc(page)))
	mux.Handle("POST /echo", svc.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})))
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	return srv
}

// browser is a client with a cookie jar that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

var tokenRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn fills the login form as a browser does and returns the response.
func signIn(t *testing.T, c *http.Client, base, name, pw, next string) (*http.Response, string) {
	t.Helper()
	_, page := do(t, c, "GET", base+"/login?next="+url.QueryEscape(next), nil, nil)
	m := tokenRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page has no CSRF token:\n%s", page)
	}
	return do(t, c, "POST", base+"/login", url.Values{"csrf": {m[1]}, "username": {name}, "password": {pw}, "next": {next}},
		map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"})
}

func csrfOf(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	_, body := do(t, c, "GET", base+"/", nil, nil)
	_, tok, ok := strings.Cut(body, "csrf=")
	if !ok || tok == "" {
		t.Fatalf("GET / = %q, want a CSRF token", body)
	}
	return tok
}

func TestLocalSignIn(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		srv := e.replica(false)
		c := browser(t)
		res, _ := do(t, c, "GET", srv.URL+"/chart?x=1", nil, nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?next=%2Fchart%3Fx%3D1" {
			t.Fatalf("GET /chart without a session = %d %s, want 303 to the login page", res.StatusCode, res.Header.Get("Location"))
		}
		res, body := signIn(t, c, srv.URL, "alice", "wrong password!!", "/chart?x=1")
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password") {
			t.Errorf("wrong password = %d, want 401 with the one refusal message", res.StatusCode)
		}
		res, body = signIn(t, c, srv.URL, "nobody", password, "/")
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password") {
			t.Errorf("unknown name = %d, want 401 with the same message", res.StatusCode)
		}
		res, _ = signIn(t, c, srv.URL, "Alice", password, "/chart?x=1")
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/chart?x=1" {
			t.Fatalf("sign-in = %d %s, want 303 back to /chart?x=1", res.StatusCode, res.Header.Get("Location"))
		}
		var sc *http.Cookie
		for _, ck := range res.Cookies() {
			if ck.Name == "ehrgate-session" {
				sc = ck
			}
		}
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure {
			t.Errorf("session cookie = %+v, want HttpOnly, SameSite=Lax, Path=/ (not Secure over plain HTTP)", sc)
		}
		if _, body := do(t, c, "GET", srv.URL+"/chart", nil, nil); !strings.HasPrefix(body, "hello alice") {
			t.Errorf("GET /chart signed in = %q", body)
		}
		// Only the hash of the session id is stored.
		names, _ := e.st.ListDocuments(context.Background(), login.DocSession)
		for _, n := range names {
			d, _ := e.st.GetDocument(context.Background(), login.DocSession, n)
			if n == sc.Value || strings.Contains(string(d.Body), sc.Value) {
				t.Error("the store holds the session id itself")
			}
		}
		// Sign-ins are in the audit trail, the refused ones too.
		var ok, refused int
		for _, ev := range e.rec.events {
			if ev.Type != audit.TypeLogin {
				continue
			}
			if ev.Outcome == audit.OutcomeSuccess && ev.Agent.UserID == "alice" {
				ok++
			} else if ev.Outcome == audit.OutcomeMinor {
				refused++
			}
		}
		if ok != 1 || refused != 2 {
			t.Errorf("audit: %d sign-ins and %d refusals, want 1 and 2", ok, refused)
		}
		if logs := e.logs.String(); strings.Contains(logs, password) || strings.Contains(logs, "wrong password!!") || strings.Contains(logs, sc.Value) {
			t.Errorf("the log holds a password or session id:\n%s", logs)
		}
	})
}

func TestSecureCookies(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	srv := e.replica(true)
	c := browser(t)
	// Over plain HTTP a browser would drop Secure cookies; read the headers.
	res, _ := do(t, c, "GET", srv.URL+"/login", nil, nil)
	var lc *http.Cookie
	for _, ck := range res.Cookies() {
		lc = ck
	}
	if lc == nil || lc.Name != "__Host-ehrgate-login" || !lc.Secure || !lc.HttpOnly || lc.Path != "/" || lc.Domain != "" {
		t.Fatalf("login cookie = %+v, want __Host-ehrgate-login, Secure, HttpOnly, Path=/", lc)
	}
	m := tokenRE.FindStringSubmatch(func() string { _, b := do(t, c, "GET", srv.URL+"/login", nil, nil); return b }())
	req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(url.Values{"csrf": {m[1]}, "username": {"alice"}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "__Host-ehrgate-login", Value: m[1]})
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	var sc *http.Cookie
	for _, ck := range res.Cookies() {
		if strings.HasSuffix(ck.Name, "session") {
			sc = ck
		}
	}
	if res.StatusCode != http.StatusSeeOther || sc == nil || sc.Name != "__Host-ehrgate-session" || !sc.Secure || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode {
		t.Errorf("secure sign-in = %d, cookie %+v, want __Host-ehrgate-session, Secure, HttpOnly, SameSite=Lax", res.StatusCode, sc)
	}
}

func TestLockout(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	srv := e.replica(false)
	c := browser(t)
	for i := 0; i < login.DefaultMaxFailures; i++ {
		if res, _ := signIn(t, c, srv.URL, "alice", "not the password", "/"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d, want 401", i+1, res.StatusCode)
		}
	}
	if res, _ := signIn(t, c, srv.URL, "alice", password, "/"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the right password during the lockout = %d, want 401", res.StatusCode)
	}
	// Another replica on the store sees the lockout.
	if res, _ := signIn(t, browser(t), e.replica(false).URL, "alice", password, "/"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the right password on another replica during the lockout = %d, want 401", res.StatusCode)
	}
	accts, _ := login.NewAccounts(e.st, login.AccountOptions{}).List(context.Background())
	for _, a := range accts {
		if a.Name == "alice" && !a.LockedUntil.After(e.clock.now()) {
			t.Errorf("alice's LockedUntil = %v, want after now", a.LockedUntil)
		}
	}
	e.clock.add(login.DefaultLockoutFor + time.Second)
	if res, _ := signIn(t, c, srv.URL, "alice", password, "/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("the right password after the lockout = %d, want 303", res.StatusCode)
	}
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	srv := e.replica(false)
	signedIn := func(c *http.Client) bool {
		res, _ := do(t, c, "GET", srv.URL+"/", nil, nil)
		return res.StatusCode == http.StatusOK
	}
	t.Run("idle", func(t *testing.T) {
		c := browser(t)
		signIn(t, c, srv.URL, "alice", password, "/")
		e.clock.add(29 * time.Minute)
		if !signedIn(c) {
			t.Fatal("signed out after 29 idle minutes, want signed in (idle timeout 30m)")
		}
		e.clock.add(29 * time.Minute) // the request above renewed the idle time
		if !signedIn(c) {
			t.Fatal("signed out 29 minutes after the last request, want signed in")
		}
		e.clock.add(31 * time.Minute)
		if signedIn(c) {
			t.Fatal("still signed in after 31 idle minutes")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		c := browser(t)
		signIn(t, c, srv.URL, "alice", password, "/")
		for i := 0; i < 5; i++ { // active every 20 minutes: 1h40m
			e.clock.add(20 * time.Minute)
			if !signedIn(c) {
				t.Fatalf("signed out after %d active minutes", (i+1)*20)
			}
		}
		e.clock.add(20 * time.Minute) // 2h: the absolute timeout
		if signedIn(c) {
			t.Fatal("still signed in 2h after sign-in, want the absolute timeout")
		}
	})
}

func TestLogout(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		srv := e.replica(false)
		c := browser(t)
		signIn(t, c, srv.URL, "alice", password, "/")
		tok := csrfOf(t, c, srv.URL)
		u, _ := url.Parse(srv.URL)
		stolen := c.Jar.Cookies(u)
		if res, _ := do(t, c, "POST", srv.URL+"/logout", url.Values{}, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("logout without the CSRF token = %d, want 403", res.StatusCode)
		}
		if res, _ := do(t, c, "POST", srv.URL+"/logout", url.Values{"csrf": {tok}}, map[string]string{"Origin": "https://evil.example"}); res.StatusCode != http.StatusForbidden {
			t.Errorf("logout from another origin = %d, want 403", res.StatusCode)
		}
		res, _ := do(t, c, "POST", srv.URL+"/logout", url.Values{"csrf": {tok}}, map[string]string{"Origin": srv.URL})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Fatalf("logout = %d %s, want 303 to /login", res.StatusCode, res.Header.Get("Location"))
		}
		if res, _ := do(t, c, "GET", srv.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("GET / after logout = %d, want 303 to the login page", res.StatusCode)
		}
		// The old cookie is worthless: the session is gone from the store.
		replay := browser(t)
		replay.Jar.SetCookies(u, stolen)
		if res, _ := do(t, replay, "GET", srv.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("GET / with the old session cookie = %d, want 303", res.StatusCode)
		}
	})
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	srv := e.replica(false)
	c := browser(t)
	signIn(t, c, srv.URL, "alice", password, "/")
	tok := csrfOf(t, c, srv.URL)
	tests := []struct {
		name string
		form url.Values
		hdr  map[string]string
		want int
	}{
		{"no token", url.Values{}, map[string]string{"Origin": srv.URL}, http.StatusForbidden},
		{"wrong token", url.Values{"csrf": {"x" + tok}}, nil, http.StatusForbidden},
		{"other origin", url.Values{"csrf": {tok}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", url.Values{"csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"token in form", url.Values{"csrf": {tok}}, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"token in header", url.Values{}, map[string]string{login.CSRFHeader: tok}, http.StatusOK},
	}
	for _, tc := range tests {
		if res, _ := do(t, c, "POST", srv.URL+"/action", tc.form, tc.hdr); res.StatusCode != tc.want {
			t.Errorf("POST /action (%s) = %d, want %d", tc.name, res.StatusCode, tc.want)
		}
	}
	// A JSON body carries the token in the header and reaches the handler
	// unread, whatever its size.
	big := `{"x":"` + strings.Repeat("a", 100<<10) + `"}`
	req, _ := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(big))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(login.CSRFHeader, tok)
	if res, err := c.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("POST /echo (JSON, token in header) = %v, %v", res, err)
	} else if b, _ := io.ReadAll(res.Body); string(b) != big {
		t.Errorf("POST /echo: the handler read %d bytes of %d", len(b), len(big))
	}
	req, _ = http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	if res, err := c.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("POST /echo (JSON, no token) = %v, %v; want 403", res, err)
	}
	// The login form has its own token: a form posted from elsewhere (login
	// CSRF) is refused.
	res, _ := do(t, browser(t), "POST", srv.URL+"/login", url.Values{"username": {"alice"}, "password": {password}}, nil)
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("POST /login without the form's token = %d, want 403", res.StatusCode)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	srv := e.replica(false)
	c := browser(t)
	signIn(t, c, srv.URL, "audrey", password, "/")
	if res, _ := do(t, c, "GET", srv.URL+"/", nil, nil); res.StatusCode != http.StatusOK {
		t.Errorf("auditor GET / = %d, want 200", res.StatusCode)
	}
	if res, body := do(t, c, "GET", srv.URL+"/chart", nil, nil); res.StatusCode != http.StatusForbidden || strings.Contains(body, "hello") {
		t.Errorf("auditor GET /chart = %d, want 403", res.StatusCode)
	}
}

// A session started on one replica works on another over the same store,
// and logging out on either ends it on both.
func TestSessionAcrossReplicas(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		a, b := e.replica(false), e.replica(false)
		c := browser(t)
		signIn(t, c, a.URL, "alice", password, "/")
		ua, _ := url.Parse(a.URL)
		ub, _ := url.Parse(b.URL)
		c.Jar.SetCookies(ub, c.Jar.Cookies(ua)) // one host name in front of both
		if res, body := do(t, c, "GET", b.URL+"/chart", nil, nil); res.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello alice") {
			t.Fatalf("replica B GET /chart with A's session = %d %q", res.StatusCode, body)
		}
		tok := csrfOf(t, c, b.URL)
		if res, _ := do(t, c, "POST", b.URL+"/logout", url.Values{"csrf": {tok}}, nil); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout on B = %d", res.StatusCode)
		}
		if res, _ := do(t, c, "GET", a.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther {
			t.Errorf("replica A after logout on B = %d, want 303 to the login page", res.StatusCode)
		}
	})
}

// Removing an account, or changing its password, ends its sessions.
func TestAccountChangesEndSessions(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	srv := e.replica(false)
	accts := login.NewAccounts(e.st, login.AccountOptions{Params: cheap, Clock: e.clock.now})
	c := browser(t)
	signIn(t, c, srv.URL, "alice", password, "/")
	if err := accts.SetPassword(context.Background(), "alice", []byte("another long password")); err != nil {
		t.Fatal(err)
	}
	if res, _ := do(t, c, "GET", srv.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after a password change = %d, want 303 (session ended)", res.StatusCode)
	}
	if res, _ := signIn(t, c, srv.URL, "alice", "another long password", "/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the new password = %d", res.StatusCode)
	}
	if err := accts.Remove(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if res, _ := do(t, c, "GET", srv.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after removing the account = %d, want 303", res.StatusCode)
	}
	if err := accts.Remove(context.Background(), "alice"); err == nil {
		t.Error("removing a removed account: nil error")
	}
	if err := accts.Add(context.Background(), "bob", "", []login.Role{login.RoleClinician}, []byte("short")); err == nil {
		t.Error("Add with a short password: nil error")
	}
	if err := accts.Add(context.Background(), "bob", "", nil, []byte(password)); err == nil {
		t.Error("Add without a role: nil error")
	}
}

// An OpenID callback that this browser did not start is refused before
// anything is sent to the provider.
func TestOIDCCallbackNeedsThisBrowsersState(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	svc, err := login.New(e.st, login.Options{Mode: login.ModeOIDC, OIDC: login.OIDCOptions{Issuer: "http://127.0.0.1:1",
		ClientID: "ehrgate", RedirectURL: "http://127.0.0.1/login/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, r := range svc.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/login/callback?code=c&state=s", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("callback without the state cookie = %d, want 400", rec.Code)
	}
	req := httptest.NewRequest("GET", "/login/callback?code=c&state=s", nil)
	req.AddCookie(&http.Cookie{Name: "ehrgate-oidc", Value: "s"})
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("callback with a state never issued = %d, want 400", rec.Code)
	}
	if _, err := login.New(e.st, login.Options{Mode: login.ModeOIDC, OIDC: login.OIDCOptions{Issuer: "idp", RedirectURL: "/cb"}}); err == nil {
		t.Error("New with a broken OpenID configuration: nil error")
	}
}
