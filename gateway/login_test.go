package gateway_test

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"ehrgate/clients"
	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/login"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/store"
)

var cheapHash = &login.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const testPassword = "correct horse battery staple"

// newLoginGateway returns a gateway with login lc over st (a replica when
// st is shared), with connection "clinic" to the simulated EHR at ehrURL.
func newLoginGateway(t *testing.T, ctx context.Context, st store.Backend, kek secrets.KEK, ehrURL string, lc config.Login, getenv func(string) string) *gateway.Gateway {
	t.Helper()
	conn := config.Connection{Name: "clinic", BaseURL: ehrURL + "/fhir", Vendor: "generic"}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: []config.Connection{conn}, Login: lc,
		HTTPHosts: []string{"ehrgate.hospital.example"}},
		Store: st, Keyring: secrets.NewKeyring(kek), LoginParams: cheapHash, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func noRedirects() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func localSignIn(t *testing.T, c *http.Client, base, name string) {
	t.Helper()
	_, page := fetch(t, c, "GET", base+"/login", nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the login page:\n%s", page)
	}
	res, _ := fetch(t, c, "POST", base+"/login", url.Values{"csrf": {m[1]}, "username": {name}, "password": {testPassword}, "next": {"/"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in as %s = %d", name, res.StatusCode)
	}
}

// With local login on: every patient-data route needs a session; a
// clinician's chart view names the clinician in the audit trail; an
// auditor reads the trail but no chart; a second gateway on the same store
// honours the session; sign-in routes keep the Host check.
func TestDashboardLocalLogin(t *testing.T) {
	ctx := context.Background()
	ehr := simulatedEHR(2)
	defer ehr.Close()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	lc := config.Login{Mode: config.LoginLocal}
	g := newLoginGateway(t, ctx, st, kek, ehr.URL, lc, nil)
	conn, _ := g.Connection("clinic")
	if _, err := g.Sync(ctx, conn); err != nil {
		t.Fatal(err)
	}
	accts := g.Login().Accounts()
	for name, role := range map[string]login.Role{"alice": login.RoleClinician, "audrey": login.RoleAuditor} {
		if err := accts.Add(ctx, name, "", []login.Role{role}, []byte(testPassword)); err != nil {
			t.Fatal(err)
		}
	}
	pats, err := st.SearchPatients(ctx, store.PatientQuery{Connection: "clinic", Limit: 1})
	if err != nil || len(pats) != 1 {
		t.Fatal(pats, err)
	}
	chart := "/patients/clinic/" + pats[0].ID
	g.Mount(server.Route{Pattern: "GET /mounted/patient-data", Access: server.PatientData, Serves: "test",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })})
	web := httptest.NewServer(g.Handler())
	defer web.Close()

	anon := noRedirects()
	for _, path := range []string{"/", chart, "/audit", "/events/webhooks", "/smart/login?connection=clinic"} {
		if res, _ := fetch(t, anon, "GET", web.URL+path, nil); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without a session = %d (Location %q), want 303 to the login page", path, res.StatusCode, res.Header.Get("Location"))
		}
	}
	req, _ := http.NewRequest("GET", web.URL+"/login", nil)
	req.Host = "rebind.attacker.example"
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET /login under an unknown Host = %v, %v; want 421", res, err)
	}

	clin := noRedirects()
	localSignIn(t, clin, web.URL, "alice")
	if res, body := fetch(t, clin, "GET", web.URL+chart, nil); res.StatusCode != http.StatusOK || !strings.Contains(body, `id="signed-in-as"`) {
		t.Fatalf("clinician GET chart = %d", res.StatusCode)
	}
	if res, _ := fetch(t, clin, "GET", web.URL+"/quality", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("clinician GET /quality = %d, want 403", res.StatusCode)
	}
	got, err := st.QueryAudit(ctx, store.AuditQuery{Patient: pats[0].ID})
	if err != nil || len(got) != 1 || got[0].Agent != "alice" {
		t.Fatalf("audit entries for the chart view = %+v, %v; want one by alice", got, err)
	}

	aud := noRedirects()
	localSignIn(t, aud, web.URL, "audrey")
	if res, body := fetch(t, aud, "GET", web.URL+chart, nil); res.StatusCode != http.StatusForbidden || strings.Contains(body, pats[0].ID+"</") {
		t.Errorf("auditor GET chart = %d, want 403", res.StatusCode)
	}
	if res, _ := fetch(t, aud, "GET", web.URL+"/mounted/patient-data", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("auditor GET a mounted patient-data route = %d, want 403", res.StatusCode)
	}
	if res, _ := fetch(t, clin, "GET", web.URL+"/mounted/patient-data", nil); res.StatusCode != http.StatusOK {
		t.Errorf("clinician GET a mounted patient-data route = %d, want 200", res.StatusCode)
	}
	if res, body := fetch(t, aud, "GET", web.URL+"/audit?agent=alice", nil); res.StatusCode != http.StatusOK || !strings.Contains(body, pats[0].ID) {
		t.Errorf("auditor GET /audit = %d, want 200 listing alice's chart view", res.StatusCode)
	}

	// A replica on the same store honours alice's session.
	g2 := newLoginGateway(t, ctx, st, kek, ehr.URL, lc, nil)
	web2 := httptest.NewServer(g2.Handler())
	defer web2.Close()
	u1, _ := url.Parse(web.URL)
	u2, _ := url.Parse(web2.URL)
	clin.Jar.SetCookies(u2, clin.Jar.Cookies(u1))
	if res, _ := fetch(t, clin, "GET", web2.URL+chart, nil); res.StatusCode != http.StatusOK {
		t.Errorf("replica GET chart with the session = %d, want 200", res.StatusCode)
	}
}

