// Package ordering is the simulated EHR's ordering screen: what a
// clinician sees in Epic or Oracle Health when ordering a medication. A
// clinician signs in, opens a patient, orders a medication (RxNorm coded,
// or free text); the screen calls the configured CDS services on
// order-select (and order-sign when the orders are signed) through package
// cdsclient, with the prefetch filled from the simulator's own FHIR API and
// a signed JWT, and shows the cards. The clinician accepts a suggestion,
// which is applied to the draft orders (delete, create, update), or
// overrides a card with a reason; either way the screen sends CDS Hooks 2.0
// feedback to the service that gave the card.
//
// Lifecycle: New builds a Screen over the simulator's FHIR handler;
// Handler serves its pages under Options.Prefix. Sessions and draft orders
// live in memory; a signed order is written into the simulated EHR's record
// (Options.Record) as an active MedicationRequest, which its FHIR API then
// serves like any other (to ehrgate's next sync, and to the next order's
// duplicate-therapy check). Pages are server-rendered forms without
// scripts, every POST checked against the session's CSRF token.
package ordering

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"ehrgate/ehrsim/cdsclient"
	"ehrgate/ehrsim/smartauth"
)

// Medication is an orderable medication of the screen's catalogue.
type Medication struct {
	// RxCUI is the RxNorm clinical drug (SCD); empty for a free-text order.
	RxCUI string
	// Display is the RxNorm name (or the typed text).
	Display string
}

// systemRxNorm is the FHIR system URI of RxNorm
// (https://terminology.hl7.org/CodeSystem-v3-rxNorm.html).
const systemRxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm"

// Catalogue is the default list of orderable medications: RxNorm clinical
// drugs, codes and names as in ehrgate's RxNorm table
// (terminology/data/rxnorm.csv) and synthetic catalogue (synth/catalog.go),
// except sulfamethoxazole/trimethoprim, from RxNav
// (https://mor.nlm.nih.gov/RxNav/search?searchBy=RXCUI&searchTerm=198335).
var Catalogue = []Medication{
	{RxCUI: "308182", Display: "amoxicillin 250 MG Oral Capsule"},
	{RxCUI: "198335", Display: "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"},
	{RxCUI: "310965", Display: "ibuprofen 200 MG Oral Tablet"},
	{RxCUI: "849574", Display: "naproxen sodium 220 MG Oral Tablet"},
	{RxCUI: "313782", Display: "acetaminophen 325 MG Oral Tablet"},
	{RxCUI: "197361", Display: "amlodipine 5 MG Oral Tablet"},
}

// Options configure a Screen.
type Options struct {
	// FHIR is the simulator's FHIR API, unprotected (the EHR reads its
	// own data): patients, allergies and prefetch are read from it in
	// process. Required.
	FHIR http.Handler
	// FHIRBase is that API's absolute base URL as CDS services see it
	// (the fhirServer of each call, e.g. http://127.0.0.1:8081/fhir); its
	// path is the prefix FHIR serves under. Required.
	FHIRBase string
	// CDSBase is the CDS server's base URL (discovery at
	// CDSBase/cds-services). Required.
	CDSBase string
	// Client configures the CDS client (Issuer, Key, HTTPClient);
	// FHIRServer and FHIRClient are set by New.
	Client cdsclient.Options
	// Users are the clinicians who may sign in (empty:
	// smartauth.DefaultUsers, dr.smith / password).
	Users []smartauth.User
	// Prefix is the path the screen is served under (default "/ehr").
	Prefix string
	// Catalogue is the medications offered (default Catalogue).
	Catalogue []Medication
	// Logger logs identifiers only, never patient data or tokens.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Record writes a signed order (an active MedicationRequest) into the
	// simulated EHR's record, e.g. ehrsim.Server.Load; nil: signed orders
	// stay on the screen only.
	Record func(ctx context.Context, resource json.RawMessage) error
}

// sessionTTL is how long a sign-in lasts without use.
const sessionTTL = 8 * time.Hour

// sessionCookie names the screen's session cookie.
const sessionCookie = "ehrsim_ordering"

