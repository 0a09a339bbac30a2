package login

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"ehrgate/audit"
	"ehrgate/store"
)

// Mode is how people sign in.
type Mode string

// The modes.
const (
	ModeNone  Mode = "none"  // no login: the dashboard is loopback-only
	ModeLocal Mode = "local" // local accounts (Accounts)
	ModeOIDC  Mode = "oidc"  // the site's OpenID provider
)

// Options configure a Service. Zero durations take the defaults.
type Options struct {
	Mode Mode
	// OIDC configures ModeOIDC.
	OIDC OIDCOptions
	// IdleTimeout ends a session not used for this long (default 30m);
	// MaxAge ends every session this long after sign-in (default 12h).
	IdleTimeout, MaxAge time.Duration
	// SecureCookies marks cookies Secure and gives them the __Host- prefix
	// on every request; otherwise only requests that came over TLS get
	// them. Set it when a TLS-terminating proxy is in front.
	SecureCookies bool
	// Accounts configures the local accounts' hashing and lockout (its
	// Clock defaults to Clock).
	Accounts AccountOptions
	// Clock is time.Now when nil (tests inject one for the timeouts).
	Clock func() time.Time
	// Logger receives what happened (account names and subjects, never
	// passwords, session ids, codes or tokens). Nil discards.
	Logger *slog.Logger
	// Audit records every sign-in (success or refusal) as a BALP User
	// Authentication event; a sign-in that cannot be recorded fails. Nil
	// records nothing.
	Audit audit.Recorder
	// Title is shown on the login page ("ehrgate" when empty).
	Title string
}

// pendingTTL is how long an OpenID login may take at the provider.
const pendingTTL = 10 * time.Minute

// sweepEvery is how often (at most, per process) a sign-in also deletes
// expired sessions and abandoned OpenID logins from the store.
const sweepEvery = 15 * time.Minute

// Service signs people in and out and guards routes. Create it with New;
// it is safe for concurrent use, and several Services (replicas) on one
// store share their sessions and accounts.
type Service struct {
	o        Options
	log      *slog.Logger
	now      func() time.Time
	accounts *Accounts
	sess     *sessions
	oidc     *oidcLogin // nil unless ModeOIDC
	cop      *http.CrossOriginProtection
	pages    *template.Template

	sweepMu   sync.Mutex
	lastSweep time.Time
}

//go:embed templates/*.html templates/*.css
var assets embed.FS

// New returns a Service keeping its sessions (and local accounts) in docs.
func New(docs store.Documents, o Options) (*Service, error) {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.IdleTimeout > o.MaxAge {
		return nil, errors.New("login: the idle timeout is longer than the absolute one")
	}
	if o.Title == "" {
		o.Title = "ehrgate"
	}
	s := &Service{o: o, log: o.Logger, now: o.Clock, cop: http.NewCrossOriginProtection()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if o.Accounts.Clock == nil {
		o.Accounts.Clock = s.now
	}
	s.accounts = NewAccounts(docs, o.Accounts)
	s.sess = &sessions{docs: docs, idle: o.IdleTimeout, max: o.MaxAge, now: s.now, touchGap: min(time.Minute, o.IdleTimeout/10)}
	switch o.Mode {
	case ModeLocal:
	case ModeOIDC:
		ol, err := newOIDC(o.OIDC)
		if err != nil {
			return nil, err
		}
		s.oidc = ol
	default:
		return nil, fmt.Errorf("login: mode %q is not local or oidc", o.Mode)
	}
	s.pages = template.Must(template.ParseFS(assets, "templates/*.html"))
	return s, nil
}

// Accounts returns the local accounts.
func (s *Service) Accounts() *Accounts { return s.accounts }

// Route is one of the Service's HTTP routes: a ServeMux pattern, its
// handler and what it serves. They need no session; serve them under the
// operator's host names only.
type Route struct {
	Pattern string
	Handler http.Handler
	Serves  string
}

// Routes returns the sign-in routes:
//
//	GET  /login            the login page (the form, or the provider's button); ?next= or ?return= names where to go after
//	POST /login            local accounts: name and password
//	GET  /login/oidc       OpenID: starts the authorization at the provider
//	GET  <redirect path>   OpenID: the provider's redirect back (/login/callback)
//	POST /logout           ends the session (with its CSRF token)
//	GET  /login/style.css  the pages' stylesheet
func (s *Service) Routes() []Route {
	rs := []Route{
		{Pattern: "GET /login", Handler: http.HandlerFunc(s.loginPage), Serves: "the login page"},
		{Pattern: "GET /login/style.css", Handler: http.HandlerFunc(s.style), Serves: "the login page's stylesheet"},
		{Pattern: "POST /logout", Handler: http.HandlerFunc(s.logout), Serves: "logout (CSRF token): ends the session"},
	}
	if s.oidc != nil {
		rs = append(rs,
			Route{Pattern: "GET /login/oidc", Handler: http.HandlerFunc(s.oidcStart), Serves: "OpenID Connect sign-in: redirect to the identity provider"},
			Route{Pattern: "GET " + s.oidc.callbackPath, Handler: http.HandlerFunc(s.oidcCallback), Serves: "OpenID Connect redirect: code, state and nonce checked, session started"})
	} else {
		rs = append(rs, Route{Pattern: "POST /login", Handler: http.HandlerFunc(s.localLogin), Serves: "local account sign-in (name, password, login CSRF token)"})
	}
	return rs
}

// Cookie names; the __Host- prefix (RFC 6265bis) pins a cookie to this
// host, path / and Secure, when cookies are secure.
const (
	sessionCookie = "ehrgate-session"
	loginCookie   = "ehrgate-login" // the login form's CSRF token
	stateCookie   = "ehrgate-oidc"  // binds an OpenID login to the browser that started it
)

func (s *Service) secure(r *http.Request) bool { return s.o.SecureCookies || r.TLS != nil }

func (s *Service) cookieName(r *http.Request, base string) string {
	if s.secure(r) {
		return "__Host-" + base
	}
	return base
}

func (s *Service) setCookie(w http.ResponseWriter, r *http.Request, base, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r, base), Value: value, Path: "/", MaxAge: maxAge,
		Secure: s.secure(r), HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

func (s *Service) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(s.cookieName(r, base))
	if err != nil {
		return ""
	}
	return c.Value
}

