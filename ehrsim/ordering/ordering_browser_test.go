package ordering_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"ehrgate/audit"
	"ehrgate/cdshooks"
	"ehrgate/clients"
	"ehrgate/dashboard/browsertest"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/cdsclient"
	"ehrgate/ehrsim/ordering"
	"ehrgate/server"
	"ehrgate/store"
	_ "ehrgate/store/sqlite" // registers sqlite: stores
)

// The simulated EHR's patients in these tests.
const (
	patPenicillin = "pen1"   // penicillin allergy (SNOMED CT substance), criticality high
	patNone       = "clear1" // no allergies
)

var ehrResources = []string{
	`{"resourceType":"Patient","id":"pen1","name":[{"family":"Allergic","given":["Penny"]}],"birthDate":"1970-01-01"}`,
	`{"resourceType":"Patient","id":"clear1","name":[{"family":"Clear","given":["Carl"]}],"birthDate":"1980-05-05"}`,
	`{"resourceType":"AllergyIntolerance","id":"alg-pen","patient":{"reference":"Patient/pen1"},` +
		`"code":{"coding":[{"system":"http://snomed.info/sct","code":"764146007","display":"Penicillin (substance)"}],"text":"Penicillin"},` +
		`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},` +
		`"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},` +
		`"category":["medication"],"criticality":"high","recordedDate":"2019-03-01",` +
		`"reaction":[{"manifestation":[{"text":"Anaphylaxis"}],"severity":"severe"}]}`,
}

// loop is ehrgate's CDS service on a real store and the simulated EHR
// (FHIR API and ordering screen), each on its own HTTP server.
type loop struct {
	st     store.Backend
	cds    *httptest.Server
	ehr    *httptest.Server
	screen *ordering.Screen
}

func newLoop(t *testing.T) *loop {
	t.Helper()
	var rs []json.RawMessage
	for _, r := range ehrResources {
		rs = append(rs, json.RawMessage(r))
	}
	return newLoopWith(t, rs)
}

