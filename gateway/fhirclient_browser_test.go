package gateway_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ehrgate/clients"
	"ehrgate/config"
	"ehrgate/dashboard/browsertest"
	"ehrgate/gateway"
	"ehrgate/login"
	"ehrgate/refresh"
	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/synth"
)

// TestFHIRClientStandaloneLaunchAgainstEhrgate: the official SMART
// JavaScript client (fhirclient, npm, pinned in interop/smart) runs as a
// third-party app in headless Chromium and completes a standalone launch
// against ehrgate's own authorization server: the clinician signs in to
// ehrgate, picks a patient, and the app exchanges the code (PKCE) and
// reads that patient through ehrgate's FHIR API, cross-origin.
func TestFHIRClientStandaloneLaunchAgainstEhrgate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	if _, err := browsertest.ExecPath(); err != nil {
		t.Skip("chromium not installed: apt-get install -y chromium (make test does this)")
	}
	dir, _ := filepath.Abs(filepath.Join("..", "interop", "smart"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhirclient", "build", "fhir-client.js")); err != nil {
		t.Skip("fhirclient is not installed: run `npm ci` in interop/smart (scripts/install-test-deps.sh does it)")
	}
	// The app, on its own origin.
	mux := http.NewServeMux()
	for path, file := range map[string]string{"/launch.html": "launch.html", "/index.html": "index.html",
		"/fhir-client.js": filepath.Join("node_modules", "fhirclient", "build", "fhir-client.js")} {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ct := "text/html; charset=utf-8"
			if strings.HasSuffix(file, ".js") {
				ct = "text/javascript; charset=utf-8"
			}
			w.Header().Set("Content-Type", ct)
			w.Write(b)
		})
	}
	app := httptest.NewServer(mux)
	defer app.Close()

	// ehrgate, with local login, the API and its authorization server.
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
	gen := synth.New(synth.Options{Patients: 3, Seed: 5})
	var recs []store.Record
	for i := 0; i < gen.Patients(); i++ {
		for _, raw := range gen.Patient(i) {
			rec, err := refresh.NewRecord("clinic", raw, gen.Now(), "test")
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
	}
	if _, err := st.PutResources(ctx, recs); err != nil {
		t.Fatal(err)
	}
	kek, _ := secrets.GenerateKEK()
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{
		Connections: []config.Connection{{Name: "clinic", BaseURL: "https://clinic.test/fhir"}},
		Login:       config.Login{Mode: config.LoginLocal},
		API:         config.API{BaseURL: base + "/fhir"}},
		Store: st, Keyring: secrets.NewKeyring(kek), LoginParams: cheapHash})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Login().Accounts().Add(ctx, "alice", "Dr Alice", []login.Role{login.RoleClinician}, []byte(testPassword)); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.NewRegistry(st).Add(ctx, clients.Client{ID: "fhirclient-app", Public: true,
		RedirectURIs: []string{app.URL + "/index.html"}, Scopes: []string{"launch/patient", "patient/Patient.rs", "patient/Observation.rs"}}); err != nil {
		t.Fatal(err)
	}
	web := &httptest.Server{Listener: ln, Config: &http.Server{Handler: g.Handler()}}
	web.Start()
	defer web.Close()

	pat, err := st.Get(ctx, "clinic", "Patient", gen.PatientID(1))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Name []struct{ Family string }
	}
	json.Unmarshal(pat.Raw, &p)
	want := "clinic." + gen.PatientID(1)

	browser := browsertest.NewBrowser(t)
	scope := "launch/patient patient/Patient.rs patient/Observation.rs"
	drive(t, browser, "standalone launch: sign in, pick, read",
		chromedp.Navigate(app.URL+"/launch.html?"+url.Values{"iss": {base + "/fhir"}, "scope": {scope}}.Encode()),
		chromedp.WaitVisible(chromedp.CSS(`#username`)), // ehrgate's sign-in page
		chromedp.SendKeys(chromedp.CSS(`#username`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`#password`), testPassword),
		chromedp.Click(chromedp.CSS(`#signin`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="q"]`)), // the patient picker
		chromedp.SendKeys(chromedp.CSS(`input[name="q"]`), p.Name[0].Family),
		chromedp.Click(chromedp.CSS(`button[value="search"]`)),
	)
	drive(t, browser, "the picker finds the patient", chromedp.WaitVisible(chromedp.CSS(`label[for="p-clinic/`+gen.PatientID(1)+`"]`)))
	drive(t, browser, "choose the patient", chromedp.Click(chromedp.CSS(`label[for="p-clinic/`+gen.PatientID(1)+`"]`)))
	checked, err := chromedp.Run(browser, chromedp.Evaluate[bool](`document.querySelector('input[value="clinic/`+gen.PatientID(1)+`"]').checked`))
	if err != nil || !checked {
		t.Fatalf("the patient's radio button is not checked after clicking its label (%v)", err)
	}
	drive(t, browser, "open the app", chromedp.Click(chromedp.CSS(`button[value="choose"]`)))
	drive(t, browser, "the app reads the patient", chromedp.WaitVisible(chromedp.ID("done")))
	out, err := chromedp.Run(browser, chromedp.Text(chromedp.ID("out")))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ContextPatient, ResourceType, ID, Scope, Error string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("app output %q: %v", out, err)
	}
	if got.Error != "" {
		t.Fatalf("fhirclient failed: %s", got.Error)
	}
	if got.ContextPatient != want || got.ResourceType != "Patient" || got.ID != want {
		t.Errorf("fhirclient got patient in context %q and read %s/%s; want %s", got.ContextPatient, got.ResourceType, got.ID, want)
	}
	if !strings.Contains(got.Scope, "patient/Patient.rs") {
		t.Errorf("granted scope %q", got.Scope)
	}
}

// drive runs steps with at most 40s of the browser's time, and on failure
// reports the page the browser is on.
func drive(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("%s (at %s): %v\n%.6000s", what, loc, err, body)
	}
}
