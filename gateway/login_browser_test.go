package gateway_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ehrgate/audit"
	"ehrgate/config"
	"ehrgate/dashboard/browsertest"
	"ehrgate/login"
	"ehrgate/secrets"
	"ehrgate/store"
)

// startOIDCProvider runs interop/oidc/provider.js (panva's oidc-provider,
// pinned by its package-lock.json) on a free loopback port and returns its
// issuer URL; it skips the test when Node.js or the npm modules are absent.
func startOIDCProvider(t *testing.T, redirectURI, secret string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: the OpenID provider of this test is oidc-provider from npm (apt-get install -y nodejs npm; scripts/install-test-deps.sh)")
	}
	dir, _ := filepath.Abs(filepath.Join("..", "interop", "oidc"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Skip("interop/oidc/node_modules missing: run scripts/install-test-deps.sh (npm ci in interop/oidc)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(node, "provider.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "REDIRECT_URI="+redirectURI, "CLIENT_SECRET="+secret,
		"POST_LOGOUT_REDIRECT_URI="+strings.TrimSuffix(redirectURI, "/callback"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting oidc-provider: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- issuer
			}
		}
	}()
	select {
	case issuer := <-ready:
		return issuer
	case <-time.After(30 * time.Second):
		t.Fatalf("oidc-provider did not start in 30s; stderr:\n%s", stderr.String())
	}
	return ""
}