// With ehrgate's own authorization server (api.base_url) and login on, the
// authorization endpoint sends a stranger to the login page and back, then
// knows who is signed in; people whose roles do not see patients are
// refused there.
func TestAuthorizationEndpointUsesTheLogin(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Login: config.Login{Mode: config.LoginLocal},
		API: config.API{BaseURL: base + "/fhir"}}, Store: st, Keyring: secrets.NewKeyring(kek), LoginParams: cheapHash})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for name, role := range map[string]login.Role{"alice": login.RoleClinician, "audrey": login.RoleAuditor} {
		if err := g.Login().Accounts().Add(ctx, name, "", []login.Role{role}, []byte(testPassword)); err != nil {
			t.Fatal(err)
		}
	}
	const redirect = "http://127.0.0.1:9/app/callback"
	if _, err := clients.NewRegistry(st).Add(ctx, clients.Client{ID: "app", Public: true, RedirectURIs: []string{redirect},
		Scopes: []string{"openid", "fhirUser", "launch/patient", "patient/*.rs"}}); err != nil {
		t.Fatal(err)
	}
	web := &httptest.Server{Listener: ln, Config: &http.Server{Handler: g.Handler()}}
	web.Start()
	defer web.Close()
	authorize := base + "/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect},
		"scope": {"launch/patient patient/Observation.rs"}, "state": {"st-123456789"}, "aud": {base + "/fhir"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode()

	for _, tc := range []struct {
		who  string
		want int
	}{{"alice", http.StatusOK}, {"audrey", http.StatusForbidden}} {
		c := noRedirects()
		res, _ := fetch(t, c, "GET", authorize, nil)
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?return=") {
			t.Fatalf("authorize without a session = %d (Location %q), want 303 to the login page", res.StatusCode, loc)
		}
		_, page := fetch(t, c, "GET", base+loc, nil)
		m := csrfRE.FindStringSubmatch(page)
		next := regexp.MustCompile(`name="next" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil || next == nil {
			t.Fatalf("login page lacks the token or the way back:\n%s", page)
		}
		back := html.UnescapeString(next[1])
		res, _ = fetch(t, c, "POST", base+"/login", url.Values{"csrf": {m[1]}, "username": {tc.who}, "password": {testPassword}, "next": {back}})
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/oauth/authorize?") {
			t.Fatalf("sign-in = %d (Location %q), want 303 back to the authorization endpoint", res.StatusCode, res.Header.Get("Location"))
		}
		res, body := fetch(t, c, "GET", base+res.Header.Get("Location"), nil)
		if res.StatusCode != tc.want {
			t.Errorf("%s at the authorization endpoint = %d, want %d\n%s", tc.who, res.StatusCode, tc.want, body)
		}
	}
}
