package smartauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fuzzServer is one server for all fuzz inputs.
func fuzzServer(t testing.TB) http.Handler {
	keys(t)
	s, err := New(Options{
		Issuer:     "http://ehr.test/fhir",
		SigningKey: serverKey,
		Clients: []Client{
			{ID: pubApp, Public: true, RedirectURIs: []string{"http://app.test/cb"}, LaunchURL: "http://app.test/launch"},
			{ID: secretApp, Secret: "s3cret", RedirectURIs: []string{"http://app.test/cb"}},
			{ID: rsaBackend, JWKS: jwksOf(t, rsaKey, "rsa1", "RS384")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return WithSMART(http.NotFoundHandler(), s)
}

// FuzzAuthorizeParams sends arbitrary authorize queries: never a panic or
// a 5xx, and never a redirect anywhere but the registered callback or the
// auth pages.
func FuzzAuthorizeParams(f *testing.F) {
	for _, seed := range []string{
		"response_type=code&client_id=pub-app&redirect_uri=http%3A%2F%2Fapp.test%2Fcb&scope=launch%2Fpatient+patient%2F*.rs&state=x&aud=http%3A%2F%2Fehr.test%2Ffhir&code_challenge=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&code_challenge_method=S256",
		"client_id=pub-app&redirect_uri=http://evil/cb",
		"client_id=pub-app&scope=patient/Observation.rs?category=a%26b&aud=http://EHR.test:80/fhir/",
		"client_id=secret-app&launch=zzz&scope=launch",
		"%zz", "client_id=pub-app&client_id=x",
	} {
		f.Add(seed)
	}
	h := fuzzServer(f)
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/auth/authorize", nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("authorize?%s = %d", query, rec.Code)
		}
		if loc := rec.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, "http://app.test/cb?") && !strings.HasPrefix(loc, "/auth/") {
			t.Fatalf("authorize?%s redirected to %q", query, loc)
		}
	})
}

// FuzzTokenForm posts arbitrary token requests: never a panic, a 5xx or a
// token.
func FuzzTokenForm(f *testing.F) {
	for _, seed := range []string{
		"grant_type=authorization_code&code=x&code_verifier=y&client_id=pub-app",
		"grant_type=refresh_token&refresh_token=x&client_id=pub-app",
		"grant_type=client_credentials&scope=system/*.rs&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJyc2EtYmFja2VuZCJ9.x",
		"grant_type=client_credentials&client_id=secret-app&client_secret=nope",
		"grant_type=password", "a=%zz", "",
	} {
		f.Add(seed, "")
	}
	f.Add("grant_type=client_credentials&scope=system/*.rs", "Basic c2VjcmV0LWFwcDpub3Bl")
	h := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body, authz string) {
		req := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("token %q = %d", body, rec.Code)
		}
		if rec.Code == 200 && strings.Contains(rec.Body.String(), "access_token") {
			if v, _ := url.ParseQuery(body); v.Get("client_secret") != "s3cret" && !strings.Contains(authz, "c2VjcmV0LWFwcDpzM2NyZXQ") {
				t.Fatalf("token %q issued a token", body)
			}
		}
	})
}

// FuzzParseScope: no panics; what parses re-parses the same.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"patient/Observation.rs", "user/*.read", "system/*.cruds", "patient/Observation.rs?category=laboratory", "launch/patient", "patient/.x", "user/X.sr", "patient/Observation.rs?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := parseScope(s)
		if err != nil {
			return
		}
		if !sc.covers(sc) {
			t.Fatalf("scope %q does not cover itself", s)
		}
	})
}