// TestOIDCSignInInABrowser is the done-when: a real OpenID provider
// (oidc-provider from npm) signs a user in to the dashboard in headless
// Chromium, through the provider's own login and consent pages, and the
// chart view's AuditEvent names that user. A person whose groups map to no
// ehrgate role is refused.
func TestOIDCSignInInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and an OpenID provider")
	}
	if _, err := browsertest.ExecPath(); err != nil {
		t.Skip("chromium not installed: apt-get install -y chromium (make test does this)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	const secret = "test-only-client-secret"
	issuer := startOIDCProvider(t, base+"/login/callback", secret)
	browser := browsertest.NewBrowser(t)

	ctx := context.Background()
	ehr := simulatedEHR(2)
	defer ehr.Close()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, _ := secrets.GenerateKEK()
	lc := config.Login{Mode: config.LoginOpenID, OIDC: config.LoginOIDC{Issuer: issuer, ClientID: "ehrgate", ClientSecretEnv: "OIDC_SECRET",
		RedirectURL: base + "/login/callback", Scopes: []string{"profile", "groups"},
		RoleMap: map[string]string{"hospital-clinicians": "clinician", "privacy-office": "auditor"}}}
	g := newLoginGateway(t, ctx, st, kek, ehr.URL, lc, func(k string) string {
		if k == "OIDC_SECRET" {
			return secret
		}
		return ""
	})
	conn, _ := g.Connection("clinic")
	if _, err := g.Sync(ctx, conn); err != nil {
		t.Fatal(err)
	}
	pats, err := st.SearchPatients(ctx, store.PatientQuery{Connection: "clinic", Limit: 1})
	if err != nil || len(pats) != 1 {
		t.Fatal(pats, err)
	}
	chart := "/patients/clinic/" + pats[0].ID
	web := &httptest.Server{Listener: ln, Config: &http.Server{Handler: g.Handler()}}
	web.Start()
	defer web.Close()

	signInAt := func(ctx context.Context, who string) error {
		return chromedp.Do(ctx,
			chromedp.Navigate(base+chart),
			chromedp.WaitVisible(chromedp.CSS(`#oidc`)), // ehrgate's login page
			chromedp.Click(chromedp.CSS(`#oidc`)),
			chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)), // the provider's login page
			chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), who),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "any password"),
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
			chromedp.WaitReady(chromedp.CSS(`input[name="prompt"][value="consent"]`)), // its consent page
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		)
	}

	// Someone the provider knows but whose groups give no ehrgate role.
	other, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	defer cancel()
	var heading string
	if err := signInAt(other, "no.role"); err != nil {
		t.Fatalf("signing in as no.role: %v", err)
	}
	if err := chromedp.Do(other, chromedp.WaitVisible(chromedp.CSS(`#message-h`))); err != nil {
		t.Fatalf("no.role's landing page: %v", err)
	}
	if heading, err = chromedp.Run(other, chromedp.Text(chromedp.CSS(`#message-h`))); err != nil {
		t.Fatal(err)
	}
	if heading != "No access" {
		t.Errorf("no.role lands on %q, want the No access page", heading)
	}

	// A clinician lands on the chart she asked for, signed in.
	if err := signInAt(browser, "dr.jones"); err != nil {
		t.Fatalf("signing in as dr.jones: %v", err)
	}
	if err := chromedp.Do(browser, chromedp.WaitVisible(chromedp.CSS(`#problems`))); err != nil {
		t.Fatalf("the chart after sign-in: %v", err)
	}
	who, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#signed-in-as`)))
	if err != nil {
		t.Fatal(err)
	}
	where, err := chromedp.Run(browser, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if who != "Dr Mary Jones" || where != base+chart {
		t.Errorf("after sign-in: at %s signed in as %q, want %s as Dr Mary Jones", where, who, base+chart)
	}
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err == nil {
		dir := os.Getenv("EHRGATE_SCREENSHOTS")
		if dir == "" {
			dir = t.TempDir()
		}
		path := filepath.Join(dir, "chart-signed-in.png")
		_ = os.WriteFile(path, png, 0o600)
		t.Logf("screenshot: %s", path)
	}

	// Sign out with the header's form (a POST carrying the session's CSRF
	// token, from the browser's own origin): ehrgate's session ends and the
	// browser moves on to the provider's end-session page (RP-Initiated
	// Logout), whose confirmation brings it back to ehrgate's login page;
	// the chart asks for a sign-in again, and the provider asks for the
	// password again (its own session ended too).
	if err := chromedp.Do(browser,
		chromedp.Click(chromedp.CSS(`#logout`)),
		chromedp.WaitVisible(chromedp.CSS(`button[name="logout"][value="yes"]`)), // the provider's sign-out page
		chromedp.Click(chromedp.CSS(`button[name="logout"][value="yes"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#oidc`)),
		chromedp.Navigate(base+chart),
		chromedp.WaitVisible(chromedp.CSS(`#oidc`)),
		chromedp.Click(chromedp.CSS(`#oidc`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="login"]`)),
	); err != nil {
		t.Fatalf("signing out: %v", err)
	}
	if names, err := st.ListDocuments(ctx, login.DocSession); err != nil || len(names) != 0 {
		t.Errorf("sessions in the store after signing out: %v, %v; want none", names, err)
	}

	entries, err := st.QueryAudit(ctx, store.AuditQuery{Patient: pats[0].ID})
	if err != nil || len(entries) != 1 || entries[0].Agent != "dr.jones" {
		t.Fatalf("audit entries of the chart view = %+v, %v; want one by dr.jones", entries, err)
	}
	ev, err := audit.Resource(entries[0])
	if err != nil || !strings.Contains(string(ev), `"dr.jones"`) || !strings.Contains(string(ev), "Dr Mary Jones") {
		t.Errorf("the chart view's AuditEvent does not name dr.jones (Dr Mary Jones): %s, %v", ev, err)
	}
	logins, _ := st.QueryAudit(ctx, store.AuditQuery{Type: audit.TypeLogin.Code})
	var ok, refused int
	for _, e := range logins {
		switch {
		case e.Agent == "dr.jones" && e.Outcome == string(audit.OutcomeSuccess):
			ok++
		case e.Outcome == string(audit.OutcomeMinor):
			refused++
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("sign-ins in the audit trail: %d by dr.jones, %d refused; want 1 and 1", ok, refused)
	}
}
