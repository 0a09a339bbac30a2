package smart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/fhir"
	"ehrgate/store"
)

func (h *harness) backendSource(t *testing.T) *TokenSource {
	t.Helper()
	c := h.client
	c.AuthMethod = AuthPrivateKeyJWT
	c.Scopes = ScopeRequest{Context: ContextSystem, Types: []string{"Patient", "Observation"}}
	ts, err := NewTokenSource(TokenSourceOptions{Client: c, Grant: GrantClientCredentials, Vault: h.vault, Discoverer: h.disc,
		Keys: h.keys, HTTPClient: h.as.srv.Client(), Now: h.clock.Now, Logger: h.log})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func (h *harness) refreshSource(t *testing.T) *TokenSource {
	t.Helper()
	ts, err := NewTokenSource(TokenSourceOptions{Client: h.client, Grant: GrantRefreshToken, Vault: h.vault, Discoverer: h.disc,
		Keys: h.keys, HTTPClient: h.as.srv.Client(), Now: h.clock.Now, Logger: h.log})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestBackendServicesToken(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("permission-v2=%v", v2), func(t *testing.T) {
			h := newHarness(t, AuthPrivateKeyJWT)
			h.as.permissionV2 = v2
			ts := h.backendSource(t)
			tok, err := ts.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken == "" || tok.RefreshToken != "" {
				t.Errorf("token = %v", tok)
			}
			form := h.as.lastForm
			want := "system/Observation.read system/Patient.read"
			if v2 {
				want = "system/Observation.rs system/Patient.rs"
			}
			if form.Get("grant_type") != "client_credentials" || form.Get("scope") != want || form.Get("client_assertion") == "" {
				t.Errorf("token form: grant %q scope %q assertion %v", form.Get("grant_type"), form.Get("scope"), form.Get("client_assertion") != "")
			}
			if st, _ := ts.Status(context.Background()); st.State != store.TokenOK {
				t.Errorf("Status() = %+v", st)
			}
		})
	}
}

func TestRefreshBeforeExpiryWithSkew(t *testing.T) {
	h := newHarness(t, AuthPrivateKeyJWT)
	ts := h.backendSource(t) // default skew 60s; fake tokens live 300s
	ctx := context.Background()
	first, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(230 * time.Second)
	if again, _ := ts.Token(ctx); again.AccessToken != first.AccessToken {
		t.Error("refreshed 70s before expiry with a 60s skew")
	}
	h.clock.Advance(20 * time.Second)
	again, err := ts.Token(ctx)
	if err != nil || again.AccessToken == first.AccessToken {
		t.Errorf("not refreshed 50s before expiry: %v", err)
	}
	if _, n := h.as.count(); n != 2 {
		t.Errorf("token requests = %d, want 2", n)
	}
}

func TestSingleFlightRefresh(t *testing.T) {
	h := newHarness(t, AuthPrivateKeyJWT)
	h.as.tokenDelay = 50 * time.Millisecond
	ts := h.backendSource(t)
	var wg sync.WaitGroup
	toks := make([]Secret, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := ts.Token(context.Background())
			errs[i] = err
			if err == nil {
				toks[i] = t.AccessToken
			}
		}()
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("caller %d: %v (token differs: %v)", i, errs[i], toks[i] != toks[0])
		}
	}
	if _, n := h.as.count(); n != 1 {
		t.Errorf("50 concurrent callers caused %d token requests, want 1", n)
	}
}

