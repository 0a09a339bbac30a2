package smartauth

import (
	"crypto/subtle"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are the server-rendered pages of the authorize flow.
var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// sessionCookie is the browser session cookie of the auth pages.
const sessionCookie = "smartauth_session"

// requestTTL is how long an authorization request may take to complete.
const requestTTL = 15 * time.Minute

// pageData is what every page template receives.
type pageData struct {
	Title       string
	Action      string
	CSRF        string
	Req         string
	ClientID    string
	ClientName  string
	Error       string
	Patients    []PatientChoice
	Clients     []*Client
	Scopes      []string
	PatientName string
	User        string
	Code        string
	Message     string
}

// render writes a page with security headers: no caching, no framing, no
// referrer (pages carry request ids), no scripts.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "smartauth: rendering page", slog.String("page", name), slog.String("err", err.Error()))
	}
}

// errorPage shows an authorize-flow error that cannot be redirected to the
// client.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: authorize error page", slog.String("error", code))
	s.render(w, r, status, "error", pageData{Title: "Authorization error", Code: code, Message: msg})
}

// ensureSession returns the browser's live session, starting one (and
// setting its cookie) when there is none.
func (s *Server) ensureSession(w http.ResponseWriter, r *http.Request) (string, session) {
	now := s.now()
	if c, err := r.Cookie(sessionCookie); err == nil {
		if sess, ok := s.st.session(c.Value, now); ok {
			return c.Value, sess
		}
	}
	id, sess := s.st.newSession(now)
	s.setSessionCookie(w, id)
	return id, *sess
}

// setSessionCookie sets the session cookie, scoped to the auth pages.
func (s *Server) setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: s.authPrefix() + "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.issuer.Scheme == "https",
	})
}

// formSession checks a POSTed page form: a live session whose CSRF token
// equals the form's.
func (s *Server) formSession(r *http.Request) (string, session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", session{}, false
	}
	sess, ok := s.st.session(c.Value, s.now())
	if !ok || subtle.ConstantTimeCompare([]byte(sess.csrf), []byte(r.PostFormValue("csrf"))) != 1 {
		return "", session{}, false
	}
	return c.Value, sess, true
}

