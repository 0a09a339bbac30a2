package smartauth

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

func TestDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	resp, doc := e.fhirGet("/fhir/.well-known/smart-configuration", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET smart-configuration = %d, want 200", resp.StatusCode)
	}
	want := map[string]string{
		"issuer":                 e.issuer,
		"authorization_endpoint": e.ts.URL + "/auth/authorize",
		"token_endpoint":         e.ts.URL + "/auth/token",
		"jwks_uri":               e.ts.URL + "/auth/jwks",
		"introspection_endpoint": e.ts.URL + "/auth/introspect",
		"revocation_endpoint":    e.ts.URL + "/auth/revoke",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("smart-configuration %s = %v, want %q", k, doc[k], v)
		}
	}
	has := func(key string, vals ...string) {
		t.Helper()
		list, _ := doc[key].([]any)
		for _, v := range vals {
			if !slices.Contains(list, any(v)) {
				t.Errorf("smart-configuration %s = %v, missing %q", key, list, v)
			}
		}
	}
	has("capabilities", "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
		"client-confidential-asymmetric", "context-ehr-patient", "context-standalone-patient", "permission-v1",
		"permission-v2", "permission-patient", "permission-user", "permission-offline", "sso-openid-connect")
	has("code_challenge_methods_supported", "S256")
	has("grant_types_supported", "authorization_code", "refresh_token", "client_credentials")
	has("token_endpoint_auth_methods_supported", "private_key_jwt", "client_secret_basic", "none")
	has("response_types_supported", "code")
	has("scopes_supported", "openid", "fhirUser", "launch", "launch/patient", "offline_access")
	if l, _ := doc["code_challenge_methods_supported"].([]any); len(l) != 1 {
		t.Errorf("code_challenge_methods_supported = %v, want only S256", l)
	}
	req, _ := http.NewRequest(http.MethodOptions, e.auth.tokenURL(), nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, _ := e.fhirDo(req); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS preflight of the token endpoint = %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := e.fhirGet("/fhir/metadata", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /fhir/metadata without a token = %d, want 200", resp.StatusCode)
	}
}