func TestRetryAfter401WithFHIRClient(t *testing.T) {
	h := newHarness(t, AuthPrivateKeyJWT)
	ts := h.backendSource(t)
	c, err := fhir.NewClient(h.as.base(), fhir.Options{HTTPClient: h.as.srv.Client(), Authorizer: ts})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Read(ctx, "Patient", "p1"); err != nil {
		t.Fatal(err)
	}
	h.as.expireAccess() // the server revokes the access token early
	if _, err := c.Read(ctx, "Patient", "p1"); err != nil {
		t.Fatalf("read after 401: %v", err)
	}
	if _, n := h.as.count(); n != 2 {
		t.Errorf("token requests = %d, want 2 (one refresh after the 401)", n)
	}
	// Many concurrent 401s with the same rejected token cause one refresh.
	h.as.expireAccess()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Read(ctx, "Patient", "p2"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, n := h.as.count(); n != 3 {
		t.Errorf("token requests after 20 concurrent 401s = %d, want 3", n)
	}
}

func TestRefreshTokenRotationPersisted(t *testing.T) {
	h := newHarness(t, AuthNone)
	if s, body, _ := get(t, h.browser(false), h.launchURL()); s != http.StatusOK {
		t.Fatalf("launch: %d %s", s, body)
	}
	ctx := context.Background()
	before, _, _ := h.vault.Load(ctx, "hosp")
	ts := h.refreshSource(t)
	h.clock.Advance(10 * time.Minute)
	tok, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, _, _ := h.vault.Load(ctx, "hosp")
	if after.RefreshToken == before.RefreshToken || after.RefreshToken == "" || after.AccessToken != tok.AccessToken {
		t.Error("rotated refresh token not persisted with the new access token")
	}
	if after.Context.Patient != "pat-123" {
		t.Errorf("launch context lost on refresh: %+v", after.Context)
	}
	// A new process (new TokenSource) continues from the stored token.
	h.clock.Advance(10 * time.Minute)
	if _, err := h.refreshSource(t).Token(ctx); err != nil {
		t.Fatalf("refresh from a new token source with the rotated refresh token: %v", err)
	}
}

func TestInvalidGrantNeedsReauthorization(t *testing.T) {
	h := newHarness(t, AuthNone)
	if s, _, _ := get(t, h.browser(false), h.launchURL()); s != http.StatusOK {
		t.Fatal("launch failed")
	}
	ctx := context.Background()
	ts := h.refreshSource(t)
	h.as.revokeAll()
	h.clock.Advance(10 * time.Minute)
	_, err := ts.Token(ctx)
	var re *ReauthorizationError
	if !errors.Is(err, ErrNeedsReauthorization) || !errors.Is(err, ErrInvalidGrant) || !errors.As(err, &re) || re.Connection != "hosp" {
		t.Fatalf("Token() after revocation = %v", err)
	}
	st, _ := ts.Status(ctx)
	if st.State != store.TokenNeedsReauthorization || st.Reason != "invalid_grant" {
		t.Errorf("Status() = %+v", st)
	}
	_, n := h.as.count()
	for range 5 {
		if _, err := ts.Token(ctx); !errors.Is(err, ErrNeedsReauthorization) {
			t.Errorf("later Token() = %v", err)
		}
	}
	if _, err := h.refreshSource(t).Token(ctx); !errors.Is(err, ErrNeedsReauthorization) {
		t.Errorf("new process Token() = %v", err)
	}
	if _, m := h.as.count(); m != n {
		t.Errorf("%d token requests after invalid_grant, want none", m-n)
	}
	// A new authorization revives the connection.
	if s, _, _ := get(t, h.browser(false), h.launchURL()); s != http.StatusOK {
		t.Fatal("re-launch failed")
	}
	if _, err := ts.Token(ctx); err != nil {
		t.Errorf("Token() after re-authorization: %v", err)
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	h := newHarness(t, AuthClientSecretPost)
	cb, b := h.callbackURL()
	code := mustQuery(t, cb).Get("code")
	if s, _, _ := get(t, b, cb); s != http.StatusOK {
		t.Fatal("launch failed")
	}
	ctx := context.Background()
	ts := h.refreshSource(t)
	h.clock.Advance(10 * time.Minute)
	tok, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.as.revokeAll()
	h.clock.Advance(10 * time.Minute)
	_, rerr := ts.Token(ctx)
	// Everything printed anywhere: logs, errors, fmt and slog of the types.
	h.log.Info("dump", "token", tok, "client", h.client, "secret", h.client.ClientSecret)
	out := h.logs.String() + rerr.Error() +
		fmt.Sprintf("%v %+v %#v %s %q", tok, tok, tok, tok, tok) +
		fmt.Sprintf("%v %+v %#v", h.client, h.client, h.client) +
		fmt.Sprintf("%v %+v %#v %s %q %x", tok.AccessToken, tok.RefreshToken, tok.IDToken, tok.AccessToken, tok.AccessToken, tok.AccessToken)
	var secrets []string
	h.as.mu.Lock()
	for k := range h.as.access {
		secrets = append(secrets, k)
	}
	h.as.mu.Unlock()
	secrets = append(secrets, h.as.clientSecret, code, tok.RefreshToken.Reveal(), tok.IDToken.Reveal())
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("secret %q… printed", s[:6])
		}
	}
	if !strings.Contains(h.logs.String(), `"connection":"hosp"`) {
		t.Error("logs do not name the connection (is the logger wired?)")
	}
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "s", Secret("abc123"))
	if strings.Contains(buf.String(), "abc123") {
		t.Error("slog printed a Secret")
	}
}