// Screen is the ordering screen. It is safe for concurrent use.
type Screen struct {
	o      Options
	log    *slog.Logger
	cds    *cdsclient.Client
	fhir   *http.Client
	prefix string // o.FHIRBase's path

	mu       sync.Mutex
	sessions map[string]*session
	services []cdsclient.Service // discovered once
}

// session is one signed-in clinician's state.
type session struct {
	user    smartauth.User
	csrf    string
	expires time.Time
	orders  map[string][]*draft // by patient id
}

// draft is a medication order being written.
type draft struct {
	ID       string
	Label    string
	Resource json.RawMessage // the MedicationRequest sent as a draft order
	Status   string          // draft, signed, removed
	Cards    []*shownCard
	Notice   string // a CDS service that could not be asked, and why
}

// snapshot copies d and its cards' outcomes (callers hold the Screen's mu).
func (d *draft) snapshot() *draft {
	c := *d
	c.Cards = nil
	for _, sc := range d.Cards {
		cc := *sc
		c.Cards = append(c.Cards, &cc)
	}
	return &c
}

// shownCard is a card as shown, with the service that gave it and what
// the user did with it.
type shownCard struct {
	Service string
	Hook    string
	cdsclient.Card
	Outcome string // "", accepted, overridden
	Reason  string // the override reason's display
}

// New returns a Screen.
func New(o Options) (*Screen, error) {
	var errs []error
	if o.FHIR == nil {
		errs = append(errs, errors.New("ordering: the FHIR handler is required"))
	}
	fb, err := url.Parse(o.FHIRBase)
	if err != nil || fb.Host == "" {
		errs = append(errs, errors.New("ordering: FHIRBase must be an absolute URL"))
	}
	if o.CDSBase == "" {
		errs = append(errs, errors.New("ordering: CDSBase is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(o.Users) == 0 {
		o.Users = smartauth.DefaultUsers
	}
	if o.Prefix == "" {
		o.Prefix = "/ehr"
	}
	o.Prefix = strings.TrimRight(o.Prefix, "/")
	if len(o.Catalogue) == 0 {
		o.Catalogue = Catalogue
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.CDSBase = strings.TrimRight(o.CDSBase, "/")
	fhirClient := &http.Client{Transport: smartauth.HandlerTransport(o.FHIR)}
	co := o.Client
	co.FHIRServer, co.FHIRClient = strings.TrimRight(o.FHIRBase, "/"), fhirClient
	if co.Now == nil {
		co.Now = o.Now
	}
	cds, err := cdsclient.New(co)
	if err != nil {
		return nil, fmt.Errorf("ordering: %w", err)
	}
	return &Screen{o: o, log: o.Logger, cds: cds, fhir: fhirClient, prefix: strings.TrimRight(fb.Path, "/"),
		sessions: map[string]*session{}}, nil
}

// JWKS is the public key set of the screen's CDS client: what the CDS
// server registers (ehrgate clients add NAME --cds-client --jwks FILE).
func (s *Screen) JWKS() []byte { return s.cds.JWKS() }

// Issuer is the iss of the screen's JWTs.
func (s *Screen) Issuer() string { return s.cds.Issuer() }

// Handler serves the screen's pages under Options.Prefix, and the CDS
// client's public JWKS at Prefix/jwks.json (for --jwks-url registration).
func (s *Screen) Handler() http.Handler {
	p := s.o.Prefix
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/{$}", s.serveHome)
	mux.HandleFunc("GET "+p+"/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.cds.JWKS())
	})
	mux.HandleFunc("GET "+p+"/login", s.serveLogin)
	mux.HandleFunc("POST "+p+"/login", s.serveLogin)
	mux.HandleFunc("POST "+p+"/logout", s.withSession(s.serveLogout))
	mux.HandleFunc("GET "+p+"/patients", s.withSession(s.servePatients))
	mux.HandleFunc("GET "+p+"/patients/{id}", s.withSession(s.servePatient))
	mux.HandleFunc("POST "+p+"/patients/{id}/orders", s.withSession(s.serveOrder))
	mux.HandleFunc("POST "+p+"/patients/{id}/orders/{draft}/accept", s.withSession(s.serveAccept))
	mux.HandleFunc("POST "+p+"/patients/{id}/orders/{draft}/override", s.withSession(s.serveOverride))
	mux.HandleFunc("POST "+p+"/patients/{id}/sign", s.withSession(s.serveSign))
	return mux
}

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("pages").Funcs(template.FuncMap{"cardsData": cardsData, "markdown": markdown}).
	ParseFS(templateFS, "templates/*.html"))

var boldRE = regexp.MustCompile(`\*\*([^*]+)\*\*`)

// markdown renders the little of a card's markdown detail the screen
// shows (bold); everything else stays text. The detail comes from a CDS
// service: it is escaped first, so it can add no markup of its own.
func markdown(s string) template.HTML {
	return template.HTML(boldRE.ReplaceAllString(html.EscapeString(s), "<strong>$1</strong>")) //nolint:gosec // escaped above
}

// cardsView is what the "cards" template receives: one draft's cards and
// the page's form fields.
type cardsView struct {
	Prefix, CSRF, PatientID string
	D                       *draft
	Cards                   []*shownCard
}

func cardsData(p pageData, d *draft) cardsView {
	return cardsView{Prefix: p.Prefix, CSRF: p.CSRF, PatientID: p.Patient.ID, D: d, Cards: d.Cards}
}

// pageData is what the page templates receive.
type pageData struct {
	Title     string
	Prefix    string
	CSRF      string
	User      string
	Error     string
	Patients  []smartauth.PatientChoice
	Patient   smartauth.PatientChoice
	Allergies []string
	Catalogue []Medication
	Drafts    []*draft
	Sign      *draft // the cards order-sign gave, if the orders were not signed
	Signed    []*draft
	CDSBase   string
}

func (s *Screen) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	d.Prefix, d.CDSBase = s.o.Prefix, s.o.CDSBase
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		s.log.WarnContext(r.Context(), "ordering: rendering page", "page", name, "error", err)
	}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// current returns the request's live session, or nil.