// normalizeURL lowercases scheme and host, drops default ports and
// trailing slashes, for comparing aud with the issuer.
func normalizeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return raw
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	if (u.Scheme == "http" && strings.HasSuffix(host, ":80")) || (u.Scheme == "https" && strings.HasSuffix(host, ":443")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	u.Host = host
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// serveAuthorize is the authorization endpoint (RFC 6749 section 4.1.1,
// SMART App Launch "Obtain authorization code"). An unknown client or a
// redirect_uri that is not registered gets an error page; every other
// error goes back to the redirect URI with error and state.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "The authorization request could not be read.")
		return
	}
	q := r.Form
	for _, name := range []string{"client_id", "redirect_uri", "state", "response_type", "scope", "aud", "launch", "code_challenge", "code_challenge_method", "nonce"} {
		if len(q[name]) > 1 {
			s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "Parameter "+name+" was repeated.")
			return
		}
	}
	clientID := q.Get("client_id")
	c := s.client(clientID)
	if c == nil || s.fail(clientID, func(f Failures) bool { return f.InvalidClientID }) {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidClient, "The application is not registered with this EHR (unknown client_id).")
		return
	}
	redirectURI, given := q.Get("redirect_uri"), true
	if redirectURI == "" && len(c.RedirectURIs) == 1 {
		redirectURI, given = c.RedirectURIs[0], false
	}
	if !slices.Contains(c.RedirectURIs, redirectURI) || s.fail(clientID, func(f Failures) bool { return f.InvalidRedirectURI }) {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "The redirect_uri does not exactly match one registered for this application.")
		return
	}
	state := q.Get("state")
	fail := func(e *Error) {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: authorize refused",
			slog.String("client_id", clientID), slog.String("error", e.Code))
		redirectError(w, r, redirectURI, state, e)
	}
	if rt := q.Get("response_type"); rt != "code" {
		fail(oauthErr(ErrUnsupportedResponseType, "response_type must be code"))
		return
	}
	if aud := q.Get("aud"); aud == "" {
		fail(oauthErr(ErrInvalidRequest, "aud is required: the FHIR base URL of this server"))
		return
	} else if normalizeURL(aud) != normalizeURL(s.opts.Issuer) {
		fail(oauthErr(ErrInvalidRequest, "aud does not identify this FHIR server"))
		return
	}
	switch m := q.Get("code_challenge_method"); {
	case q.Get("code_challenge") == "":
		fail(oauthErr(ErrInvalidRequest, "PKCE is required: send code_challenge and code_challenge_method=S256"))
		return
	case m != "S256":
		fail(oauthErr(ErrInvalidRequest, "code_challenge_method must be S256 (plain is not supported)"))
		return
	case !validVerifierChars(q.Get("code_challenge")) || len(q.Get("code_challenge")) != 43:
		fail(oauthErr(ErrInvalidRequest, "code_challenge must be a base64url SHA-256 (43 characters)"))
		return
	}
	requested := strings.Fields(q.Get("scope"))
	if len(requested) == 0 {
		fail(oauthErr(ErrInvalidScope, "scope is required"))
		return
	}
	now := s.now()
	req := &authRequest{
		id: randomToken(), clientID: clientID, redirectURI: redirectURI, redirectGiven: given,
		state: state, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"),
		expires: now.Add(requestTTL),
	}
	if l := q.Get("launch"); l != "" {
		li, ok := s.st.takeLaunch(l, clientID, now)
		if !ok {
			fail(oauthErr(ErrInvalidRequest, "launch is unknown, expired, already used or issued for another application"))
			return
		}
		req.ehrLaunch, req.patient, req.encounter = true, li.patient, li.encounter
	} else if slices.Contains(requested, "launch") {
		fail(oauthErr(ErrInvalidRequest, "scope launch needs the launch parameter of an EHR launch"))
		return
	}
	granted := grantScopes(c, requested)
	if !req.ehrLaunch {
		// Standalone launches can establish a patient (picker), not an
		// encounter, and there is no EHR launch context.
		granted = slices.DeleteFunc(granted, func(sc scope) bool { return sc.raw == "launch/encounter" || sc.raw == "launch" })
	}
	if len(granted) == 0 || s.fail(clientID, func(f Failures) bool { return f.InvalidScope }) {
		fail(oauthErr(ErrInvalidScope, "none of the requested scopes may be granted to this application"))
		return
	}
	req.scopes = scopeStrings(granted)
	req.needPicker = !req.ehrLaunch && hasScope(granted, "launch/patient")
	sid, sess := s.ensureSession(w, r)
	req.session = sid
	s.st.putRequest(req)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: authorize started",
		slog.String("client_id", clientID), slog.Bool("ehr_launch", req.ehrLaunch))
	s.next(w, r, *req, sess)
}

// next sends the browser to the next step of a request: login, patient
// picker, consent.
func (s *Server) next(w http.ResponseWriter, r *http.Request, req authRequest, sess session) {
	step := "consent"
	switch {
	case sess.user == "":
		step = "login"
	case req.needPicker && req.patient == "":
		step = "picker"
	}
	http.Redirect(w, r, s.authPrefix()+"/"+step+"?req="+url.QueryEscape(req.id), http.StatusSeeOther)
}

// pageRequest finds the session and request of a page: from the form and
// CSRF token on POST, from the cookie and query on GET. It answers the
// request itself and returns ok=false when they are missing.
func (s *Server) pageRequest(w http.ResponseWriter, r *http.Request) (string, session, authRequest, bool) {
	var (
		sid  string
		sess session
		ok   bool
	)
	if r.Method == http.MethodPost {
		sid, sess, ok = s.formSession(r)
		if !ok {
			s.errorPage(w, r, http.StatusForbidden, ErrInvalidRequest, "The form has expired or did not come from this site (CSRF check failed). Start again from the application.")
			return "", session{}, authRequest{}, false
		}
	} else {
		c, err := r.Cookie(sessionCookie)
		if err == nil {
			sess, ok = s.st.session(c.Value, s.now())
			sid = c.Value
		}
		if !ok {
			s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "No sign-in is in progress in this browser. Start again from the application.")
			return "", session{}, authRequest{}, false
		}
	}
	reqID := r.FormValue("req")
	req, ok := s.st.request(reqID, sid, s.now())
	if !ok {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "This authorization request is unknown or has expired. Start again from the application.")
		return "", session{}, authRequest{}, false
	}
	return sid, sess, req, true
}