func TestEHRLaunch(t *testing.T) {
	e := newEnv(t, nil)
	e.mu.Lock()
	e.verifier = oauth2.GenerateVerifier()
	e.launchCfg = e.oauthConfig(pubApp, "", "launch", "openid", "fhirUser", "patient/*.rs", "offline_access")
	e.launchCfg.Endpoint.AuthURL += "?nonce=n-123" // x/oauth2 keeps the query and adds its own
	e.mu.Unlock()

	b := newBrowser(t)
	resp, page := b.get(e.ts.URL + "/auth/launch")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "John Smith") {
		t.Fatalf("launch page = %d %.200s", resp.StatusCode, page)
	}
	f := hidden(page)
	f.Set("launch", pubApp+" p1")
	resp, body := b.post(e.ts.URL+"/auth/launch", f)
	if resp.Request.URL.Path != "/auth/login" {
		t.Fatalf("after launch the browser is at %s, want the login page", resp.Request.URL)
	}
	// The app saw iss and launch.
	var launchURL *url.URL
	for r := resp.Request; r != nil; {
		if r.URL.Path == "/launch" {
			launchURL = r.URL
			break
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	if launchURL == nil || launchURL.Query().Get("iss") != e.issuer || launchURL.Query().Get("launch") == "" {
		t.Fatalf("launch URL = %v, want iss=%s and a launch id", launchURL, e.issuer)
	}
	cb := e.flow(b, resp, body, "", "allow")
	if cb.Get("state") != "st-launch" || cb.Get("code") == "" {
		t.Fatalf("callback = %v", cb)
	}
	tok, err := e.launchCfg.Exchange(ctx(t), cb.Get("code"), oauth2.VerifierOption(e.verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if got := tok.Extra("patient"); got != "p1" {
		t.Errorf("token patient = %v, want p1", got)
	}
	if got := tok.Extra("encounter"); got != "e1" {
		t.Errorf("token encounter = %v, want e1", got)
	}
	if got := tok.Extra("need_patient_banner"); got != false {
		t.Errorf("need_patient_banner = %v, want false for an EHR launch", got)
	}
	if got := tok.Extra("scope"); got != "launch openid fhirUser patient/*.rs offline_access" {
		t.Errorf("scope = %v", got)
	}
	if tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
		t.Errorf("token = %+v, want a Bearer token with expiry and a refresh token", tok)
	}
	if tok.Extra("smart_style_url") == nil {
		t.Error("no smart_style_url")
	}
	checkIDToken(t, e, tok.Extra("id_token"), "n-123")

	// The token works and is confined to p1.
	resp2, bundle := e.fhirGet("/fhir/Observation", tok.AccessToken)
	if resp2.StatusCode != http.StatusOK || !slices.Equal(ids(bundle), []string{"o1", "o2"}) {
		t.Errorf("GET Observation = %d %v, want o1 o2", resp2.StatusCode, ids(bundle))
	}

	// The launch id was single use.
	b2 := newBrowser(t)
	resp, _ = b2.get(e.launchCfg.AuthCodeURL("again", oauth2.S256ChallengeOption(e.verifier),
		oauth2.SetAuthURLParam("aud", e.issuer), oauth2.SetAuthURLParam("launch", launchURL.Query().Get("launch"))))
	if q := resp.Request.URL.Query(); q.Get("error") != ErrInvalidRequest || q.Get("state") != "again" {
		t.Errorf("reused launch: redirected to %v, want error=invalid_request with state", resp.Request.URL)
	}
}

// checkIDToken verifies an id_token against the server's JWKS.
func checkIDToken(t *testing.T, e *env, raw any, nonce string) {
	t.Helper()
	s, _ := raw.(string)
	if s == "" {
		t.Fatal("no id_token")
	}
	tok, err := jwt.ParseSigned(s, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parsing id_token: %v", err)
	}
	resp, err := http.Get(e.ts.URL + "/auth/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := jsonDecode(resp.Body, &set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("jwks has %d keys for kid %q", len(keys), tok.Headers[0].KeyID)
	}
	var c idTokenClaims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		t.Fatalf("id_token signature: %v", err)
	}
	if err := c.Validate(jwt.Expected{Issuer: e.issuer, AnyAudience: jwt.Audience{pubApp}, Time: time.Now()}); err != nil {
		t.Errorf("id_token claims: %v", err)
	}
	if c.Subject != "dr.smith" || c.FhirUser != e.issuer+"/Practitioner/dr-smith" || c.Nonce != nonce || c.IssuedAt == nil {
		t.Errorf("id_token claims = %+v", c)
	}
}

func TestStandaloneLaunchWithPicker(t *testing.T) {
	e := newEnv(t, nil)
	code, v := e.standalone(pubApp, "", "launch/patient openid fhirUser patient/Observation.rs", "p2")
	cfg := e.oauthConfig(pubApp, "")
	tok, err := cfg.Exchange(ctx(t), code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.Extra("patient") != "p2" || tok.Extra("need_patient_banner") != true {
		t.Errorf("patient = %v, banner = %v; want p2, true", tok.Extra("patient"), tok.Extra("need_patient_banner"))
	}
	if tok.RefreshToken != "" {
		t.Error("refresh token without offline_access")
	}
	_, bundle := e.fhirGet("/fhir/Observation", tok.AccessToken)
	if got := ids(bundle); !slices.Equal(got, []string{"o3"}) {
		t.Errorf("p2's Observations = %v, want [o3]", got)
	}
}

func TestConsentDeniedAndCSRF(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.oauthConfig(pubApp, "", "patient/*.rs")
	b := newBrowser(t)
	resp, body := b.get(cfg.AuthCodeURL("st-d", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("aud", e.issuer)))
	// A forged login form (wrong CSRF token) is refused.
	f := hidden(body)
	forged := url.Values{"csrf": {"forged"}, "req": {f.Get("req")}, "username": {"dr.smith"}, "password": {"password"}}
	if r, _ := b.post(e.ts.URL+"/auth/login", forged); r.StatusCode != http.StatusForbidden {
		t.Errorf("login with a bad CSRF token = %d, want 403", r.StatusCode)
	}
	// A wrong password re-shows the form.
	bad := url.Values{"csrf": {f.Get("csrf")}, "req": {f.Get("req")}, "username": {"dr.smith"}, "password": {"nope"}}
	if r, page := b.post(e.ts.URL+"/auth/login", bad); r.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "wrong password") {
		t.Errorf("wrong password = %d, want 401 and the form again", r.StatusCode)
	}
	cb := e.flow(b, resp, body, "", "deny")
	if cb.Get("error") != ErrAccessDenied || cb.Get("state") != "st-d" {
		t.Errorf("deny: callback = %v, want error=access_denied and state", cb)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	e := newEnv(t, nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := func() url.Values {
		return url.Values{
			"response_type": {"code"}, "client_id": {pubApp}, "redirect_uri": {e.app.URL + "/callback"},
			"scope": {"patient/*.rs"}, "state": {"xyz"}, "aud": {e.issuer},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"},
		}
	}
	tests := []struct {
		name      string
		change    func(url.Values)
		wantPage  bool   // an error page instead of a redirect
		wantError string // error= on the redirect
	}{
		{"ok", func(url.Values) {}, false, ""},
		{"aud with trailing slash and upper-case host", func(v url.Values) { v.Set("aud", strings.Replace(e.issuer, "http://", "HTTP://", 1)+"/") }, false, ""},
		{"wrong aud", func(v url.Values) { v.Set("aud", "http://other.example/fhir") }, false, ErrInvalidRequest},
		{"missing aud", func(v url.Values) { v.Del("aud") }, false, ErrInvalidRequest},
		{"redirect mismatch", func(v url.Values) { v.Set("redirect_uri", e.app.URL+"/callback2") }, true, ""},
		{"redirect prefix only", func(v url.Values) { v.Set("redirect_uri", e.app.URL+"/callback?x=1") }, true, ""},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, true, ""},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, false, ErrInvalidRequest},
		{"no PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, false, ErrInvalidRequest},
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, false, ErrUnsupportedResponseType},
		{"no scope", func(v url.Values) { v.Del("scope") }, false, ErrInvalidScope},
		{"unknown scopes only", func(v url.Values) { v.Set("scope", "bogus other/x") }, false, ErrInvalidScope},
		{"launch scope without launch", func(v url.Values) { v.Set("scope", "launch patient/*.rs") }, false, ErrInvalidRequest},
		{"bad launch", func(v url.Values) { v.Set("launch", "nope") }, false, ErrInvalidRequest},
		{"repeated parameter", func(v url.Values) { v.Add("state", "again") }, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := base()
			tt.change(v)
			resp, err := noFollow.Get(e.auth.authorizeURL() + "?" + v.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tt.wantPage {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Errorf("status %d Location %q, want a 400 error page", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode/100 != 3 {
				t.Fatalf("status %d, want a redirect", resp.StatusCode)
			}
			if tt.wantError == "" {
				if loc.Path != "/auth/login" {
					t.Errorf("redirected to %v, want the login page", loc)
				}
				return
			}
			if !strings.HasPrefix(loc.String(), e.app.URL+"/callback?") || loc.Query().Get("error") != tt.wantError || loc.Query().Get("state") != "xyz" {
				t.Errorf("redirected to %v, want the callback with error=%s&state=xyz", loc, tt.wantError)
			}
		})
	}
}

func TestCodeExchange(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.oauthConfig(pubApp, "")
	t.Run("wrong verifier", func(t *testing.T) {
		code, _ := e.standalone(pubApp, "", "patient/*.rs", "")
		_, err := cfg.Exchange(ctx(t), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assertOAuthErr(t, err, ErrInvalidGrant)
	})
	t.Run("no verifier", func(t *testing.T) {
		code, _ := e.standalone(pubApp, "", "patient/*.rs", "")
		_, err := cfg.Exchange(ctx(t), code)
		assertOAuthErr(t, err, ErrInvalidGrant)
	})
	t.Run("wrong redirect_uri", func(t *testing.T) {
		code, v := e.standalone(pubApp, "", "patient/*.rs", "")
		c2 := *cfg
		c2.RedirectURL = e.app.URL + "/other"
		_, err := c2.Exchange(ctx(t), code, oauth2.VerifierOption(v))
		assertOAuthErr(t, err, ErrInvalidGrant)
	})
	t.Run("other client", func(t *testing.T) {
		code, v := e.standalone(pubApp, "", "patient/*.rs", "")
		status, out := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
			"redirect_uri": {e.app.URL + "/callback"}}, secretApp, "s3cret")
		if status != http.StatusBadRequest || out["error"] != ErrInvalidGrant {
			t.Errorf("exchange by another client = %d %v, want 400 invalid_grant", status, out)
		}
	})
	t.Run("expired", func(t *testing.T) {
		code, v := e.standalone(pubApp, "", "patient/*.rs", "")
		e.auth.SetClockSkew(2 * time.Minute)
		defer e.auth.SetClockSkew(0)
		_, err := cfg.Exchange(ctx(t), code, oauth2.VerifierOption(v))
		assertOAuthErr(t, err, ErrInvalidGrant)
	})
	t.Run("replay revokes", func(t *testing.T) {
		code, v := e.standalone(pubApp, "", "launch/patient patient/*.rs offline_access", "p1")
		tok, err := cfg.Exchange(ctx(t), code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := e.fhirGet("/fhir/Patient/p1", tok.AccessToken); resp.StatusCode != http.StatusOK {
			t.Fatalf("fresh token: %d", resp.StatusCode)
		}
		_, err = cfg.Exchange(ctx(t), code, oauth2.VerifierOption(v))
		assertOAuthErr(t, err, ErrInvalidGrant)
		if resp, _ := e.fhirGet("/fhir/Patient/p1", tok.AccessToken); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("access token after code replay: %d, want 401", resp.StatusCode)
		}
		status, out := e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {pubApp}}, "", "")
		if status != http.StatusBadRequest || out["error"] != ErrInvalidGrant {
			t.Errorf("refresh after code replay = %d %v, want invalid_grant", status, out)
		}
	})
}

