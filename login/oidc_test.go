package login_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/login"
)

// fakeIdP is a minimal OpenID provider: discovery, JWKS, a token endpoint
// that checks the client secret and the PKCE verifier, and ID tokens whose
// claims a test may spoil.
type fakeIdP struct {
	*httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	codes  map[string]string // code -> nonce, challenge packed as "nonce challenge"
	spoil  func(c map[string]any)
	groups []string
	// endSession is published as end_session_endpoint when set.
	endSession string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := &fakeIdP{key: key, codes: map[string]string{}}
	mux := http.NewServeMux()
	idp.Server = httptest.NewServer(mux)
	t.Cleanup(idp.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		meta := map[string]any{"issuer": idp.URL, "authorization_endpoint": idp.URL + "/auth",
			"token_endpoint": idp.URL + "/token", "jwks_uri": idp.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}}
		if idp.endSession != "" {
			meta["end_session_endpoint"] = idp.endSession
		}
		json.NewEncoder(w).Encode(meta)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		idp.mu.Lock()
		ent, ok := idp.codes[r.PostFormValue("code")]
		delete(idp.codes, r.PostFormValue("code"))
		idp.mu.Unlock()
		var nonce, challenge string
		json.Unmarshal([]byte(ent), &[]*string{&nonce, &challenge})
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if !ok || id != "ehrgate" || secret != "s3cret" || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		claims := map[string]any{"iss": idp.URL, "sub": "u-42", "aud": "ehrgate", "nonce": nonce, "name": "Dr Who",
			"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "groups": idp.groups}
		if idp.spoil != nil {
			idp.spoil(claims)
		}
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: idp.key, KeyID: "k1"}}, nil)
		raw, err := jwt.Signed(sig).Claims(claims).Serialize()
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": raw})
	})
	return idp
}

// oidcServer serves a login service signing in through idp (client
// "ehrgate", group "docs" mapped to clinician); the caller adds its pages to
// mux.
func oidcServer(t *testing.T, e *env, idp *fakeIdP) (*httptest.Server, *http.ServeMux, *login.Service) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	svc, err := login.New(e.st, login.Options{Mode: login.ModeOIDC, Audit: e.rec, OIDC: login.OIDCOptions{Issuer: idp.URL, ClientID: "ehrgate",
		ClientSecret: "s3cret", RedirectURL: srv.URL + "/login/callback", RoleMap: map[string]login.Role{"docs": login.RoleClinician}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range svc.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	return srv, mux, svc
}

// authorize plays the provider's authorization endpoint for the redirect
// ehrgate sent: it issues a code bound to the request's nonce and PKCE
// challenge and returns ehrgate's callback URL.
func (idp *fakeIdP) authorize(t *testing.T, location string) (callback string, state string) {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil || u.Scheme+"://"+u.Host != idp.URL || u.Path != "/auth" {
		t.Fatalf("redirect to %q, want the provider's authorization endpoint", location)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" ||
		q.Get("client_id") != "ehrgate" || q.Get("response_type") != "code" {
		t.Fatalf("authorization request %v lacks PKCE S256, nonce, state or client_id", q)
	}
	ent, _ := json.Marshal([]string{q.Get("nonce"), q.Get("code_challenge")})
	code := "code-" + q.Get("state")[:8]
	idp.mu.Lock()
	idp.codes[code] = string(ent)
	idp.mu.Unlock()
	return q.Get("redirect_uri") + "?" + url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), q.Get("state")
}

func TestOIDCSignIn(t *testing.T) {
	e := newEnv(t, backends["sqlite"](t))
	idp := newFakeIdP(t)
	srv, mux, svc := oidcServer(t, e, idp)
	mux.Handle("GET /chart", svc.Require(login.Allow(login.SeePatients, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := login.PersonFrom(r.Context())
		w.Write([]byte("hello " + p.ID + " " + p.Name))
	}))))

	tests := []struct {
		name   string
		groups []string
		spoil  func(map[string]any)
		want   int
	}{
		{"good", []string{"docs"}, nil, http.StatusSeeOther},
		{"no role", []string{"cafeteria"}, nil, http.StatusForbidden},
		{"wrong nonce", []string{"docs"}, func(c map[string]any) { c["nonce"] = "other" }, http.StatusBadGateway},
		{"wrong audience", []string{"docs"}, func(c map[string]any) { c["aud"] = "another-app" }, http.StatusBadGateway},
		{"wrong issuer", []string{"docs"}, func(c map[string]any) { c["iss"] = "https://evil.example" }, http.StatusBadGateway},
		{"expired", []string{"docs"}, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, http.StatusBadGateway},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idp.groups, idp.spoil = tc.groups, tc.spoil
			c := browser(t)
			res, _ := do(t, c, "GET", srv.URL+"/chart", nil, nil)
			res, _ = do(t, c, "GET", srv.URL+"/login/oidc?next="+url.QueryEscape("/chart"), nil, nil)
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("GET /login/oidc = %d", res.StatusCode)
			}
			cb, _ := idp.authorize(t, res.Header.Get("Location"))
			res, _ = do(t, c, "GET", cb, nil, nil)
			if res.StatusCode != tc.want {
				t.Fatalf("callback = %d, want %d", res.StatusCode, tc.want)
			}
			res, body := do(t, c, "GET", srv.URL+"/chart", nil, nil)
			if signedIn := res.StatusCode == http.StatusOK; signedIn != (tc.want == http.StatusSeeOther) {
				t.Errorf("GET /chart after the callback = %d %q", res.StatusCode, body)
			}
			if tc.want == http.StatusSeeOther && body != "hello u-42 Dr Who" {
				t.Errorf("GET /chart = %q, want the provider's subject and name", body)
			}
			// The callback is used once.
			if res, _ := do(t, c, "GET", cb, nil, nil); res.StatusCode != http.StatusBadRequest {
				t.Errorf("the callback again = %d, want 400", res.StatusCode)
			}
		})
	}
	t.Run("another browser's state", func(t *testing.T) {
		idp.groups, idp.spoil = []string{"docs"}, nil
		victim, attacker := browser(t), browser(t)
		res, _ := do(t, attacker, "GET", srv.URL+"/login/oidc", nil, nil)
		cb, _ := idp.authorize(t, res.Header.Get("Location"))
		// The attacker's callback link opened in the victim's browser
		// (login CSRF) does not sign the victim in.
		if res, _ := do(t, victim, "GET", cb, nil, nil); res.StatusCode != http.StatusBadRequest {
			t.Errorf("the attacker's callback in the victim's browser = %d, want 400", res.StatusCode)
		}
	})
}