// Require admits requests with a live session: it puts the person on the
// request's context (PersonFrom) and, on POST, PUT, PATCH and DELETE,
// requires a same-origin request carrying the session's CSRF token. Without
// a session, GET and HEAD are sent to the login page (and back after it);
// other methods get 401.
func (s *Service) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss, err := s.sess.lookup(r.Context(), s.cookie(r, sessionCookie))
		if errors.Is(err, errNoSession) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.message(w, r, http.StatusUnauthorized, "Not signed in", "Sign in first.")
			return
		}
		if err != nil {
			s.log.ErrorContext(r.Context(), "login: reading the session", "err", err)
			s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Sessions cannot be checked right now; try again shortly.")
			return
		}
		if unsafeMethod(r.Method) {
			if err := s.checkCSRF(r, ss.CSRF); err != nil {
				s.log.WarnContext(r.Context(), "login: request refused: CSRF", "person", ss.Person.ID, "reason", err.Error())
				s.message(w, r, http.StatusForbidden, "Refused", "This request did not come from an ehrgate page; reload the page and try again.")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), ss.Person, ss.CSRF)))
	})
}

// SignedIn returns the person whose live session the request's cookie
// names, for routes that are not behind Require (an OAuth authorization
// endpoint asks who is signed in, and sends others to the login page
// itself). Like Require, it refreshes the session's last-seen time. It
// reports false when no one is signed in or sessions cannot be read.
func (s *Service) SignedIn(r *http.Request) (Person, bool) {
	ss, err := s.sess.lookup(r.Context(), s.cookie(r, sessionCookie))
	if err != nil {
		if !errors.Is(err, errNoSession) {
			s.log.ErrorContext(r.Context(), "login: reading the session", "err", err)
		}
		return Person{}, false
	}
	return ss.Person, true
}

// Optional puts the signed-in person, if any, on the request's context
// (PersonFrom) without requiring one, for routes that decide for
// themselves what a stranger gets. It does not check CSRF tokens: such
// routes protect their own forms.
func (s *Service) Optional(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ss, err := s.sess.lookup(r.Context(), s.cookie(r, sessionCookie)); err == nil {
			r = r.WithContext(NewContext(r.Context(), ss.Person, ss.CSRF))
		}
		next.ServeHTTP(w, r)
	})
}

