package dashboard_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"ehrgate/dashboard/browsertest"
)

// TestBrowserFeedReplay drives a real headless Chromium: open a feed page
// from the overview, press the replay button of a refused message (a
// same-origin form carrying the session's CSRF token), and see the
// message queued again.
func TestBrowserFeedReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	ctx := browsertest.NewBrowser(t)
	s, _ := feedStore(t)
	srv := httptest.NewServer(as(feedAdmin, feedDashboard(s).Handler()))
	defer srv.Close()
	probs, err := s.HL7Problems(context.Background(), "north", 10)
	if err != nil {
		t.Fatal(err)
	}
	var button string
	for _, p := range probs {
		if p.ControlID == "REF-1" {
			button = "replay-" + itoa(p.Seq)
		}
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/feeds/north"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/feeds/north"]`)),
		chromedp.WaitVisible(chromedp.ID("problems")),
	)
	if err != nil {
		t.Fatalf("open the feed page: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		path := filepath.Join(t.TempDir(), "feed.png")
		if os.Getenv("EHRGATE_SCREENSHOTS") != "" {
			path = filepath.Join(os.Getenv("EHRGATE_SCREENSHOTS"), "feed.png")
		}
		_ = os.WriteFile(path, png, 0o600)
		t.Logf("feed screenshot: %s", path)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(button)), chromedp.WaitVisible(chromedp.CSS(`p[role="status"]`))); err != nil {
		t.Fatalf("press replay: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p[role="status"]`)))
	if err != nil || !strings.Contains(status, "queued for conversion again") {
		t.Errorf("after replay the page says %q, %v", status, err)
	}
	pend, err := s.PendingHL7(context.Background(), "north", 0, 10)
	if err != nil || len(pend) != 1 || pend[0].ControlID != "REF-1" {
		t.Errorf("PendingHL7 after the button = %+v, %v; want REF-1", pend, err)
	}
}
