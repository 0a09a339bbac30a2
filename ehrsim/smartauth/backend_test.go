package smartauth

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, nil)
	ecSpec := func() assertionSpec {
		return assertionSpec{key: ecKey, alg: jose.ES384, kid: "ec1", iss: ecBackend, sub: ecBackend,
			aud: e.auth.tokenURL(), exp: 4 * time.Minute, jti: randomToken()}
	}
	tests := []struct {
		name   string
		spec   func() assertionSpec
		scope  string
		status int
		code   string
	}{
		{"RS384 inline JWKS", e.rsaAssertion, "system/*.rs", 200, ""},
		{"ES384 JWKS URL", ecSpec, "system/Observation.rs", 200, ""},
		{"ES384 narrowed scope", ecSpec, "system/Observation.rs system/Condition.rs", 200, ""},
		{"no kid", func() assertionSpec { a := e.rsaAssertion(); a.kid = ""; return a }, "system/*.rs", 200, ""},
		{"unknown kid", func() assertionSpec { a := e.rsaAssertion(); a.kid = "other"; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"RS256 refused", func() assertionSpec { a := e.rsaAssertion(); a.alg = jose.RS256; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"wrong key", func() assertionSpec { a := ecSpec(); a.key, a.alg, a.kid = rsaKey, jose.RS384, "ec1"; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"iss differs from sub", func() assertionSpec { a := e.rsaAssertion(); a.sub = "x"; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"wrong aud", func() assertionSpec { a := e.rsaAssertion(); a.aud = e.issuer; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"no exp", func() assertionSpec { a := e.rsaAssertion(); a.exp = 0; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"exp beyond five minutes", func() assertionSpec { a := e.rsaAssertion(); a.exp = 10 * time.Minute; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"expired", func() assertionSpec {
			a := e.rsaAssertion()
			a.exp = -3 * time.Minute
			a.iat = -4 * time.Minute
			return a
		}, "system/*.rs", 401, ErrInvalidClient},
		{"no jti", func() assertionSpec { a := e.rsaAssertion(); a.jti = ""; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"unknown client", func() assertionSpec { a := e.rsaAssertion(); a.iss, a.sub = "nobody", "nobody"; return a }, "system/*.rs", 401, ErrInvalidClient},
		{"no system scope", e.rsaAssertion, "patient/*.rs", 400, ErrInvalidScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := e.tokenForm(backendForm(e.assertion(tt.spec()), tt.scope), "", "")
			if status != tt.status || (tt.code != "" && out["error"] != tt.code) {
				t.Fatalf("token = %d %v, want %d %s", status, out, tt.status, tt.code)
			}
			if status == 200 && (out["token_type"] != "Bearer" || out["refresh_token"] != nil || out["patient"] != nil) {
				t.Errorf("token response = %v", out)
			}
		})
	}
	t.Run("scope narrowed", func(t *testing.T) {
		_, out := e.tokenForm(backendForm(e.assertion(ecSpec()), "system/Observation.rs system/Condition.rs"), "", "")
		if out["scope"] != "system/Observation.rs" {
			t.Errorf("scope = %v, want system/Observation.rs", out["scope"])
		}
	})
	t.Run("jti replay", func(t *testing.T) {
		a := e.assertion(e.rsaAssertion())
		if status, out := e.tokenForm(backendForm(a, "system/*.rs"), "", ""); status != 200 {
			t.Fatalf("first use = %d %v", status, out)
		}
		status, out := e.tokenForm(backendForm(a, "system/*.rs"), "", "")
		if status != 401 || out["error"] != ErrInvalidClient || !strings.Contains(out["error_description"].(string), "jti") {
			t.Errorf("replay = %d %v, want 401 invalid_client about jti", status, out)
		}
	})
	t.Run("system scope sees all", func(t *testing.T) {
		_, out := e.tokenForm(backendForm(e.assertion(e.rsaAssertion()), "system/*.rs"), "", "")
		_, bundle := e.fhirGet("/fhir/Condition", out["access_token"].(string))
		if got := ids(bundle); !slices.Equal(got, []string{"c1", "c2"}) {
			t.Errorf("system/*.rs Condition search = %v, want c1 c2", got)
		}
	})
}

func TestAssertionClockSkew(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		skew time.Duration
		ok   bool
	}{
		{0, true}, {2 * time.Minute, true}, {-2 * time.Minute, true},
		{4 * time.Minute, false}, {-4 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.skew.String(), func(t *testing.T) {
			e.auth.SetClockSkew(tt.skew)
			defer e.auth.SetClockSkew(0)
			a := e.rsaAssertion()
			a.exp = time.Minute
			status, out := e.tokenForm(backendForm(e.assertion(a), "system/*.rs"), "", "")
			if (status == 200) != tt.ok {
				t.Errorf("server clock %v off: token = %d %v, want ok=%v", tt.skew, status, out, tt.ok)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	e := newEnv(t, nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(t *testing.T) *http.Response {
		v := url.Values{
			"response_type": {"code"}, "client_id": {pubApp}, "redirect_uri": {e.app.URL + "/callback"},
			"scope": {"patient/*.rs"}, "state": {"s"}, "aud": {e.issuer},
			"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"},
		}
		resp, err := noFollow.Get(e.auth.authorizeURL() + "?" + v.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A refresh token and an access token issued before the knobs turn on.
	code, v := e.standalone(secretApp, "s3cret", "launch/patient patient/*.rs offline_access", "p1")
	_, tok := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
		"redirect_uri": {e.app.URL + "/callback"}}, secretApp, "s3cret")
	rt, at := tok["refresh_token"].(string), tok["access_token"].(string)
	refresh := func() (int, map[string]any) {
		return e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, secretApp, "s3cret")
	}
	backend := func() (int, map[string]any) {
		return e.tokenForm(backendForm(e.assertion(e.rsaAssertion()), "system/*.rs"), "", "")
	}
	wantJSON := func(t *testing.T, status int, out map[string]any, wantStatus int, code string) {
		t.Helper()
		if status != wantStatus || out["error"] != code {
			t.Errorf("= %d %v, want %d %s", status, out, wantStatus, code)
		}
	}
	tests := []struct {
		name  string
		f     Failures
		check func(t *testing.T)
	}{
		{"InvalidClientID", Failures{InvalidClientID: true}, func(t *testing.T) {
			if resp := authorize(t); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Errorf("authorize = %d %q, want an error page", resp.StatusCode, resp.Header.Get("Location"))
			}
			status, out := backend()
			wantJSON(t, status, out, 401, ErrInvalidClient)
		}},
		{"InvalidRedirectURI", Failures{InvalidRedirectURI: true}, func(t *testing.T) {
			if resp := authorize(t); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Errorf("authorize = %d, want an error page", resp.StatusCode)
			}
		}},
		{"InvalidScope", Failures{InvalidScope: true}, func(t *testing.T) {
			loc, _ := url.Parse(authorize(t).Header.Get("Location"))
			if loc.Query().Get("error") != ErrInvalidScope || loc.Query().Get("state") != "s" {
				t.Errorf("authorize redirect = %v, want error=invalid_scope", loc)
			}
			status, out := backend()
			wantJSON(t, status, out, 400, ErrInvalidScope)
		}},
		{"InvalidClientSecret", Failures{InvalidClientSecret: true}, func(t *testing.T) {
			status, out := refresh()
			wantJSON(t, status, out, 401, ErrInvalidClient)
			status, out = backend()
			wantJSON(t, status, out, 401, ErrInvalidClient)
		}},
		{"InvalidRefreshToken", Failures{InvalidRefreshToken: true}, func(t *testing.T) {
			status, out := refresh()
			wantJSON(t, status, out, 400, ErrInvalidGrant)
		}},
		{"ExpiredRefreshToken", Failures{ExpiredRefreshToken: true}, func(t *testing.T) {
			status, out := refresh()
			wantJSON(t, status, out, 400, ErrInvalidGrant)
			if out["error_description"] != "refresh token expired" {
				t.Errorf("description = %v", out["error_description"])
			}
		}},
		{"InvalidJTI", Failures{InvalidJTI: true}, func(t *testing.T) {
			status, out := backend()
			wantJSON(t, status, out, 401, ErrInvalidClient)
		}},
		{"InvalidAccessToken", Failures{InvalidAccessToken: true}, func(t *testing.T) {
			resp, body := e.fhirGet("/fhir/Patient/p1", at)
			if resp.StatusCode != 401 || body["resourceType"] != "OperationOutcome" {
				t.Errorf("FHIR read = %d %v, want 401 OperationOutcome", resp.StatusCode, body)
			}
			_, out := e.postJSON(e.auth.introspectURL(), url.Values{"token": {at}}, secretApp, "s3cret")
			if out["active"] != false {
				t.Errorf("introspection = %v, want active false", out)
			}
		}},
		{"Only another client", Failures{InvalidJTI: true, InvalidAccessToken: true, Only: func(id string) bool { return id == ecBackend }}, func(t *testing.T) {
			if status, out := backend(); status != 200 {
				t.Errorf("backend = %d %v, want 200 (failure only for %s)", status, out, ecBackend)
			}
			if resp, _ := e.fhirGet("/fhir/Patient/p1", at); resp.StatusCode != 200 {
				t.Errorf("FHIR read = %d, want 200", resp.StatusCode)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.auth.SetFailures(tt.f)
			defer e.auth.SetFailures(Failures{})
			tt.check(t)
		})
	}
	// Everything works again with the knobs off.
	if status, out := refresh(); status != 200 {
		t.Errorf("refresh after the failures = %d %v", status, out)
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	e := newEnv(t, nil)
	code, v := e.standalone(secretApp, "s3cret", "launch/patient patient/*.rs offline_access", "p2")
	_, tok := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
		"redirect_uri": {e.app.URL + "/callback"}}, secretApp, "s3cret")
	at, rt := tok["access_token"].(string), tok["refresh_token"].(string)

	status, out := e.postJSON(e.auth.introspectURL(), url.Values{"token": {at}}, secretApp, "s3cret")
	if status != 200 || out["active"] != true || out["client_id"] != secretApp || out["patient"] != "p2" ||
		out["scope"] != "launch/patient patient/*.rs offline_access" || out["exp"] == nil {
		t.Errorf("introspect = %d %v", status, out)
	}
	// Bearer authentication.
	req, _ := http.NewRequest(http.MethodPost, e.auth.introspectURL(), strings.NewReader(url.Values{"token": {rt}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+at)
	resp, body := e.fhirDo(req)
	if resp.StatusCode != 200 || body["active"] != true || body["token_type"] != "refresh_token" {
		t.Errorf("introspect by Bearer = %d %v", resp.StatusCode, body)
	}
	if status, out := e.postJSON(e.auth.introspectURL(), url.Values{"token": {at}}, "", ""); status != 401 {
		t.Errorf("unauthenticated introspection = %d %v, want 401", status, out)
	}
	if _, out := e.postJSON(e.auth.introspectURL(), url.Values{"token": {"garbage"}}, secretApp, "s3cret"); out["active"] != false {
		t.Errorf("introspect garbage = %v", out)
	}
	// Another client cannot revoke it.
	if status, _ := e.postJSON(e.auth.revokeURL(), url.Values{"token": {at}, "client_id": {pubApp}}, "", ""); status != 200 {
		t.Errorf("revoke by another client = %d, want 200", status)
	}
	if resp, _ := e.fhirGet("/fhir/Patient/p2", at); resp.StatusCode != 200 {
		t.Errorf("token after another client's revoke = %d, want 200", resp.StatusCode)
	}
	// Revoking the refresh token takes the grant's access tokens with it.
	if status, _ := e.postJSON(e.auth.revokeURL(), url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}}, secretApp, "s3cret"); status != 200 {
		t.Errorf("revoke = %d", status)
	}
	if _, out := e.postJSON(e.auth.introspectURL(), url.Values{"token": {at}}, secretApp, "s3cret"); out["active"] != false {
		t.Errorf("introspect after revoke = %v", out)
	}
	resp, body = e.fhirGet("/fhir/Patient/p2", at)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "revoked") {
		t.Errorf("revoked token = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Server.Revoke.
	at2 := e.mint("", "user/*.rs")
	e.auth.Revoke(at2)
	if resp, _ := e.fhirGet("/fhir/Patient/p2", at2); resp.StatusCode != 401 {
		t.Errorf("after Server.Revoke = %d, want 401", resp.StatusCode)
	}
}