// newLoopWith is newLoop over the given EHR resources.
func newLoopWith(t *testing.T, resources []json.RawMessage) *loop {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := &loop{st: st}

	// ehrgate
	var cdsH atomic.Pointer[http.Handler]
	l.cds = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*cdsH.Load()).ServeHTTP(w, r) }))
	t.Cleanup(l.cds.Close)
	svc, err := cdshooks.New(cdshooks.Options{BaseURL: l.cds.URL, Store: st,
		Audit: audit.NewLog(st, audit.Source{InstanceID: "test"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(server.Options{Routes: svc.Routes()}).Handler()
	cdsH.Store(&h)

	// the simulated EHR
	sim := ehrsim.New(ehrsim.Options{})
	for _, r := range resources {
		if err := sim.Load(r); err != nil {
			t.Fatalf("loading %s: %v", r, err)
		}
	}
	var ehrH atomic.Pointer[http.Handler]
	l.ehr = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*ehrH.Load()).ServeHTTP(w, r) }))
	t.Cleanup(l.ehr.Close)
	l.screen, err = ordering.New(ordering.Options{FHIR: sim.Handler(), FHIRBase: l.ehr.URL + "/fhir", CDSBase: l.cds.URL,
		Client: cdsclient.Options{Issuer: "https://sim-ehr.example"},
		Record: func(_ context.Context, res json.RawMessage) error { return sim.Load(res) }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", sim.Handler())
	mux.Handle("/ehr/", l.screen.Handler())
	var eh http.Handler = mux
	ehrH.Store(&eh)

	// ehrgate knows the simulator as a CDS client by its public key.
	if _, err := clients.NewRegistry(st).Add(ctx, clients.Client{ID: "sim-ehr", CDS: true, Issuer: l.screen.Issuer(), JWKS: l.screen.JWKS()}); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBrowserOrderAmoxicillinWithPenicillinAllergy drives the ordering
// screen in a real headless Chromium: sign in, open a patient allergic to
// penicillin, order amoxicillin; ehrgate's critical card names the
// allergy; accepting the suggested alternative replaces the draft with
// azithromycin and ehrgate's store records the feedback. Overriding a
// second card with a reason is recorded too, and the same order for a
// patient without allergies shows no card and signs.
func TestBrowserOrderAmoxicillinWithPenicillinAllergy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	l := newLoop(t)
	ctx := browsertest.NewBrowser(t)
	bg := context.Background()
	const allergyCard = `#drafts .card[data-service="drug-allergy-select"]`

	err := chromedp.Do(ctx,
		chromedp.Navigate(l.ehr.URL+"/ehr/"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "dr.smith"),
		chromedp.SendKeys(chromedp.ID("password"), "password"),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/ehr/patients/pen1"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/ehr/patients/pen1"]`)),
		chromedp.WaitVisible(chromedp.ID("allergies")),
		chromedp.SetValue(chromedp.ID("medication"), "308182"),
		chromedp.Click(chromedp.ID("order")),
		chromedp.WaitVisible(chromedp.CSS(allergyCard)),
	)
	if err != nil {
		t.Fatalf("sign in and order amoxicillin: %v", err)
	}
	text := must(chromedp.Run(ctx, chromedp.Text(chromedp.CSS(allergyCard))))(t)
	ind := must(chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(allergyCard), "data-indicator")))(t)
	cardID := must(chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(allergyCard), "data-card")))(t)
	if !strings.Contains(text, "Allergy to Penicillin") || !strings.Contains(text, "amoxicillin") || ind.Value != "critical" {
		t.Fatalf("card (%s) = %q, want a critical card naming the penicillin allergy and amoxicillin", ind.Value, text)
	}

	png := must(chromedp.Run(ctx, chromedp.FullScreenshot(100)))(t)
	shot := filepath.Join(t.TempDir(), "card.png")
	if dir := os.Getenv("EHRGATE_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "ordering-card.png")
	}
	if err := os.WriteFile(shot, png, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("the card as shown: %s (%d bytes)", shot, len(png))

	// Accept the suggested alternative: the draft becomes azithromycin,
	// checked again (no card), and ehrgate records the feedback.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.Search(`//button[contains(., "Replace with azithromycin")]`)),
		chromedp.WaitVisible(chromedp.Search(`//div[@id="drafts"]//p[@class="label"][contains(., "azithromycin")]`)),
	)
	if err != nil {
		t.Fatalf("accepting the alternative: %v", err)
	}
	drafts := must(chromedp.Run(ctx, chromedp.Text(chromedp.ID("drafts"))))(t)
	if strings.Contains(drafts, "amoxicillin 250 MG") || strings.Contains(drafts, "Allergy to") {
		t.Errorf("after accepting, drafts = %q, want only azithromycin without a card", drafts)
	}
	fb, err := cdshooks.ReadFeedback(bg, l.st, cdshooks.ServiceOrderSelect)
	if err != nil {
		t.Fatal(err)
	}
	if len(fb) != 1 || fb[0].Card != cardID.Value || fb[0].Outcome != "accepted" || len(fb[0].AcceptedSuggestions) != 1 || fb[0].Client != "sim-ehr" {
		t.Fatalf("recorded feedback = %+v, want card %s accepted by sim-ehr", fb, cardID.Value)
	}

	// Order amoxicillin again and dismiss the card with a reason.
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("medication"), "308182"),
		chromedp.Click(chromedp.ID("order")),
		chromedp.WaitVisible(chromedp.CSS(allergyCard)),
		chromedp.SetValue(chromedp.CSS(allergyCard+" select.reason"), "tolerated-before"),
		chromedp.Click(chromedp.CSS(allergyCard+" button.override")),
		chromedp.WaitVisible(chromedp.CSS(allergyCard+" p.outcome")),
	)
	if err != nil {
		t.Fatalf("overriding the card: %v", err)
	}
	fb, err = cdshooks.ReadFeedback(bg, l.st, cdshooks.ServiceOrderSelect)
	if err != nil {
		t.Fatal(err)
	}
	var overridden []cdshooks.FeedbackRecord
	for _, f := range fb {
		if f.Outcome == "overridden" {
			overridden = append(overridden, f)
		}
	}
	if len(fb) != 2 || len(overridden) != 1 || overridden[0].OverrideReason == nil || overridden[0].OverrideReason.Code != "tolerated-before" {
		t.Fatalf("recorded feedback = %+v, want one accepted and one overridden (tolerated-before)", fb)
	}
	es, err := l.st.QueryAudit(bg, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	creates := 0
	for _, e := range es {
		if e.Action == string(audit.ActionCreate) && e.Agent == "sim-ehr" {
			creates++
		}
	}
	if creates != 2 {
		t.Errorf("audit trail has %d feedback events from sim-ehr, want 2", creates)
	}

	// A patient without allergies: no card; the order signs.
	err = chromedp.Do(ctx,
		chromedp.Navigate(l.ehr.URL+"/ehr/patients/clear1"),
		chromedp.WaitVisible(chromedp.ID("medication")),
		chromedp.SetValue(chromedp.ID("medication"), "308182"),
		chromedp.Click(chromedp.ID("order")),
		chromedp.WaitVisible(chromedp.CSS(`#drafts .order[data-draft]`)),
	)
	if err != nil {
		t.Fatalf("ordering for the patient without allergies: %v", err)
	}
	n := must(chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#drafts .card").length`)))(t)
	notice := must(chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#drafts .notice").length`)))(t)
	if n != 0 || notice != 0 {
		t.Fatalf("patient without allergies: %d cards and %d notices, want none", n, notice)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("sign")),
		chromedp.WaitVisible(chromedp.Search(`//ul[@id="signed"]/li[contains(., "amoxicillin")]`)),
	)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
}

// must returns a helper that fails the test on err, else returns v.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
