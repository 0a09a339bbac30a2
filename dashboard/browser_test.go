package dashboard_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ehrgate/dashboard/browsertest"
)

// TestBrowserSearchToChart drives a real headless Chromium: search by name
// from the overview, open the chart, check its sections, take a screenshot.
func TestBrowserSearchToChart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	ctx := browsertest.NewBrowser(t)
	srv := httptest.NewServer(newDashboard(fixture()).Handler())
	defer srv.Close()

	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "Lovelace"),
		chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/patients/sim-epic/p-ada"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/patients/sim-epic/p-ada"]`)),
		chromedp.WaitVisible(chromedp.ID("problems")),
	)
	if err != nil {
		t.Fatalf("search and open chart: %v", err)
	}
	texts := map[string]string{}
	for _, id := range []string{"patient-h", "problems", "vitals", "allergies", "immunizations", "procedures", "documents"} {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("reading #%s: %v", id, err)
		}
		texts[id] = s
	}
	for id, want := range map[string]string{
		"patient-h":     "Ada Lovelace",
		"problems":      "Essential hypertension",
		"vitals":        "120/80 mm[Hg]",
		"allergies":     "None recorded",
		"immunizations": "Not available from this source",
		"procedures":    "Could not be fetched",
		"documents":     "Not yet fetched",
	} {
		if !strings.Contains(texts[id], want) {
			t.Errorf("#%s text = %q, want it to contain %q", id, texts[id], want)
		}
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatalf("writing screenshot: %v", err)
	}
	t.Logf("chart screenshot: %s (%d bytes)", path, len(png))
}
