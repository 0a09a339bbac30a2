package smart

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

type docServer struct {
	mu       sync.Mutex
	hits     map[string]int
	wellKnow func(w http.ResponseWriter)
	metadata func(w http.ResponseWriter)
	srv      *httptest.Server
}

func newDocServer(t *testing.T) *docServer {
	d := &docServer{hits: map[string]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.hits[r.URL.Path]++
		wk, md := d.wellKnow, d.metadata
		d.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/smart-configuration") && wk != nil:
			wk(w)
		case strings.HasSuffix(r.URL.Path, "/metadata") && md != nil:
			md(w)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *docServer) hit(p string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[p]
}

func TestDiscoveryCaching(t *testing.T) {
	cases := []struct {
		cc     string
		cached bool
	}{
		{"max-age=60", true},
		{"public, max-age=60", true},
		{"no-store", false},
		{"no-cache, max-age=60", false},
		{"", false},
		{"max-age=0", false},
	}
	for _, c := range cases {
		t.Run(c.cc, func(t *testing.T) {
			d := newDocServer(t)
			d.wellKnow = func(w http.ResponseWriter) {
				w.Header().Set("Cache-Control", c.cc)
				w.Write([]byte(`{"token_endpoint":"` + d.srv.URL + `/token","authorization_endpoint":"` + d.srv.URL + `/auth","capabilities":["permission-v2"]}`))
			}
			clock := newClock()
			disc := NewDiscoverer(d.srv.Client(), clock.Now)
			for range 3 {
				cfg, err := disc.Discover(context.Background(), d.srv.URL+"/fhir/")
				if err != nil || cfg.ScopeStyle() != V2 {
					t.Fatalf("Discover: %+v, %v", cfg, err)
				}
			}
			want := 3
			if c.cached {
				want = 1
			}
			if got := d.hit("/fhir/.well-known/smart-configuration"); got != want {
				t.Errorf("Cache-Control %q: %d fetches for 3 discoveries, want %d", c.cc, got, want)
			}
			if c.cached {
				clock.Advance(61 * time.Second)
				disc.Discover(context.Background(), d.srv.URL+"/fhir")
				if got := d.hit("/fhir/.well-known/smart-configuration"); got != 2 {
					t.Errorf("after max-age: %d fetches, want 2", got)
				}
			}
		})
	}
}

const capabilityWithOAuth = `{"resourceType":"CapabilityStatement","rest":[{"mode":"server","security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[{"url":"authorize","valueUri":"https://ehr.example/auth"},{"url":"token","valueUri":"https://ehr.example/token"}]}]}}]}`

func TestDiscoveryFallback(t *testing.T) {
	t.Run("capability statement when the document is absent", func(t *testing.T) {
		d := newDocServer(t)
		d.metadata = func(w http.ResponseWriter) { w.Write([]byte(capabilityWithOAuth)) }
		cfg, err := NewDiscoverer(d.srv.Client(), nil).Discover(context.Background(), d.srv.URL+"/fhir")
		if err != nil || cfg.TokenEndpoint != "https://ehr.example/token" || cfg.AuthorizationEndpoint != "https://ehr.example/auth" || !cfg.FromCapabilityStatement {
			t.Fatalf("Discover = %+v, %v", cfg, err)
		}
	})
	t.Run("no fallback when the document is present but bad", func(t *testing.T) {
		d := newDocServer(t)
		d.wellKnow = func(w http.ResponseWriter) { w.Write([]byte(`{"authorization_endpoint":"https://ehr.example/auth"}`)) }
		d.metadata = func(w http.ResponseWriter) { w.Write([]byte(capabilityWithOAuth)) }
		_, err := NewDiscoverer(d.srv.Client(), nil).Discover(context.Background(), d.srv.URL+"/fhir")
		if err == nil || !strings.Contains(err.Error(), "token_endpoint is missing") || d.hit("/fhir/metadata") != 0 {
			t.Errorf("Discover = %v (metadata fetched %d times)", err, d.hit("/fhir/metadata"))
		}
	})
	t.Run("no fallback on a server error", func(t *testing.T) {
		d := newDocServer(t)
		d.wellKnow = func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }
		d.metadata = func(w http.ResponseWriter) { w.Write([]byte(capabilityWithOAuth)) }
		if _, err := NewDiscoverer(d.srv.Client(), nil).Discover(context.Background(), d.srv.URL+"/fhir"); err == nil || d.hit("/fhir/metadata") != 0 {
			t.Errorf("Discover after 503 = %v", err)
		}
	})
	t.Run("neither: error names both", func(t *testing.T) {
		d := newDocServer(t)
		d.metadata = func(w http.ResponseWriter) {
			w.Write([]byte(`{"resourceType":"CapabilityStatement","rest":[{"mode":"server"}]}`))
		}
		_, err := NewDiscoverer(d.srv.Client(), nil).Discover(context.Background(), d.srv.URL+"/fhir")
		if !errors.Is(err, ErrNoConfiguration) || !strings.Contains(err.Error(), ".well-known/smart-configuration") || !strings.Contains(err.Error(), "oauth-uris") {
			t.Errorf("Discover = %v", err)
		}
	})
	t.Run("plain http endpoints refused off loopback", func(t *testing.T) {
		if _, err := ParseConfiguration([]byte(`{"token_endpoint":"http://ehr.example/token"}`)); err == nil {
			t.Error("http token endpoint accepted")
		}
	})
	t.Run("no authorize endpoint for a user launch", func(t *testing.T) {
		cfg, err := ParseConfiguration([]byte(`{"token_endpoint":"https://ehr.example/token"}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.RequireAuthorize(); err == nil || !strings.Contains(err.Error(), "authorization_endpoint") {
			t.Errorf("RequireAuthorize() = %v", err)
		}
	})
}

// fixturesDir returns $EHRGATE_FIXTURES or ../shared/fixtures relative to
// the repository root.
func fixturesDir(t testing.TB) string {
	if d := os.Getenv("EHRGATE_FIXTURES"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "shared", "fixtures")
}

func TestConformanceRealCaptures(t *testing.T) {
	dir := filepath.Join(fixturesDir(t), "smart-config")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SMART configuration captures not found at %s (set EHRGATE_FIXTURES): %v", dir, err)
	}
	wk, _ := filepath.Glob(filepath.Join(dir, "well-known", "*.json"))
	caps, _ := filepath.Glob(filepath.Join(dir, "capability", "*.json"))
	if len(wk)+len(caps) == 0 {
		t.Skipf("no captures in %s", dir)
	}
	for _, f := range wk {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ParseConfiguration(b)
			if err != nil {
				t.Fatalf("ParseConfiguration: %v", err)
			}
			if err := cfg.RequireAuthorize(); err != nil && cfg.Has("launch-ehr") {
				t.Errorf("declares launch-ehr but: %v", err)
			}
			if len(cfg.ScopesSupported) > 0 {
				if _, err := ParseScopes(strings.Join(cfg.ScopesSupported, " ")); err != nil {
					t.Errorf("scopes_supported do not all parse: %v", err)
				}
			}
		})
	}
	for _, f := range caps {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ParseCapabilityOAuthURIs(b)
			has := strings.Contains(string(b), OAuthURIsExtension)
			switch {
			case has && err != nil:
				t.Errorf("has oauth-uris but: %v", err)
			case has && (cfg.TokenEndpoint == "" || cfg.AuthorizationEndpoint == ""):
				t.Errorf("oauth-uris without authorize/token: %+v", cfg)
			case !has && !errors.Is(err, ErrNoConfiguration):
				t.Errorf("no oauth-uris, error = %v, want ErrNoConfiguration", err)
			}
		})
	}
}

func FuzzParseConfiguration(f *testing.F) {
	f.Add([]byte(`{"token_endpoint":"https://e/t","authorization_endpoint":"https://e/a","capabilities":["permission-v2"]}`))
	f.Add([]byte(`{"token_endpoint":"http://127.0.0.1/t","jwks_uri":"https://e/j"}`))
	f.Add([]byte(`{"token_endpoint":7}`))
	f.Add([]byte(capabilityWithOAuth))
	if dir := filepath.Join(fixturesDir(f), "smart-config"); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if cfg, err := ParseConfiguration(b); err == nil {
			if cfg.TokenEndpoint == "" {
				t.Fatal("accepted a configuration without token_endpoint")
			}
			_ = cfg.RequireAuthorize()
			_ = cfg.ScopeStyle()
		}
		if cfg, err := ParseCapabilityOAuthURIs(b); err == nil && cfg.TokenEndpoint == "" {
			t.Fatal("accepted oauth-uris without token")
		}
	})
}