// TestOIDCLogoutEndsTheProviderSession: signing out a person who signed in
// through a provider with an end_session_endpoint ends the ehrgate session
// and sends the browser on to the provider (RP-Initiated Logout: client_id
// and a post-logout redirect to ehrgate's login page), by a page rather
// than a redirect (the logout form's CSP form-action would block one);
// without the endpoint, to ehrgate's login page as before.
func TestOIDCLogoutEndsTheProviderSession(t *testing.T) {
	for _, withEndpoint := range []bool{true, false} {
		t.Run(fmt.Sprint("end_session_endpoint=", withEndpoint), func(t *testing.T) {
			e := newEnv(t, backends["sqlite"](t))
			idp := newFakeIdP(t)
			if withEndpoint {
				idp.endSession = idp.URL + "/logout?tenant=a"
			}
			idp.groups = []string{"docs"}
			srv, mux, svc := oidcServer(t, e, idp)
			mux.Handle("GET /{$}", svc.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("csrf=" + login.CSRFToken(r.Context())))
			})))
			c := browser(t)
			res, _ := do(t, c, "GET", srv.URL+"/login/oidc", nil, nil)
			cb, _ := idp.authorize(t, res.Header.Get("Location"))
			if res, _ := do(t, c, "GET", cb, nil, nil); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("callback = %d", res.StatusCode)
			}
			tok := csrfOf(t, c, srv.URL)
			res, body := do(t, c, "POST", srv.URL+"/logout", url.Values{"csrf": {tok}}, map[string]string{"Origin": srv.URL})
			if withEndpoint {
				want := idp.URL + "/logout?" + url.Values{"tenant": {"a"}, "client_id": {"ehrgate"}, "post_logout_redirect_uri": {srv.URL + "/login"}}.Encode()
				if res.StatusCode != http.StatusOK || !strings.Contains(body, `content="0;url=`+html.EscapeString(want)+`"`) ||
					!strings.Contains(body, `href="`+html.EscapeString(want)+`"`) {
					t.Errorf("logout = %d, want a page moving on to %s:\n%s", res.StatusCode, want, body)
				}
			} else if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
				t.Errorf("logout = %d %s, want 303 to /login", res.StatusCode, res.Header.Get("Location"))
			}
			if res, _ := do(t, c, "GET", srv.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther {
				t.Errorf("GET / after logout = %d, want 303 to the login page", res.StatusCode)
			}
		})
	}
}
