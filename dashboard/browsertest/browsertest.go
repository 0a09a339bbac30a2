// Package browsertest starts a real headless Chromium for end-to-end tests
// of ehrgate's pages, driven with chromedp.
//
// Chromium is found through the EHRGATE_CHROMIUM environment variable, then
// /usr/bin/chromium, then chromium, chromium-browser or google-chrome on the
// PATH. When none exists, NewBrowser skips the test. The launch flags suit a
// sandbox-less container without network: no sandbox, no GPU, no QUIC, no
// background networking, a fresh profile per test.
package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Timeout bounds everything a test does with the browser NewBrowser returns.
const Timeout = 60 * time.Second

// ErrNotFound is returned by ExecPath when no Chromium is installed.
var ErrNotFound = errors.New("browsertest: chromium not found")

// ExecPath returns the path of the Chromium to run.
func ExecPath() (string, error) {
	if p := os.Getenv("EHRGATE_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", errors.Join(ErrNotFound, err)
		}
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Flags returns the command-line switches this package requires on ehrgate's
// machines, for callers that run the binary themselves (for example with
// --screenshot).
func Flags(userDataDir string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + userDataDir,
	}
}

// NewBrowser launches a headless Chromium and returns a chromedp context for
// one tab in it, bounded by Timeout. The browser is closed when the test
// ends. It skips the test when Chromium is not installed and fails it when
// Chromium does not start.
func NewBrowser(t testing.TB) context.Context {
	t.Helper()
	path, err := ExecPath()
	if err != nil {
		t.Skip("chromium not installed: apt-get install -y chromium (make test does this)")
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancelTimeout)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1600),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelTab) // runs before cancelAlloc: close the tab, then the browser
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("starting chromium %s: %v", path, err)
	}
	return tabCtx
}
