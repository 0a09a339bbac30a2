package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ehrgate/dashboard/browsertest"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

// TestDemoInARealBrowser runs the demo end to end (simulated EHR, sync into
// the embedded store, dashboard) and drives it with headless Chromium: look a
// patient up by MRN, open the chart, and check the sections a clinic relies
// on, including the edge-case patient with no conditions.
func TestDemoInARealBrowser(t *testing.T) {
	ctx := browsertest.NewBrowser(t)
	d := startDemo(t, 10, "--log-level", "warn")
	base, data := d.base, d.data

	// The demo patient's MRN, read from the store (what a clinician would type).
	st, err := sqlite.OpenDir(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	gen := synth.New(synth.Options{Patients: 10, Seed: 1})
	rec, err := st.Get(context.Background(), demoConnection, "Patient", gen.PatientID(synth.IndexDemo))
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Name, MRN string }
	if err := json.Unmarshal(rec.Normalized, &p); err != nil || p.MRN == "" {
		t.Fatalf("demo patient has no MRN: %v %s", err, rec.Normalized)
	}

	link := `a[href="/patients/demo/` + gen.PatientID(synth.IndexDemo) + `"]`
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), p.MRN),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(link)),
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.ID("problems")),
	)
	if err != nil {
		t.Fatalf("search by MRN and open the chart: %v", err)
	}
	read := func(id string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("reading #%s: %v", id, err)
		}
		return s
	}
	if h := read("patient-h"); !strings.Contains(h, p.Name) {
		t.Errorf("chart heading = %q, want %q", h, p.Name)
	}
	if v := read("vitals"); !strings.Contains(v, "/") || !strings.Contains(v, "Last updated") {
		t.Errorf("vitals section = %q; want a blood pressure and its freshness", v)
	}
	if l := read("labs"); !strings.Contains(l, "Last updated") {
		t.Errorf("labs section = %q; want freshness", l)
	}

	// The edge-case patient with no conditions: "None recorded", not an error.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/patients/demo/"+gen.PatientID(synth.IndexNoConditions)),
		chromedp.WaitVisible(chromedp.ID("problems")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if pr := read("problems"); !strings.Contains(pr, "None recorded") {
		t.Errorf("problems for the patient with no conditions = %q, want None recorded", pr)
	}
}