// Allow admits requests whose signed-in person may use perm and refuses
// the others with 403. Requests with no one signed in pass (use it inside
// Require; with login off there is no person).
func Allow(perm Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := PersonFrom(r.Context()); ok && !p.Can(perm) {
			http.Error(w, "Your role does not give access to this page.", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// maxForm bounds the body of the forms this package reads.
const maxForm = 64 << 10

// checkCSRF refuses cross-origin browser requests (Sec-Fetch-Site, or
// Origin against Host: net/http's CrossOriginProtection) and requests
// whose token (form field or header) is not want.
func (s *Service) checkCSRF(r *http.Request, want string) error {
	if err := s.cop.Check(r); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if ct := r.Header.Get("Content-Type"); got == "" && (strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")) {
		// A form: the token is a field. (Other bodies, such as JSON, are
		// left unread for the handler and need the header.)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
		}
		got = r.PostFormValue(CSRFField)
	}
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("missing or wrong CSRF token")
	}
	return nil
}

// safeNext returns next when it is a path on this site (not the login
// routes), else "/": a login never redirects elsewhere. It returns next as
// it came, never re-encoded: decoding "/%2Fevil.example" and encoding it
// again would make the protocol-relative "//evil.example".
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return "/"
	}
	for _, c := range []byte(next) {
		if c < 0x21 || c == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Path == "/logout" || u.Path == "/login" || strings.HasPrefix(u.Path, "/login/") {
		return "/"
	}
	return next
}

// loginData is what the login page shows.
type loginData struct {
	Title    string
	Mode     Mode
	Provider string // the OpenID button's label
	Next     string
	Token    string // the login form's CSRF token
	Error    string
	Name     string // the name typed, shown again after a failure
}

func (s *Service) headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	s.headers(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if err := s.pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.ErrorContext(r.Context(), "login: rendering "+name, "err", err)
	}
}

// message shows a short page with a heading and a user-safe sentence.
func (s *Service) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	s.render(w, r, status, "message.html", map[string]any{"Title": s.o.Title, "Heading": heading, "Text": text, "Status": status})
}

func (s *Service) style(w http.ResponseWriter, r *http.Request) {
	b, _ := assets.ReadFile("templates/login.css")
	s.headers(w)
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

func (s *Service) loginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	next := q.Get("next")
	if next == "" {
		next = q.Get("return") // the authorization server's name for it
	}
	next = safeNext(next)
	if _, err := s.sess.lookup(r.Context(), s.cookie(r, sessionCookie)); err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.showLogin(w, r, http.StatusOK, next, "", "")
}

func (s *Service) showLogin(w http.ResponseWriter, r *http.Request, status int, next, name, msg string) {
	d := loginData{Title: s.o.Title, Mode: s.o.Mode, Next: next, Error: msg, Name: name}
	if s.oidc != nil {
		d.Provider = s.oidc.label
	} else {
		d.Token = randomToken(24)
		s.setCookie(w, r, loginCookie, d.Token, 3600)
	}
	s.render(w, r, status, "login.html", d)
}

// localLogin checks a local account's name and password.
func (s *Service) localLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.message(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	tok := s.cookie(r, loginCookie)
	if err := s.cop.Check(r); err != nil || tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(r.PostFormValue(CSRFField))) != 1 {
		s.log.WarnContext(r.Context(), "login: sign-in form refused: CSRF")
		s.showLogin(w, r, http.StatusForbidden, next, "", "The form had expired or did not come from this page; please sign in again.")
		return
	}
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("username")))
	p, err := s.accounts.Authenticate(r.Context(), name, []byte(r.PostFormValue("password")))
	if errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrLocked) {
		s.log.WarnContext(r.Context(), "login: sign-in refused", "account", logName(name), "locked", errors.Is(err, ErrLocked))
		s.recordLogin(r, Person{}, "local", false)
		// One message for every refusal (OWASP): it does not tell whether
		// the name exists or the account is locked.
		s.showLogin(w, r, http.StatusUnauthorized, next, name,
			"Wrong name or password. After repeated failures an account is locked for a while.")
		return
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "login: checking a password", "err", err)
		s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-in is not possible right now; try again shortly.")
		return
	}
	s.start(w, r, p, next)
}

// logName is an attempted account name fit for the log: people type
// passwords into the name field, so only valid names are logged.
func logName(name string) string {
	if ValidName(name) != nil {
		return "(not a valid name)"
	}
	return name
}