// assertOAuthErr checks an x/oauth2 error's code.
func assertOAuthErr(t *testing.T, err error, code string) {
	t.Helper()
	re, ok := err.(*oauth2.RetrieveError)
	if !ok {
		t.Fatalf("err = %v, want an *oauth2.RetrieveError %s", err, code)
	}
	if re.ErrorCode != code || re.Response.StatusCode != http.StatusBadRequest && code != ErrInvalidClient {
		t.Errorf("error = %s (%d), want %s", re.ErrorCode, re.Response.StatusCode, code)
	}
}

func TestRefresh(t *testing.T) {
	for _, rotate := range []bool{true, false} {
		t.Run(map[bool]string{true: "rotate", false: "keep"}[rotate], func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.RotateRefreshTokens = rotate })
			code, v := e.standalone(secretApp, "s3cret", "launch/patient patient/*.rs offline_access openid fhirUser", "p1")
			status, tok := e.tokenForm(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {v},
				"redirect_uri": {e.app.URL + "/callback"}}, secretApp, "s3cret")
			if status != http.StatusOK {
				t.Fatalf("exchange = %d %v", status, tok)
			}
			rt := tok["refresh_token"].(string)
			refresh := func(token string, scope string) (int, map[string]any) {
				f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
				if scope != "" {
					f.Set("scope", scope)
				}
				return e.tokenForm(f, secretApp, "s3cret")
			}
			status, out := refresh(rt, "")
			if status != http.StatusOK || out["patient"] != "p1" || out["access_token"] == "" {
				t.Fatalf("refresh = %d %v", status, out)
			}
			if rotate {
				nrt, _ := out["refresh_token"].(string)
				if nrt == "" || nrt == rt {
					t.Fatalf("rotation: new refresh token %q", nrt)
				}
				if status, out := refresh(rt, ""); status != http.StatusBadRequest || out["error"] != ErrInvalidGrant {
					t.Errorf("old refresh token after rotation = %d %v, want invalid_grant", status, out)
				}
				rt = nrt
			} else if out["refresh_token"] != nil {
				t.Errorf("without rotation a new refresh token was issued")
			}
			status, out = refresh(rt, "patient/*.rs offline_access")
			if status != http.StatusOK || out["scope"] != "patient/*.rs offline_access" {
				t.Errorf("narrowing refresh = %d %v", status, out)
			}
			if rotate {
				rt, _ = out["refresh_token"].(string)
			}
			if status, out := refresh(rt, "user/*.rs"); status != http.StatusBadRequest || out["error"] != ErrInvalidScope {
				t.Errorf("widening refresh = %d %v, want invalid_scope", status, out)
			}
		})
	}
}

func TestRefreshTokenExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RefreshTokenTTL = time.Hour; o.AccessTokenTTL = time.Minute })
	code, v := e.standalone(pubApp, "", "launch/patient patient/*.rs offline_access", "p1")
	tok, err := e.oauthConfig(pubApp, "").Exchange(ctx(t), code, oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("expires_in") != float64(60) {
		t.Errorf("expires_in = %v, want 60", tok.Extra("expires_in"))
	}
	e.auth.SetClockSkew(2 * time.Minute) // mid-sync expiry
	if resp, _ := e.fhirGet("/fhir/Patient/p1", tok.AccessToken); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), "expired") {
		t.Errorf("expired access token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	status, out := e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {pubApp}}, "", "")
	if status != http.StatusOK {
		t.Fatalf("refresh = %d %v", status, out)
	}
	if resp, _ := e.fhirGet("/fhir/Patient/p1", out["access_token"].(string)); resp.StatusCode != http.StatusOK {
		t.Errorf("refreshed token: %d", resp.StatusCode)
	}
	e.auth.SetClockSkew(2 * time.Hour)
	status, out = e.tokenForm(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {pubApp}}, "", "")
	if status != http.StatusBadRequest || out["error_description"] != "refresh token expired" {
		t.Errorf("expired refresh = %d %v", status, out)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		code       string
	}{
		{"no grant type", url.Values{}, "", "", 400, ErrInvalidRequest},
		{"password grant", url.Values{"grant_type": {"password"}}, "", "", 400, ErrUnsupportedGrantType},
		{"no client", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, "", "", 401, ErrInvalidClient},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"}}, secretApp, "nope", 401, ErrInvalidClient},
		{"secret in form for basic client", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"}, "client_id": {secretApp}, "client_secret": {"s3cret"}}, "", "", 200, ""},
		{"public client credentials", url.Values{"grant_type": {"client_credentials"}, "client_id": {pubApp}, "scope": {"system/*.rs"}}, "", "", 400, ErrUnauthorizedClient},
		{"unknown code", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {pubApp}}, "", "", 400, ErrInvalidGrant},
		{"backend with secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {rsaBackend}, "client_secret": {"x"}}, "", "", 401, ErrInvalidClient},
		{"patient scope by client_credentials", url.Values{"grant_type": {"client_credentials"}, "scope": {"patient/*.rs"}}, secretApp, "s3cret", 400, ErrInvalidScope},
		{"repeated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, secretApp, "s3cret", 400, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := e.tokenForm(tt.form, tt.user, tt.pass)
			if status != tt.status || (tt.code != "" && out["error"] != tt.code) {
				t.Errorf("token = %d %v, want %d %s", status, out, tt.status, tt.code)
			}
		})
	}
}

