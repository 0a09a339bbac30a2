package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ehrgate/dashboard/browsertest"
	"ehrgate/ehrsim/smartauth"
	"ehrgate/store"
	"ehrgate/synth"
)

// lockedBuffer is an io.Writer safe to read while the demo writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// launchDemo is a demo started in-process with its stdout kept, so the test
// can find the simulated EHR's launch page.
type launchDemo struct {
	*demoRun
	stdout    *lockedBuffer
	launchURL string // the simulated EHR's "launch app" page
	simOrigin string // http://host:port of the simulated EHR
}

var launchPageRE = regexp.MustCompile(`EHR launch page: (http://\S+)/auth/launch`)

// startLaunchDemo runs `ehrgate demo` like startDemo, keeping stdout and
// logs, and waits for the first sync. Logs go to the returned demo's logs.
func startLaunchDemo(t *testing.T, patients int, extra ...string) *launchDemo {
	t.Helper()
	return startLaunchDemoEnv(t, patients, nil, extra...)
}

// startLaunchDemoEnv is startLaunchDemo with the CLI's environment env.
func startLaunchDemoEnv(t *testing.T, patients int, env []string, extra ...string) *launchDemo {
	t.Helper()
	addr := freeAddr(t)
	d := &launchDemo{demoRun: &demoRun{base: "http://" + addr, data: t.TempDir(), logs: &bytes.Buffer{}, done: make(chan error, 1)},
		stdout: &lockedBuffer{}}
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	args := append([]string{"demo", "--data", d.data, "--http-addr", addr, "--patients", fmt.Sprint(patients),
		"--sync-every", "0"}, extra...)
	go func() {
		cmd := newRootCmd(d.stdout, logs, env)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(ctx)
		d.logs.WriteString(logs.String()) // read by the test only after done
		d.done <- err
	}()
	t.Cleanup(func() { d.stop(t) })
	waitFor(t, d.base+"/healthz")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(get(t, d.base+"/metrics"), "ehrgate_sync_last_success_timestamp_seconds") {
		if time.Now().After(deadline) {
			t.Fatal("the demo's first sync did not complete")
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := launchPageRE.FindStringSubmatch(d.stdout.String())
	if m == nil {
		t.Fatalf("the demo did not print its EHR launch page:\n%s", d.stdout.String())
	}
	d.simOrigin, d.launchURL = m[1], m[1]+"/auth/launch"
	return d
}

// demoPatient returns the synthetic demo patient's id and display name as
// the demo connection stored it.
func demoPatient(t *testing.T, storeURL string, patients int) (id, name string) {
	t.Helper()
	st, err := store.Open(context.Background(), storeURL, store.OpenOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id = synth.New(synth.Options{Patients: patients, Seed: 1}).PatientID(synth.IndexDemo)
	rec, err := st.Get(context.Background(), demoConnection, "Patient", id)
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Name string }
	if err := json.Unmarshal(rec.Normalized, &p); err != nil || p.Name == "" {
		t.Fatalf("demo patient has no name: %v %s", err, rec.Normalized)
	}
	return id, p.Name
}

// loginAndAllow signs in to the simulated EHR as dr.smith and approves the
// consent page; pick, when not empty, is the patient chosen on the picker.
func loginAndAllow(pick string) []chromedp.Action[chromedp.Void] {
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "dr.smith"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	}
	if pick != "" {
		sel := chromedp.CSS(`button[name="patient"][value="` + pick + `"]`)
		steps = append(steps, chromedp.WaitVisible(sel), chromedp.Click(sel))
	}
	return append(steps,
		chromedp.WaitVisible(chromedp.CSS(`button[name="decision"][value="allow"]`)),
		chromedp.Click(chromedp.CSS(`button[name="decision"][value="allow"]`)),
	)
}

// drive runs steps with at most 40s of the browser's time, and on failure
// reports the page the browser is on.
func drive(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s (at %s): %v\n%.600s", what, loc, err, body)
	}
}

