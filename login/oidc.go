package login

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"ehrgate/store"
)

// OIDCOptions configure sign-in through an OpenID provider.
type OIDCOptions struct {
	// Issuer is the provider's issuer URL (its discovery document is at
	// Issuer/.well-known/openid-configuration, read at the first sign-in).
	Issuer string
	// ClientID and ClientSecret are ehrgate's registration at the provider
	// (an empty secret: a public client, protected by PKCE alone).
	ClientID, ClientSecret string
	// RedirectURL is ehrgate's callback as registered at the provider; its
	// path (usually /login/callback) is served by Routes.
	RedirectURL string
	// Scopes are requested besides openid (default: profile).
	Scopes []string
	// RoleClaim names the claim holding the person's groups or roles
	// (default "groups"); a dotted path reaches into objects
	// ("realm_access.roles"). Read from the ID token, else from UserInfo.
	RoleClaim string
	// RoleMap maps the claim's values to ehrgate roles; values it does not
	// name are ignored. When empty, values that name a role ("admin",
	// "clinician", "auditor") are taken as they are. A person whose claim
	// maps to no role is not signed in.
	RoleMap map[string]Role
	// Label is the sign-in button's text (default: the issuer's host).
	Label string
	// HTTPClient calls the provider (nil: a client with a 15s timeout).
	HTTPClient *http.Client
	// PostLogoutRedirectURL is where the provider sends the browser back
	// after signing the person out there too (OpenID Connect RP-Initiated
	// Logout 1.0); it must be registered at the provider. Default: the
	// login page beside RedirectURL (its origin + "/login").
	PostLogoutRedirectURL string
}

// oidcLogin is the OpenID side of a Service.
type oidcLogin struct {
	o            OIDCOptions
	label        string
	callbackPath string
	client       *http.Client

	mu       sync.Mutex
	provider *oidc.Provider // discovered at the first sign-in
}

func newOIDC(o OIDCOptions) (*oidcLogin, error) {
	var errs []error
	iu, err := url.Parse(o.Issuer)
	if err != nil || iu.Host == "" || (iu.Scheme != "https" && iu.Scheme != "http") {
		errs = append(errs, fmt.Errorf("issuer %q is not an absolute http(s) URL", o.Issuer))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("no client id"))
	}
	ru, err := url.Parse(o.RedirectURL)
	if err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") || !strings.HasPrefix(ru.Path, "/login/") || ru.Path == "/login/oidc" || ru.Path == "/login/style.css" {
		errs = append(errs, fmt.Errorf("redirect URL %q is not an absolute http(s) URL whose path is under /login/ (such as /login/callback)", o.RedirectURL))
	}
	for v, r := range o.RoleMap {
		if _, err := ParseRole(string(r)); err != nil {
			errs = append(errs, fmt.Errorf("role map %q: %w", v, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("login: openid: %w", errors.Join(errs...))
	}
	if o.RoleClaim == "" {
		o.RoleClaim = "groups"
	}
	if o.Scopes == nil {
		o.Scopes = []string{"profile"}
	}
	l := &oidcLogin{o: o, label: o.Label, callbackPath: ru.Path, client: o.HTTPClient}
	if l.label == "" {
		l.label = iu.Host
	}
	if l.client == nil {
		l.client = &http.Client{Timeout: 15 * time.Second}
	}
	return l, nil
}

// config returns the provider (discovering it the first time) and the
// OAuth 2.0 client configuration.
func (l *oidcLogin) config(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider == nil {
		ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, l.client), 20*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(ctx, l.o.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("discovering the OpenID provider: %w", err)
		}
		l.provider = p
	}
	cfg := &oauth2.Config{ClientID: l.o.ClientID, ClientSecret: l.o.ClientSecret, RedirectURL: l.o.RedirectURL,
		Endpoint: l.provider.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, l.o.Scopes...)}
	return l.provider, cfg, nil
}

