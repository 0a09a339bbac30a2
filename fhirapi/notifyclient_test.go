package fhirapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.9": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "224.0.0.1": false, "::1": false, "fe80::1": false, "fd00::1": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false,
		"8.8.8.8": true, "93.184.216.34": true, "2606:4700::1111": true,
	} {
		if got := publicAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", a, got, want)
		}
	}
}

// TestNotifyClientRefusesLoopback: the default notification client does
// not reach a service on the host (an app naming an internal address as
// its endpoint), whether named by address or by a name resolving to it.
func TestNotifyClientRefusesLoopback(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit = true }))
	defer srv.Close()
	c := publicNotifyClient()
	for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		resp, err := c.Post(u, "application/fhir+json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("POST %s succeeded, want it refused", u)
		}
		if !errors.Is(err, errPrivateEndpoint) {
			t.Errorf("POST %s: %v, want %v", u, err, errPrivateEndpoint)
		}
	}
	if hit {
		t.Fatal("the loopback service was reached")
	}
}