// checkLaunchedChart asserts the browser shows ehrgate's chart of patient
// on the launch connection, with its data sections filled by the launch.
func checkLaunchedChart(t *testing.T, ctx context.Context, base, patient, name, shot string) {
	t.Helper()
	drive(t, ctx, "the launch ends on a chart", chromedp.WaitVisible(chromedp.ID("patient-h")))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if want := base + "/patients/" + demoLaunchConnection + "/" + patient + "?launched=1"; loc != want {
		t.Errorf("the launch ended at %s, want %s", loc, want)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), shot)
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the launched chart: %s (%d bytes)", path, len(png))

	text := func(id string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("reading #%s: %v", id, err)
		}
		return s
	}
	if h := text("patient-h"); !strings.Contains(h, name) {
		t.Errorf("banner heading = %q, want the launched patient %q", h, name)
	}
	if m := text("main"); !strings.Contains(m, "Opened from your EHR") {
		t.Errorf("the launched view does not say the patient came from the EHR launch")
	}
	// The launch refreshed this patient on the launch connection: sections
	// are fetched (freshness shown), not "Not yet fetched".
	for _, id := range []string{"problems", "medications", "allergies", "vitals", "labs", "encounters", "immunizations"} {
		s := text(id)
		if strings.Contains(s, "Not yet fetched") || strings.Contains(s, "Could not") {
			t.Errorf("section #%s of the launched chart = %q; want data fetched with the launch token", id, s)
		}
	}
	if v := text("vitals"); !strings.Contains(v, "Last updated") {
		t.Errorf("vitals of the launched chart = %q, want data and its freshness", v)
	}
}

// TestEHRLaunchInARealBrowser is issue 3's "done when": on the simulated
// EHR's launch page a clinician presses "launch" for a patient, signs in,
// approves, and lands on ehrgate's chart of that patient, refreshed with the
// token the launch produced.
func TestEHRLaunchInARealBrowser(t *testing.T) {
	ctx := browsertest.NewBrowser(t)
	const patients = 6
	d := startLaunchDemo(t, patients, "--log-level", "warn")
	patient, name := demoPatient(t, "sqlite:"+d.data, patients)

	button := chromedp.CSS(`button[name="launch"][value="` + demoLaunchClient + ` ` + patient + `"]`)
	steps := append([]chromedp.Action[chromedp.Void]{
		chromedp.Navigate(d.launchURL),
		chromedp.WaitVisible(button),
		chromedp.Click(button),
	}, loginAndAllow("")...)
	drive(t, ctx, "EHR launch → login → consent", steps...)
	checkLaunchedChart(t, ctx, d.base, patient, name, "ehr-launch.png")
}

// TestStandaloneLaunchWithPickerInARealBrowser starts at ehrgate
// (/smart/login?connection=demo-launch&patient=pick): the EHR signs the
// clinician in, shows its patient picker, asks for consent, and ehrgate
// shows the picked patient.
func TestStandaloneLaunchWithPickerInARealBrowser(t *testing.T) {
	ctx := browsertest.NewBrowser(t)
	const patients = 6
	d := startLaunchDemo(t, patients, "--log-level", "warn")
	patient, name := demoPatient(t, "sqlite:"+d.data, patients)

	// The standalone URL names the connection as configured.
	start := d.base + "/smart/login?connection=" + demoLaunchConnection + "&patient=pick"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, d.simOrigin+"/auth/authorize") {
		t.Fatalf("GET %s = %d (Location %q), want a redirect to the EHR's authorize endpoint:\n%.300s", start, resp.StatusCode, loc, body)
	}
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(start)}, loginAndAllow(patient)...)
	drive(t, ctx, "standalone launch → login → picker → consent", steps...)
	checkLaunchedChart(t, ctx, d.base, patient, name, "standalone-launch.png")
}

// fhirclientDir is interop/smart, where `npm ci` installs fhirclient.
func fhirclientDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "interop", "smart"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhirclient", "build", "fhir-client.js")); err != nil {
		t.Skip("fhirclient (the official SMART JavaScript client) is not installed: run `npm ci` in interop/smart " +
			"(scripts/install-test-deps.sh does it when npm and the npm registry are reachable)")
	}
	return dir
}