// endSessionURL is where to send the browser at sign-out so that the
// provider ends its session too (RP-Initiated Logout 1.0: the provider's
// end_session_endpoint with client_id and post_logout_redirect_uri); ok is
// false when the provider has no such endpoint (or cannot be reached), and
// the person is only signed out of ehrgate.
// https://openid.net/specs/openid-connect-rpinitiated-1_0.html
func (l *oidcLogin) endSessionURL(ctx context.Context) (string, bool) {
	prov, _, err := l.config(ctx)
	if err != nil {
		return "", false
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if prov.Claims(&meta) != nil || meta.EndSession == "" {
		return "", false
	}
	u, err := url.Parse(meta.EndSession)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", false
	}
	back := l.o.PostLogoutRedirectURL
	if back == "" {
		r, err := url.Parse(l.o.RedirectURL)
		if err != nil {
			return "", false
		}
		back = (&url.URL{Scheme: r.Scheme, Host: r.Host, Path: "/login"}).String()
	}
	q := u.Query()
	q.Set("client_id", l.o.ClientID)
	q.Set("post_logout_redirect_uri", back)
	u.RawQuery = q.Encode()
	return u.String(), true
}

// pending is an OpenID login under way, kept in the store (by the hash of
// its state) until the provider redirects back: any replica may receive
// the callback.
type pending struct {
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"` // the PKCE code verifier (RFC 7636)
	Next     string    `json:"next"`
	Created  time.Time `json:"created"`
}

// oidcStart sends the browser to the provider's authorization endpoint
// (authorization code flow, PKCE S256, state bound to this browser by a
// cookie, nonce).
func (s *Service) oidcStart(w http.ResponseWriter, r *http.Request) {
	_, cfg, err := s.oidc.config(r.Context())
	if err != nil {
		s.log.ErrorContext(r.Context(), "login: openid", "err", err)
		s.message(w, r, http.StatusBadGateway, "Sign-in unavailable", "The identity provider cannot be reached right now; try again shortly.")
		return
	}
	state, p := randomToken(32), pending{Nonce: randomToken(32), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(r.URL.Query().Get("next")), Created: s.now().UTC()}
	b, _ := json.Marshal(p)
	if err := s.sess.docs.UpdateDocument(r.Context(), DocPending, hashID(state), func([]byte) ([]byte, error) { return b, nil }); err != nil {
		s.log.ErrorContext(r.Context(), "login: storing a pending sign-in", "err", err)
		s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-in is not possible right now; try again shortly.")
		return
	}
	s.setCookie(w, r, stateCookie, state, int(pendingTTL/time.Second))
	s.headers(w)
	http.Redirect(w, r, cfg.AuthCodeURL(state, oidc.Nonce(p.Nonce), oauth2.S256ChallengeOption(p.Verifier)), http.StatusSeeOther)
}

var errorCodeRE = regexp.MustCompile(`^[a-z_]{1,40}$`)

// oidcCallback completes a sign-in: the state must be the one this
// browser's cookie holds and is used once; the code is exchanged with the
// PKCE verifier; the ID token's signature, issuer, audience, expiry and
// nonce are checked; the role claim must map to a role.
func (s *Service) oidcCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state, cookie := q.Get("state"), s.cookie(r, stateCookie)
	s.setCookie(w, r, stateCookie, "", -1)
	if state == "" || cookie == "" || subtle.ConstantTimeCompare([]byte(state), []byte(cookie)) != 1 {
		s.log.WarnContext(ctx, "login: openid callback refused: state does not match this browser's")
		s.message(w, r, http.StatusBadRequest, "Sign-in not completed", "This sign-in was not started from this browser, or took too long. Please start again.")
		return
	}
	p, err := s.takePending(ctx, state)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(ctx, "login: reading a pending sign-in", "err", err)
		}
		s.message(w, r, http.StatusBadRequest, "Sign-in not completed", "This sign-in was already used or took too long. Please start again.")
		return
	}
	if e := q.Get("error"); e != "" {
		code := "an error"
		if errorCodeRE.MatchString(e) {
			code = e
		}
		s.log.WarnContext(ctx, "login: the identity provider refused the sign-in", "error", code)
		s.recordLogin(r, Person{}, "oidc", false)
		s.message(w, r, http.StatusForbidden, "Sign-in refused", "The identity provider answered with "+code+".")
		return
	}
	person, err := s.oidc.complete(ctx, q.Get("code"), p)
	var denied *deniedError
	if errors.As(err, &denied) {
		s.log.WarnContext(ctx, "login: openid sign-in refused", "subject", denied.subject, "reason", denied.reason)
		s.recordLogin(r, Person{}, "oidc", false)
		s.message(w, r, http.StatusForbidden, "No access", "You are signed in at the identity provider, but your account has no ehrgate role. Ask an administrator for access.")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "login: openid sign-in failed", "err", err)
		s.recordLogin(r, Person{}, "oidc", false)
		s.message(w, r, http.StatusBadGateway, "Sign-in not completed", "The identity provider's answer could not be accepted. Please start again.")
		return
	}
	s.start(w, r, person, p.Next)
}