// serveLogin is the login page.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	sid, sess, req, ok := s.pageRequest(w, r)
	if !ok {
		return
	}
	c := s.client(req.clientID)
	if c == nil {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidClient, "The application is no longer registered.")
		return
	}
	d := pageData{Title: "Sign in", Action: s.authPrefix() + "/login", CSRF: sess.csrf, Req: req.id, ClientName: c.Name}
	if r.Method == http.MethodGet {
		s.render(w, r, http.StatusOK, "login", d)
		return
	}
	u := s.checkPassword(r.PostFormValue("username"), r.PostFormValue("password"))
	if u == nil {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: login failed", slog.String("client_id", req.clientID))
		d.Error = "Unknown username or wrong password."
		s.render(w, r, http.StatusUnauthorized, "login", d)
		return
	}
	// A new session id at login: a session id planted before it is useless
	// (session fixation).
	sid, sessp := s.st.rotateSession(sid, u.Username, s.now())
	s.setSessionCookie(w, sid)
	s.next(w, r, req, *sessp)
}

// checkPassword returns the user with these credentials, or nil.
func (s *Server) checkPassword(username, password string) *User {
	return FindUser(s.opts.Users, username, password)
}

// FindUser returns the user of users with these credentials, or nil,
// comparing in constant time and looking at every user.
func FindUser(users []User, username, password string) *User {
	var found *User
	for i := range users {
		u := &users[i]
		userOK := subtle.ConstantTimeCompare([]byte(u.Username), []byte(username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1
		if userOK && passOK {
			found = u
		}
	}
	return found
}

// user returns the user with the username, or nil.
func (s *Server) user(name string) *User {
	for i := range s.opts.Users {
		if s.opts.Users[i].Username == name {
			return &s.opts.Users[i]
		}
	}
	return nil
}

// patients returns the patients for the picker and launch page.
func (s *Server) patients() []PatientChoice {
	if s.opts.Patients != nil {
		return s.opts.Patients()
	}
	s.mu.Lock()
	l := s.lister
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	return l()
}

// patientName returns the display name of a patient, or its id.
func (s *Server) patientName(id string) string {
	for _, p := range s.patients() {
		if p.ID == id {
			return p.Name
		}
	}
	return id
}

// servePicker is the patient picker of standalone launch/patient launches.
func (s *Server) servePicker(w http.ResponseWriter, r *http.Request) {
	_, sess, req, ok := s.pageRequest(w, r)
	if !ok {
		return
	}
	if sess.user == "" || !req.needPicker {
		s.next(w, r, req, sess)
		return
	}
	c := s.client(req.clientID)
	if c == nil {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidClient, "The application is no longer registered.")
		return
	}
	list := s.patients()
	if r.Method == http.MethodPost {
		id := r.PostFormValue("patient")
		if slices.ContainsFunc(list, func(p PatientChoice) bool { return p.ID == id }) {
			s.st.updateRequest(req.id, func(ar *authRequest) { ar.patient = id })
			req.patient = id
			s.next(w, r, req, sess)
			return
		}
	}
	s.render(w, r, http.StatusOK, "picker", pageData{
		Title: "Choose a patient", Action: s.authPrefix() + "/picker", CSRF: sess.csrf, Req: req.id,
		ClientName: c.Name, Patients: list,
	})
}

// serveConsent is the consent page; allowing issues the code.
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	sid, sess, req, ok := s.pageRequest(w, r)
	if !ok {
		return
	}
	if sess.user == "" || (req.needPicker && req.patient == "") {
		s.next(w, r, req, sess)
		return
	}
	c := s.client(req.clientID)
	if c == nil {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidClient, "The application is no longer registered.")
		return
	}
	u := s.user(sess.user)
	if u == nil {
		s.errorPage(w, r, http.StatusBadRequest, ErrAccessDenied, "The signed-in user no longer exists.")
		return
	}
	if r.Method == http.MethodGet {
		d := pageData{
			Title: "Allow access?", Action: s.authPrefix() + "/consent", CSRF: sess.csrf, Req: req.id,
			ClientID: c.ID, ClientName: c.Name, Scopes: req.scopes, User: u.Name,
		}
		if d.User == "" {
			d.User = u.Username
		}
		if req.patient != "" {
			d.PatientName = s.patientName(req.patient)
		}
		s.render(w, r, http.StatusOK, "consent", d)
		return
	}
	req, ok = s.st.takeRequest(req.id, sid, s.now())
	if !ok {
		s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "This authorization request is unknown or has expired.")
		return
	}
	if r.PostFormValue("decision") != "allow" {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: consent denied", slog.String("client_id", req.clientID))
		redirectError(w, r, req.redirectURI, req.state, oauthErr(ErrAccessDenied, "the user denied access"))
		return
	}
	req.user, req.fhirUser = u.Username, u.FhirUser
	now := s.now()
	code := s.st.putCode(codeInfo{authRequest: req, expires: now.Add(s.opts.CodeTTL), grant: randomToken()})
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: code issued", slog.String("client_id", req.clientID))
	http.Redirect(w, r, addQuery(req.redirectURI, url.Values{"code": {code}, "state": {req.state}}), http.StatusSeeOther)
}

