package authz

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"ehrgate/clients"
	"ehrgate/fhirapi"
	"ehrgate/smart"
	"ehrgate/store"
)

//go:embed picker.html
var pageFS embed.FS

var pages = template.Must(template.ParseFS(pageFS, "picker.html"))

// pickerTTL is how long a patient-picker page stays usable.
const pickerTTL = 15 * time.Minute

// pending is a patient-picker request: its CSRF token (the document's
// name is the token's hash) is bound to the person and to the exact
// authorization request.
type pending struct {
	Person  string    `json:"person"`
	Request string    `json:"request"` // SHA-256 of the authorization request's query
	Expires time.Time `json:"expires"`
}

// serveAuthorize is the authorization endpoint: the client and its exact
// redirect URI first (an error there is shown, never redirected), then the
// signed-in person, then fosite's checks, then SMART's (aud, PKCE S256),
// then the scopes; with launch/patient the person picks the patient.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, ok := s.redirectable(ctx, w, r.URL.Query())
	if !ok {
		return
	}
	person, ok := s.o.Person(r)
	if !ok {
		sep := "?"
		if strings.Contains(s.o.LoginURL, "?") {
			sep = "&"
		}
		http.Redirect(w, r, s.o.LoginURL+sep+"return="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	ar, granted, err := s.authorizeRequest(ctx, r, c)
	if err != nil {
		s.refused("authorize", err)
		s.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	if !has(granted, scopeLaunchPatient) {
		s.finish(w, r, ar, person, c, granted, nil)
		return
	}
	csrf := randomString(32)
	p := pending{Person: person.ID, Request: sha256Hex(r.URL.RawQuery), Expires: s.o.Now().Add(pickerTTL)}
	if err := s.st.put(ctx, kindPending, hashName(csrf), p); err != nil {
		s.log.Error("storing a patient-picker request", "error", err)
		s.page(w, http.StatusServiceUnavailable, pickerPage{Message: "The patient picker is unavailable; try again."})
		return
	}
	s.page(w, http.StatusOK, pickerPage{Client: c.ID, Person: person.Name, CSRF: csrf, Request: r.URL.RawQuery, Action: PathPick,
		RedirectTo: ar.GetRedirectURI().String()})
}

// redirectable checks the client and the redirect URI (exact match, and
// required) before anything may be sent to that URI.
func (s *Server) redirectable(ctx context.Context, w http.ResponseWriter, q url.Values) (clients.Client, bool) {
	c, err := s.o.Clients.Get(ctx, q.Get("client_id"))
	if err != nil || c.CDS {
		if err != nil && !errors.Is(err, clients.ErrNotFound) {
			s.log.Error("reading a client", "error", err)
		}
		s.page(w, http.StatusBadRequest, pickerPage{Message: "This app is not registered with ehrgate."})
		return c, false
	}
	if ru := q.Get("redirect_uri"); ru == "" || !slices.Contains(c.RedirectURIs, ru) {
		s.page(w, http.StatusBadRequest, pickerPage{Message: "The app's redirect_uri is missing or not registered for it (it must match exactly)."})
		return c, false
	}
	return c, true
}

// authorizeRequest runs fosite's checks, then SMART's, and computes the
// scopes to grant.
func (s *Server) authorizeRequest(ctx context.Context, r *http.Request, c clients.Client) (fosite.AuthorizeRequester, smart.Scopes, error) {
	ar, err := s.oauth.NewAuthorizeRequest(ctx, r)
	if err != nil {
		return ar, nil, err
	}
	form := ar.GetRequestForm()
	if strings.TrimSuffix(form.Get("aud"), "/") != s.o.Audience {
		return ar, nil, fosite.ErrInvalidRequest.WithHintf("The aud parameter must be this server's FHIR base URL, %s.", s.o.Audience)
	}
	if form.Get("code_challenge") == "" || form.Get("code_challenge_method") != "S256" {
		return ar, nil, fosite.ErrInvalidRequest.WithHint("PKCE is required, with code_challenge_method S256.")
	}
	if !ar.GetResponseTypes().ExactOne("code") {
		return ar, nil, fosite.ErrUnsupportedResponseType.WithHint("Only response_type code is supported.")
	}
	granted := grant(parseScopes(ar.GetRequestedScopes()), parseScopes(c.Scopes), flowPerson)
	if !hasResource(granted) {
		return ar, nil, fosite.ErrInvalidScope.WithHint("None of the requested resource scopes is registered for this app.")
	}
	return ar, granted, nil
}

// patientRef is the picked patient.
type patientRef struct{ connection, id string }

// finish grants and redirects back to the app with the code.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, person Person, c clients.Client, granted smart.Scopes, p *patientRef) {
	ctx := r.Context()
	if !person.MayAudit {
		// The audit trail is for auditors: an app a clinician authorizes
		// never reads it, whatever it is registered for.
		kept := granted[:0:0]
		for _, sc := range granted {
			if sc.IsResource() && sc.Type == "AuditEvent" {
				continue
			}
			kept = append(kept, sc)
		}
		granted = kept
	}
	for _, sc := range granted {
		ar.GrantScope(sc.String())
	}
	ar.GrantAudience(s.o.Audience)
	sess := &session{Subject: person.ID, ClientID: c.ID, FHIRUser: person.FHIRUser,
		OnlineOnly: has(granted, scopeOnline) && !has(granted, scopeOffline)}
	if p != nil {
		sess.Patient, sess.PatientConnection, sess.PatientID = fhirapi.ServedID(p.connection, p.id), p.connection, p.id
	}
	resp, err := s.oauth.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.refused("authorize", err)
		s.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// servePick handles the picker's form: a search, or the chosen patient.
// The CSRF token must be the one issued for this person and this exact
// authorization request; choosing consumes it.
func (s *Server) servePick(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.page(w, http.StatusBadRequest, pickerPage{Message: "The form could not be read."})
		return
	}
	f := r.PostForm
	person, ok := s.o.Person(r)
	if !ok {
		s.page(w, http.StatusForbidden, pickerPage{Message: "You are not signed in any more; open the app again."})
		return
	}
	csrf, raw := f.Get("csrf"), f.Get("request")
	if !s.pendingOK(ctx, csrf, raw, person) {
		s.page(w, http.StatusForbidden, pickerPage{Message: "This page has expired or was not opened by you; open the app again."})
		return
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		s.page(w, http.StatusBadRequest, pickerPage{Message: "The authorization request could not be read."})
		return
	}
	c, ok := s.redirectable(ctx, w, q)
	if !ok {
		return
	}
	orig := r.Clone(ctx)
	orig.Method, orig.Body, orig.Form, orig.PostForm = http.MethodGet, http.NoBody, nil, nil
	orig.URL = &url.URL{Path: PathAuthorize, RawQuery: raw}
	orig.Header = r.Header.Clone()
	orig.Header.Del("Content-Type")
	ar, granted, err := s.authorizeRequest(ctx, orig, c)
	if err != nil {
		s.refused("authorize", err)
		s.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	pg := pickerPage{Client: c.ID, Person: person.Name, CSRF: csrf, Request: raw, Action: PathPick,
		Query: f.Get("q"), BirthDate: f.Get("birthdate"), RedirectTo: ar.GetRedirectURI().String()}
	switch f.Get("action") {
	case "cancel":
		if _, err := s.o.Docs.DeleteDocument(ctx, kindPending, hashName(csrf)); err != nil {
			s.log.Error("deleting a patient-picker request", "error", err)
		}
		s.oauth.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The person cancelled."))
	case "choose":
		conn, id, ok := strings.Cut(f.Get("patient"), "/")
		if !ok || conn == "" || id == "" {
			pg.Message = "Choose a patient."
			s.page(w, http.StatusOK, pg)
			return
		}
		if _, err := s.o.Patients.Get(ctx, conn, "Patient", id); err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.log.Error("reading the chosen patient", "error", err)
			}
			pg.Message = "That patient could not be found; search again."
			s.page(w, http.StatusOK, pg)
			return
		}
		deleted, err := s.o.Docs.DeleteDocument(ctx, kindPending, hashName(csrf))
		if err != nil || !deleted { // consumed by a concurrent submission
			s.page(w, http.StatusForbidden, pickerPage{Message: "This page was used already; open the app again."})
			return
		}
		s.finish(w, r, ar, person, c, granted, &patientRef{connection: conn, id: id})
	default: // search
		text, birth := strings.TrimSpace(pg.Query), strings.TrimSpace(pg.BirthDate)
		if text == "" && birth == "" {
			pg.Message = "Search by name, MRN or birth date."
			s.page(w, http.StatusOK, pg)
			return
		}
		recs, err := s.o.Patients.SearchPatients(ctx, store.PatientQuery{Text: text, BirthDate: birth, Limit: 25})
		if err != nil {
			s.log.Error("searching patients for the picker", "error", err)
			pg.Message = "The search failed; try again."
			s.page(w, http.StatusOK, pg)
			return
		}
		pg.Searched = true
		for _, rec := range recs {
			pg.Results = append(pg.Results, summarize(rec))
		}
		s.page(w, http.StatusOK, pg)
	}
}