// takePending reads and deletes the pending sign-in of state: only the
// caller whose delete removed it may use it (one use, across replicas).
func (s *Service) takePending(ctx context.Context, state string) (pending, error) {
	var p pending
	name := hashID(state)
	d, err := s.sess.docs.GetDocument(ctx, DocPending, name)
	if err != nil {
		return p, err
	}
	ok, err := s.sess.docs.DeleteDocument(ctx, DocPending, name)
	if err != nil {
		return p, err
	}
	if !ok {
		return p, store.ErrNotFound
	}
	if err := json.Unmarshal(d.Body, &p); err != nil {
		return p, err
	}
	if s.now().Sub(p.Created) >= pendingTTL {
		return p, store.ErrNotFound
	}
	return p, nil
}

// deniedError is a person the provider knows whom ehrgate does not admit.
type deniedError struct{ subject, reason string }

func (e *deniedError) Error() string { return "login: " + e.reason }

// complete exchanges the code and checks the ID token.
func (l *oidcLogin) complete(ctx context.Context, code string, p pending) (Person, error) {
	if code == "" {
		return Person{}, errors.New("the callback carries no code")
	}
	prov, cfg, err := l.config(ctx)
	if err != nil {
		return Person{}, err
	}
	ctx = oidc.ClientContext(ctx, l.client)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(p.Verifier))
	if err != nil {
		return Person{}, fmt.Errorf("exchanging the code: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Person{}, errors.New("the token response has no ID token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: l.o.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Person{}, fmt.Errorf("checking the ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.Nonce)) != 1 {
		return Person{}, errors.New("the ID token's nonce is not this sign-in's")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Person{}, fmt.Errorf("checking at_hash: %w", err)
		}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Person{}, fmt.Errorf("reading the ID token's claims: %w", err)
	}
	values, found := claimPath(claims, l.o.RoleClaim)
	if !found || displayName(claims) == "" {
		if ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			var uc map[string]any
			if ui.Claims(&uc) == nil {
				if !found {
					values, _ = claimPath(uc, l.o.RoleClaim)
				}
				for _, k := range []string{"name", "preferred_username", "email"} {
					if _, ok := claims[k]; !ok && uc[k] != nil {
						claims[k] = uc[k]
					}
				}
			}
		}
	}
	roles := l.roles(values)
	if len(roles) == 0 {
		return Person{}, &deniedError{subject: idt.Subject, reason: "the " + l.o.RoleClaim + " claim maps to no ehrgate role"}
	}
	return Person{ID: idt.Subject, Name: displayName(claims), Roles: roles, Method: "oidc"}, nil
}

// roles maps claim values to ehrgate roles, in the order of Roles.
func (l *oidcLogin) roles(values []string) []Role {
	var out []Role
	for _, v := range values {
		var r Role
		if len(l.o.RoleMap) > 0 {
			r = l.o.RoleMap[v]
		} else if pr, err := ParseRole(v); err == nil {
			r = pr
		}
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Role) int { return slices.Index(Roles, a) - slices.Index(Roles, b) })
	return out
}

// claimPath returns the strings at a dotted path of claims: a string, or
// an array of strings.
func claimPath(claims map[string]any, path string) ([]string, bool) {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	switch v := cur.(type) {
	case string:
		return []string{v}, true
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}

// displayName is the name, preferred_username or email claim.
func displayName(claims map[string]any) string {
	for _, k := range []string{"name", "preferred_username", "email"} {
		if s, ok := claims[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}