// serveLaunch is the EHR's launch page: a "launch app" button per patient
// and registered client with a LaunchURL. Pressing one creates a launch
// context bound to that client and patient (valid once, for LaunchTTL) and
// sends the browser to LaunchURL?iss=<Issuer>&launch=<id>.
func (s *Server) serveLaunch(w http.ResponseWriter, r *http.Request) {
	var clients []*Client
	for _, c := range s.clientList() {
		if c.LaunchURL != "" {
			clients = append(clients, c)
		}
	}
	list := s.patients()
	if r.Method == http.MethodPost {
		if _, _, ok := s.formSession(r); !ok {
			s.errorPage(w, r, http.StatusForbidden, ErrInvalidRequest, "The form has expired or did not come from this site (CSRF check failed).")
			return
		}
		val := r.PostFormValue("launch")
		i := strings.LastIndexByte(val, ' ')
		if i < 0 {
			s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "No app and patient were chosen.")
			return
		}
		clientID, patientID := val[:i], val[i+1:]
		ci := slices.IndexFunc(clients, func(c *Client) bool { return c.ID == clientID })
		pi := slices.IndexFunc(list, func(p PatientChoice) bool { return p.ID == patientID })
		if ci < 0 || pi < 0 {
			s.errorPage(w, r, http.StatusBadRequest, ErrInvalidRequest, "Unknown app or patient.")
			return
		}
		id := s.st.putLaunch(launchInfo{clientID: clientID, patient: patientID, encounter: list[pi].Encounter, expires: s.now().Add(s.opts.LaunchTTL)})
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "smartauth: EHR launch", slog.String("client_id", clientID))
		http.Redirect(w, r, addQuery(clients[ci].LaunchURL, url.Values{"iss": {s.opts.Issuer}, "launch": {id}}), http.StatusSeeOther)
		return
	}
	_, sess := s.ensureSession(w, r)
	s.render(w, r, http.StatusOK, "launch", pageData{
		Title: "Launch an app", Action: s.authPrefix() + "/launch", CSRF: sess.csrf,
		Patients: list, Clients: clients,
	})
}

// validVerifierChars reports whether s uses only the PKCE unreserved
// characters (RFC 7636 section 4.1).
func validVerifierChars(s string) bool {
	for _, c := range s {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}