// TestFHIRClientJSAgainstTheSimulatorInARealBrowser drives the simulated
// EHR's authorization server with a SMART client no one here wrote: the
// official JavaScript client (fhirclient, pinned in interop/smart), loaded
// in headless Chromium as a static app. It runs an EHR launch and a
// standalone launch with the patient picker, then reads Patient with the
// access token it got; the Patient read must be the patient in context.
func TestFHIRClientJSAgainstTheSimulatorInARealBrowser(t *testing.T) {
	dir := fhirclientDir(t)

	// The third-party app: launch.html, index.html and fhir-client.js.
	mux := http.NewServeMux()
	for path, file := range map[string]string{
		"/launch.html":    "launch.html",
		"/index.html":     "index.html", // served as is: http.FileServer would redirect it to "/"
		"/fhir-client.js": filepath.Join("node_modules", "fhirclient", "build", "fhir-client.js"),
	} {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if strings.HasSuffix(file, ".js") {
				w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			} else {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
			}
			w.Write(b)
		})
	}
	app := httptest.NewServer(mux)
	defer app.Close()

	// The simulated EHR with its authorization server, as `ehrgate sim` runs it.
	f := simFlags{patients: 4, seed: 1, pageSize: 50, vendor: "generic", accessTTL: time.Hour, rotateRefresh: true}
	log := slog.New(slog.DiscardHandler)
	sim, err := f.newSim(log)
	if err != nil {
		t.Fatal(err)
	}
	client := smartauth.Client{ID: "fhirclient-app", Name: "fhirclient app", Public: true, TokenEndpointAuth: "none",
		RedirectURIs: []string{app.URL + "/index.html"}, LaunchURL: app.URL + "/launch.html",
		Scopes: []string{"launch", "launch/patient", "openid", "fhirUser", "patient/*.read", "patient/*.rs"}}
	ep, err := f.start(context.Background(), sim, "127.0.0.1:0", []smartauth.Client{client}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.stop()
	ids := sim.PatientIDs()
	origin := strings.TrimSuffix(ep.base, "/fhir")

	tests := []struct {
		name    string
		patient string
		start   []chromedp.Action[chromedp.Void]
		pick    bool
	}{
		{name: "EHR launch", patient: ids[1], start: []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(origin + "/auth/launch"),
			chromedp.WaitVisible(chromedp.CSS(`button[value="fhirclient-app ` + ids[1] + `"]`)),
			chromedp.Click(chromedp.CSS(`button[value="fhirclient-app ` + ids[1] + `"]`)),
		}},
		{name: "standalone launch", patient: ids[2], pick: true, start: []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(app.URL + "/launch.html?iss=" + ep.base),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := browsertest.NewBrowser(t) // a fresh profile: no session left from the other launch
			pick := ""
			if tc.pick {
				pick = tc.patient
			}
			steps := append(tc.start, loginAndAllow(pick)...)
			steps = append(steps, chromedp.WaitVisible(chromedp.ID("done")))
			drive(t, ctx, tc.name+" with fhirclient", steps...)
			out, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("out")))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				ContextPatient, ResourceType, ID, Scope, Error string
				HasIDToken                                     bool
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("app output %q: %v", out, err)
			}
			if got.Error != "" {
				t.Fatalf("fhirclient failed: %s", got.Error)
			}
			if got.ContextPatient != tc.patient || got.ResourceType != "Patient" || got.ID != tc.patient {
				t.Errorf("fhirclient got patient in context %q and read %s/%s; want %s both", got.ContextPatient, got.ResourceType, got.ID, tc.patient)
			}
			if !got.HasIDToken || !strings.Contains(got.Scope, "patient/") {
				t.Errorf("token response: id_token %v, scope %q; want an id_token and patient scopes", got.HasIDToken, got.Scope)
			}
		})
	}
}

var _ io.Writer = (*lockedBuffer)(nil)