// start records the sign-in, starts a session for p and sends the browser
// on to next.
func (s *Service) start(w http.ResponseWriter, r *http.Request, p Person, next string) {
	if err := s.recordLogin(r, p, p.Method, true); err != nil {
		s.log.ErrorContext(r.Context(), "login: recording the sign-in; refused", "err", err)
		s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Every sign-in is recorded in the audit trail, and this one could not be; try again shortly.")
		return
	}
	// A fresh id on every sign-in: a session id planted before it is
	// never promoted (session fixation).
	if old := s.cookie(r, sessionCookie); old != "" {
		_ = s.sess.end(r.Context(), old)
	}
	id, _, err := s.sess.create(r.Context(), p)
	if err != nil {
		s.log.ErrorContext(r.Context(), "login: starting a session", "err", err)
		s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-in is not possible right now; try again shortly.")
		return
	}
	s.setCookie(w, r, sessionCookie, id, 0)
	s.setCookie(w, r, loginCookie, "", -1)
	s.log.InfoContext(r.Context(), "login: signed in", "person", p.ID, "method", p.Method, "roles", fmt.Sprint(p.Roles))
	s.maybeSweep(r.Context())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// maybeSweep deletes expired sessions and abandoned logins, at most once
// per sweepEvery in this process.
func (s *Service) maybeSweep(ctx context.Context) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if now := s.now(); now.Sub(s.lastSweep) >= sweepEvery {
		s.lastSweep = now
		if n, err := s.sess.sweep(ctx, pendingTTL); err != nil {
			s.log.WarnContext(ctx, "login: deleting expired sessions", "err", err)
		} else if n > 0 {
			s.log.InfoContext(ctx, "login: deleted expired sessions and logins", "count", n)
		}
	}
}

// dashboardClient is the client the audit trail names for sign-ins.
const dashboardClient = "ehrgate-dashboard"

// recordLogin records a sign-in (or a refused one) in the audit trail.
func (s *Service) recordLogin(r *http.Request, p Person, method string, ok bool) error {
	if s.o.Audit == nil {
		return nil
	}
	e := audit.Event{Type: audit.TypeLogin, Action: audit.ActionExecute, Outcome: audit.OutcomeSuccess,
		Agent: audit.Agent{UserID: p.ID, Name: p.Name, ClientID: dashboardClient, Address: audit.Address(r.RemoteAddr)}}
	if !ok {
		e.Outcome, e.OutcomeDesc = audit.OutcomeMinor, "dashboard sign-in refused ("+method+")"
	}
	err := s.o.Audit.Record(r.Context(), e)
	if err != nil && !ok {
		s.log.ErrorContext(r.Context(), "login: recording a refused sign-in", "err", err)
	}
	return err
}

// logout ends the session (POST with the session's CSRF token) and sends
// the browser to the login page, or, for a person signed in through an
// OpenID provider that offers it, to the provider's end-session endpoint,
// so that the next sign-in asks for credentials again instead of passing
// straight through the provider's own session.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	id := s.cookie(r, sessionCookie)
	ss, err := s.sess.lookup(r.Context(), id)
	if err == nil {
		if err := s.checkCSRF(r, ss.CSRF); err != nil {
			s.log.WarnContext(r.Context(), "login: logout refused: CSRF", "person", ss.Person.ID, "reason", err.Error())
			s.message(w, r, http.StatusForbidden, "Refused", "This request did not come from an ehrgate page; reload the page and try again.")
			return
		}
		if err := s.sess.end(r.Context(), id); err != nil {
			s.log.ErrorContext(r.Context(), "login: ending a session", "err", err)
			s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-out is not possible right now; try again shortly.")
			return
		}
		s.log.InfoContext(r.Context(), "login: signed out", "person", ss.Person.ID)
	} else if !errors.Is(err, errNoSession) {
		s.log.ErrorContext(r.Context(), "login: reading the session", "err", err)
		s.message(w, r, http.StatusServiceUnavailable, "Unavailable", "Sign-out is not possible right now; try again shortly.")
		return
	}
	s.setCookie(w, r, sessionCookie, "", -1)
	if err == nil && ss.Person.Method == "oidc" && s.oidc != nil {
		if to, ok := s.oidc.endSessionURL(r.Context()); ok {
			// A page that moves on by itself rather than a redirect: the
			// logout form's page allows forms to post to ehrgate only
			// (CSP form-action 'self'), which browsers apply to the
			// redirects after the POST as well.
			s.render(w, r, http.StatusOK, "message.html", map[string]any{"Title": s.o.Title, "Heading": "Signed out",
				"Text": "You are signed out of ehrgate; signing you out at your identity provider too.", "Continue": to})
			return
		}
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