// pendingOK checks a picker's CSRF token against its person and request.
func (s *Server) pendingOK(ctx context.Context, csrf, raw string, person Person) bool {
	if csrf == "" {
		return false
	}
	d, err := s.o.Docs.GetDocument(ctx, kindPending, hashName(csrf))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("reading a patient-picker request", "error", err)
		}
		return false
	}
	var p pending
	if json.Unmarshal(d.Body, &p) != nil {
		return false
	}
	return p.Person == person.ID && p.Request == sha256Hex(raw) && s.o.Now().Before(p.Expires)
}

// pickerPage is the data of picker.html (also its error page).
type pickerPage struct {
	Client, Person   string
	CSRF, Request    string
	Action           string
	Query, BirthDate string
	Searched         bool
	Results          []patientRow
	Message          string
	// RedirectTo is the app's redirect URI (already checked against its
	// registration): the picker's form ends in a redirect there, which
	// the page's Content-Security-Policy form-action must allow (browsers
	// apply form-action to the redirects after a submission).
	RedirectTo string
}

// patientRow is one search result as the picker shows it.
type patientRow struct {
	Value      string // connection/id
	Name       string
	BirthDate  string
	Gender     string
	MRN        string
	Connection string
}

// summarize reads what the picker shows from a stored Patient.
func summarize(rec store.Record) patientRow {
	row := patientRow{Value: rec.Connection + "/" + rec.ID, Connection: rec.Connection, Name: "(no name)"}
	var p struct {
		Name []struct {
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		BirthDate  string `json:"birthDate"`
		Gender     string `json:"gender"`
		Identifier []struct {
			Value string `json:"value"`
		} `json:"identifier"`
	}
	if json.Unmarshal(rec.Raw, &p) != nil {
		return row
	}
	if len(p.Name) > 0 {
		n := p.Name[0]
		if n.Text != "" {
			row.Name = n.Text
		} else if s := strings.TrimSpace(strings.Join(append(slices.Clone(n.Given), n.Family), " ")); s != "" {
			row.Name = s
		}
	}
	row.BirthDate, row.Gender = p.BirthDate, p.Gender
	if len(p.Identifier) > 0 {
		row.MRN = p.Identifier[0].Value
	}
	return row
}

// page renders the picker (or an error) with headers that keep it from
// being framed, cached or given scripts.
func (s *Server) page(w http.ResponseWriter, status int, p pickerPage) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	formAction := "'self'"
	if u, err := url.Parse(p.RedirectTo); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "picker.html", p); err != nil {
		s.log.Error("rendering the patient picker", "error", err)
	}
}