func (s *Screen) current(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[c.Value]
	now := s.o.Now()
	if sess == nil || now.After(sess.expires) {
		delete(s.sessions, c.Value)
		return nil
	}
	sess.expires = now.Add(sessionTTL)
	return sess
}

// withSession sends a request without a session to the login page, and
// refuses a POST whose CSRF token is not the session's.
func (s *Screen) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := s.current(r)
		if sess == nil {
			http.Redirect(w, r, s.o.Prefix+"/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(sess.csrf), []byte(r.PostFormValue("csrf"))) != 1 {
			http.Error(w, "The form has expired or did not come from this site (CSRF check failed).", http.StatusForbidden)
			return
		}
		h(w, r, sess)
	}
}

func (s *Screen) serveHome(w http.ResponseWriter, r *http.Request) {
	if s.current(r) == nil {
		http.Redirect(w, r, s.o.Prefix+"/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.o.Prefix+"/patients", http.StatusSeeOther)
}

// serveLogin signs a clinician in (the simulator's users; a new session
// id at every sign-in).
func (s *Screen) serveLogin(w http.ResponseWriter, r *http.Request) {
	d := pageData{Title: "Sign in to order"}
	if r.Method == http.MethodGet {
		s.render(w, r, http.StatusOK, "login", d)
		return
	}
	found := smartauth.FindUser(s.o.Users, r.PostFormValue("username"), r.PostFormValue("password"))
	if found == nil {
		s.log.InfoContext(r.Context(), "ordering: sign-in failed")
		d.Error = "Unknown username or wrong password."
		s.render(w, r, http.StatusUnauthorized, "login", d)
		return
	}
	id := randomID()
	s.mu.Lock()
	s.sessions[id] = &session{user: *found, csrf: randomID(), expires: s.o.Now().Add(sessionTTL), orders: map[string][]*draft{}}
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: s.o.Prefix + "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	s.log.InfoContext(r.Context(), "ordering: signed in", "user", found.Username)
	http.Redirect(w, r, s.o.Prefix+"/patients", http.StatusSeeOther)
}

func (s *Screen) serveLogout(w http.ResponseWriter, r *http.Request, _ *session) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: s.o.Prefix + "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, s.o.Prefix+"/login", http.StatusSeeOther)
}

func (s *Screen) userName(sess *session) string {
	if sess.user.Name != "" {
		return sess.user.Name
	}
	return sess.user.Username
}

func (s *Screen) patients() []smartauth.PatientChoice {
	return smartauth.PatientLister(s.o.FHIR, s.prefix)()
}

func (s *Screen) patient(id string) (smartauth.PatientChoice, bool) {
	for _, p := range s.patients() {
		if p.ID == id {
			return p, true
		}
	}
	return smartauth.PatientChoice{}, false
}

func (s *Screen) servePatients(w http.ResponseWriter, r *http.Request, sess *session) {
	s.render(w, r, http.StatusOK, "patients", pageData{Title: "Patients", CSRF: sess.csrf, User: s.userName(sess),
		Patients: s.patients()})
}

func (s *Screen) servePatient(w http.ResponseWriter, r *http.Request, sess *session) {
	p, ok := s.patient(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	allergies, err := s.allergies(r.Context(), p.ID)
	d := pageData{Title: p.Name, CSRF: sess.csrf, User: s.userName(sess), Patient: p, Allergies: allergies,
		Catalogue: s.o.Catalogue}
	if err != nil {
		d.Error = "The allergy list could not be read."
	}
	s.mu.Lock()
	for _, dr := range sess.orders[p.ID] {
		dr = dr.snapshot() // rendered after the lock is released
		switch dr.Status {
		case "draft":
			d.Drafts = append(d.Drafts, dr)
		case "signed":
			d.Signed = append(d.Signed, dr)
		case "sign-cards":
			d.Sign = dr
		}
	}
	s.mu.Unlock()
	s.render(w, r, http.StatusOK, "patient", d)
}

// allergies reads the patient's allergy list from the FHIR API, as text
// lines for the chart header.
func (s *Screen) allergies(ctx context.Context, patientID string) ([]string, error) {
	var b struct {
		Entry []struct {
			Resource struct {
				Code struct {
					Text   string `json:"text"`
					Coding []struct {
						Display string `json:"display"`
					} `json:"coding"`
				} `json:"code"`
				ClinicalStatus struct {
					Coding []struct {
						Code string `json:"code"`
					} `json:"coding"`
				} `json:"clinicalStatus"`
				Criticality string `json:"criticality"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := s.getJSON(ctx, "AllergyIntolerance?patient="+url.QueryEscape(patientID), &b); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range b.Entry {
		a := e.Resource
		name := a.Code.Text
		if name == "" && len(a.Code.Coding) > 0 {
			name = a.Code.Coding[0].Display
		}
		if name == "" {
			name = "(uncoded allergy)"
		}
		if len(a.ClinicalStatus.Coding) > 0 && a.ClinicalStatus.Coding[0].Code != "active" {
			name += " (" + a.ClinicalStatus.Coding[0].Code + ")"
		} else if a.Criticality != "" {
			name += " (criticality " + a.Criticality + ")"
		}
		out = append(out, name)
	}
	return out, nil
}

func (s *Screen) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.o.FHIRBase, "/")+"/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.fhir.Do(req)
	if err != nil {
		return fmt.Errorf("reading %s: %w", strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading %s: status %d", strings.SplitN(path, "?", 2)[0], resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v)
}

// medicationRequest builds a draft MedicationRequest for patient.
func medicationRequest(id, patientID string, m Medication) json.RawMessage {
	concept := map[string]any{"text": m.Display}
	if m.RxCUI != "" {
		concept["coding"] = []map[string]string{{"system": systemRxNorm, "code": m.RxCUI, "display": m.Display}}
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
		"subject": map[string]string{"reference": "Patient/" + patientID}, "medicationCodeableConcept": concept})
	return b
}

// serveOrder adds a draft order and runs order-select on it.
func (s *Screen) serveOrder(w http.ResponseWriter, r *http.Request, sess *session) {
	p, ok := s.patient(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	var m Medication
	if code := r.PostFormValue("medication"); code != "" {
		i := slices.IndexFunc(s.o.Catalogue, func(m Medication) bool { return m.RxCUI == code })
		if i < 0 {
			http.Error(w, "Unknown medication.", http.StatusBadRequest)
			return
		}
		m = s.o.Catalogue[i]
	} else if text := strings.TrimSpace(r.PostFormValue("text")); text != "" && len(text) <= 200 {
		m = Medication{Display: text}
	} else {
		http.Error(w, "Choose a medication or type one (at most 200 characters).", http.StatusBadRequest)
		return
	}
	id := "draft-" + randomID()[:12]
	d := &draft{ID: id, Label: m.Display, Resource: medicationRequest(id, p.ID, m), Status: "draft"}
	s.mu.Lock()
	sess.orders[p.ID] = append(sess.orders[p.ID], d)
	s.mu.Unlock()
	s.selectOrder(r.Context(), sess, p.ID, d)
	http.Redirect(w, r, s.o.Prefix+"/patients/"+url.PathEscape(p.ID), http.StatusSeeOther)
}

// hookContext is the context of an order hook over the patient's drafts.
func (s *Screen) hookContext(sess *session, patientID string, drafts []*draft) map[string]any {
	entries := []map[string]any{}
	for _, d := range drafts {
		entries = append(entries, map[string]any{"resource": d.Resource})
	}
	return map[string]any{"userId": sess.user.FhirUser, "patientId": patientID,
		"draftOrders": map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries}}
}

// activeDrafts returns the patient's orders not yet signed or removed.
func (s *Screen) activeDrafts(sess *session, patientID string) []*draft {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*draft
	for _, d := range sess.orders[patientID] {
		if d.Status == "draft" {
			out = append(out, d)
		}
	}
	return out
}

// selectOrder calls every order-select service about d and attaches their
// cards to it.
func (s *Screen) selectOrder(ctx context.Context, sess *session, patientID string, d *draft) {
	hc := s.hookContext(sess, patientID, s.activeDrafts(sess, patientID))
	hc["selections"] = []string{"MedicationRequest/" + d.ID}
	cards, notice := s.invoke(ctx, "order-select", hc)
	s.mu.Lock()
	d.Cards, d.Notice = cards, notice
	s.mu.Unlock()
}

// invoke calls every discovered service of hook and returns their cards,
// and a notice naming any service that could not be asked.
func (s *Screen) invoke(ctx context.Context, hook string, hc map[string]any) ([]*shownCard, string) {
	svcs, err := s.discover(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "ordering: CDS discovery failed", "error", err)
		return nil, "The CDS services could not be reached; the order was not checked."
	}
	var cards []*shownCard
	var problems []string
	for _, svc := range svcs {
		if svc.Hook != hook {
			continue
		}
		resp, err := s.cds.Invoke(ctx, s.o.CDSBase, svc, cdsclient.Call{Context: hc, FillPrefetch: true})
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "ordering: CDS call failed", "service", svc.ID, "error", err)
			problems = append(problems, svc.ID+" could not be reached")
			continue
		case resp.Status != http.StatusOK:
			problems = append(problems, fmt.Sprintf("%s answered %d", svc.ID, resp.Status))
			continue
		}
		for _, c := range resp.Cards {
			cards = append(cards, &shownCard{Service: svc.ID, Hook: hook, Card: c})
		}
	}
	if len(problems) > 0 {
		return cards, "Not checked by every CDS service: " + strings.Join(problems, "; ") + "."
	}
	return cards, ""
}

func (s *Screen) discover(ctx context.Context) ([]cdsclient.Service, error) {
	s.mu.Lock()
	svcs := s.services
	s.mu.Unlock()
	if svcs != nil {
		return svcs, nil
	}
	svcs, err := s.cds.Discover(ctx, s.o.CDSBase)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.services = svcs
	s.mu.Unlock()
	return svcs, nil
}

// find returns the patient's draft with id (any status) and its card
// with uuid.
func (s *Screen) find(sess *session, patientID, draftID, cardUUID string) (*draft, *shownCard) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range sess.orders[patientID] {
		if d.ID != draftID {
			continue
		}
		for _, c := range d.Cards {
			if c.UUID == cardUUID {
				return d, c
			}
		}
	}
	return nil, nil
}

// serveAccept applies a card's suggestion to the drafts and sends
// feedback "accepted".
func (s *Screen) serveAccept(w http.ResponseWriter, r *http.Request, sess *session) {
	patientID := r.PathValue("id")
	d, c := s.find(sess, patientID, r.PathValue("draft"), r.PostFormValue("card"))
	if c == nil || c.Outcome != "" {
		http.Error(w, "Unknown card, or it was already answered.", http.StatusBadRequest)
		return
	}
	i := slices.IndexFunc(c.Suggestions, func(sg cdsclient.Suggestion) bool { return sg.UUID == r.PostFormValue("suggestion") })
	if i < 0 {
		http.Error(w, "Unknown suggestion.", http.StatusBadRequest)
		return
	}
	created, err := s.apply(sess, patientID, c.Suggestions[i])
	if err != nil {
		http.Error(w, "The suggestion cannot be applied: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	s.mu.Lock()
	c.Outcome = "accepted"
	s.mu.Unlock()
	if st, err := s.cds.Feedback(r.Context(), s.o.CDSBase, c.Service, c.UUID, []string{c.Suggestions[i].UUID}, nil); err != nil || st != http.StatusOK {
		s.log.WarnContext(r.Context(), "ordering: feedback not accepted", "service", c.Service, "status", st, "error", err)
		s.mu.Lock()
		d.Notice = "The CDS service did not record the feedback."
		s.mu.Unlock()
	}
	for _, nd := range created {
		s.selectOrder(r.Context(), sess, patientID, nd)
	}
	http.Redirect(w, r, s.o.Prefix+"/patients/"+url.PathEscape(patientID), http.StatusSeeOther)
}

// apply carries out a suggestion's actions on the patient's orders
// (CDS Hooks 2.0 Action: create, update, delete of draft orders) and
// returns the drafts it created.
func (s *Screen) apply(sess *session, patientID string, sg cdsclient.Suggestion) ([]*draft, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var created []*draft
	for _, a := range sg.Actions {
		switch a.Type {
		case "delete":
			id := strings.TrimPrefix(a.ResourceID, "MedicationRequest/")
			for _, d := range sess.orders[patientID] {
				if d.ID == id && d.Status == "draft" {
					d.Status = "removed"
				}
			}
		case "create", "update":
			res, id, label, err := draftResource(a.Resource, patientID)
			if err != nil {
				return nil, err
			}
			if a.Type == "update" {
				for _, d := range sess.orders[patientID] {
					if d.ID == id && d.Status == "draft" {
						d.Resource, d.Label = res, label
					}
				}
				continue
			}
			if id == "" {
				id = "draft-" + randomID()[:12]
				res, _ = setID(res, id)
			}
			nd := &draft{ID: id, Label: label, Resource: res, Status: "draft"}
			sess.orders[patientID] = append(sess.orders[patientID], nd)
			created = append(created, nd)
		}
	}
	return created, nil
}

// draftResource checks a suggested resource: a MedicationRequest for the
// patient.
func draftResource(raw json.RawMessage, patientID string) (json.RawMessage, string, string, error) {
	var m struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Subject      struct {
			Reference string `json:"reference"`
		} `json:"subject"`
		Medication struct {
			Text   string `json:"text"`
			Coding []struct {
				Display string `json:"display"`
			} `json:"coding"`
		} `json:"medicationCodeableConcept"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.ResourceType != "MedicationRequest" {
		return nil, "", "", errors.New("not a MedicationRequest")
	}
	if m.Subject.Reference != "Patient/"+patientID {
		return nil, "", "", errors.New("the order is for another patient")
	}
	label := m.Medication.Text
	if label == "" && len(m.Medication.Coding) > 0 {
		label = m.Medication.Coding[0].Display
	}
	if label == "" {
		label = "(medication not named)"
	}
	return raw, m.ID, label, nil
}

// setID sets a resource's id.
func setID(raw json.RawMessage, id string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw, err
	}
	m["id"], _ = json.Marshal(id)
	return json.Marshal(m)
}

// serveOverride dismisses a card with a reason and sends feedback
// "overridden".
func (s *Screen) serveOverride(w http.ResponseWriter, r *http.Request, sess *session) {
	patientID := r.PathValue("id")
	d, c := s.find(sess, patientID, r.PathValue("draft"), r.PostFormValue("card"))
	if c == nil || c.Outcome != "" {
		http.Error(w, "Unknown card, or it was already answered.", http.StatusBadRequest)
		return
	}
	var reason *cdsclient.Coding
	if code := r.PostFormValue("reason"); code != "" {
		i := slices.IndexFunc(c.OverrideReasons, func(o cdsclient.Coding) bool { return o.Code == code })
		if i < 0 {
			http.Error(w, "Unknown override reason.", http.StatusBadRequest)
			return
		}
		reason = &c.OverrideReasons[i]
	}
	s.mu.Lock()
	c.Outcome = "overridden"
	if reason != nil {
		c.Reason = reason.Display
	}
	s.mu.Unlock()
	if st, err := s.cds.Feedback(r.Context(), s.o.CDSBase, c.Service, c.UUID, nil, reason); err != nil || st != http.StatusOK {
		s.log.WarnContext(r.Context(), "ordering: feedback not accepted", "service", c.Service, "status", st, "error", err)
		s.mu.Lock()
		d.Notice = "The CDS service did not record the feedback."
		s.mu.Unlock()
	}
	http.Redirect(w, r, s.o.Prefix+"/patients/"+url.PathEscape(patientID), http.StatusSeeOther)
}

// serveSign runs order-sign over the patient's drafts: without cards (or
// with "sign anyway") they are signed; otherwise the cards are shown.
func (s *Screen) serveSign(w http.ResponseWriter, r *http.Request, sess *session) {
	patientID := r.PathValue("id")
	drafts := s.activeDrafts(sess, patientID)
	s.mu.Lock()
	// The cards of an earlier attempt are replaced.
	sess.orders[patientID] = slices.DeleteFunc(sess.orders[patientID], func(d *draft) bool { return d.Status == "sign-cards" })
	s.mu.Unlock()
	if len(drafts) > 0 && r.PostFormValue("force") == "" {
		cards, notice := s.invoke(r.Context(), "order-sign", s.hookContext(sess, patientID, drafts))
		if len(cards) > 0 || notice != "" {
			s.mu.Lock()
			sess.orders[patientID] = append(sess.orders[patientID], &draft{ID: "sign-" + randomID()[:12], Status: "sign-cards",
				Cards: cards, Notice: notice})
			s.mu.Unlock()
			http.Redirect(w, r, s.o.Prefix+"/patients/"+url.PathEscape(patientID), http.StatusSeeOther)
			return
		}
	}
	if s.o.Record != nil {
		for _, d := range drafts {
			res, err := signedOrder(d.Resource, sess.user, s.o.Now())
			if err == nil {
				err = s.o.Record(r.Context(), res)
			}
			if err != nil {
				s.log.ErrorContext(r.Context(), "ordering: recording a signed order", "order", d.ID, "err", err)
				http.Error(w, "The order could not be recorded; it is still a draft.", http.StatusInternalServerError)
				return
			}
		}
	}
	s.mu.Lock()
	for _, d := range drafts {
		d.Status = "signed"
	}
	s.mu.Unlock()
	http.Redirect(w, r, s.o.Prefix+"/patients/"+url.PathEscape(patientID), http.StatusSeeOther)
}

// signedOrder turns a draft MedicationRequest into the signed order the
// EHR records: active, authored now by the signed-in clinician.
func signedOrder(draft json.RawMessage, by smartauth.User, now time.Time) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(draft, &m); err != nil {
		return nil, fmt.Errorf("reading the draft order: %w", err)
	}
	m["status"] = "active"
	m["authoredOn"] = now.UTC().Format(time.RFC3339)
	if by.FhirUser != "" {
		req := map[string]string{"reference": by.FhirUser}
		if by.Name != "" {
			req["display"] = by.Name
		}
		m["requester"] = req
	}
	return json.Marshal(m)
}