func TestLaunchBinding(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t)
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	newLaunch := func() string {
		t.Helper()
		_, page := b.get(e.ts.URL + "/auth/launch")
		f := hidden(page)
		f.Set("launch", pubApp+" p2")
		resp, _ := b.post(e.ts.URL+"/auth/launch", f)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), e.app.URL+"/launch?") || loc.Query().Get("iss") != e.issuer {
			t.Fatalf("launch POST = %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("launch")
	}
	try := func(clientID, launch string) url.Values {
		t.Helper()
		v := url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {e.app.URL + "/callback"},
			"scope": {"launch patient/*.rs"}, "state": {"s"}, "aud": {e.issuer}, "launch": {launch},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
		}
		resp, _ := b.get(e.auth.authorizeURL() + "?" + v.Encode())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query()
	}
	l := newLaunch()
	if q := try(secretApp, l); q.Get("error") != ErrInvalidRequest {
		t.Errorf("launch used by another client: %v, want invalid_request", q)
	}
	if q := try(pubApp, l); q.Get("error") != "" {
		t.Errorf("launch used by its client after another's attempt: %v, want no error", q)
	}
	if q := try(pubApp, l); q.Get("error") != ErrInvalidRequest {
		t.Errorf("launch used twice: %v, want invalid_request", q)
	}
	l = newLaunch()
	e.auth.SetClockSkew(6 * time.Minute)
	defer e.auth.SetClockSkew(0)
	if q := try(pubApp, l); q.Get("error") != ErrInvalidRequest {
		t.Errorf("expired launch: %v, want invalid_request", q)
	}
	// A launch form without the page's CSRF token is refused.
	if resp, _ := b.post(e.ts.URL+"/auth/launch", url.Values{"launch": {pubApp + " p1"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("launch without CSRF = %d, want 403", resp.StatusCode)
	}
}
