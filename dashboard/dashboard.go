// Package dashboard serves ehrgate's server-rendered pages: an overview of
// what the store holds, a demographic patient search and a patient chart.
//
// The chart opens with trends: vital signs and labs plotted over time in
// canonical units as SVG drawn in Go (trend.go computes the series, plot.go
// draws them), with medication and encounter timelines on the same axis and
// a table view of every plot; see buildTrends.
//
// It reads through the store's role interfaces only (see [Reader]) and
// decodes each record's normalized JSON into the normalize model. Pages are
// rendered with html/template from embedded files and styled by one embedded
// stylesheet; there is no JavaScript and no external asset.
//
// Every response carries headers suited to protected health information:
// a restrictive Content-Security-Policy, nosniff, no-referrer and
// Cache-Control: no-store. Error pages never show internal error text: the
// cause is logged with a reference that the page shows to the user.
package dashboard

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"ehrgate/audit"
	"ehrgate/hl7/feedhealth"
	"ehrgate/login"
	"ehrgate/probe"
	"ehrgate/store"
)

// Reader is what the dashboard reads: current resources, patient search,
// fetch states and store-wide counts. Implementations must be safe for
// concurrent use; every store backend satisfies it.
type Reader interface {
	store.Reader
	store.Statter
}

// Every store satisfies Reader.
var _ Reader = store.Store(nil)

// ConnectionStatus describes one configured EHR connection as the
// application sees it. The dashboard only displays it.
type ConnectionStatus struct {
	Name     string    // connection name, as used in store keys
	BaseURL  string    // FHIR base URL
	Vendor   string    // vendor profile, e.g. "epic"
	LastSync time.Time // end of the last successful sync; zero if never
	State    string    // "ok", "needs re-authorization", "error", ...
	Detail   string    // user-safe explanation of State; never tokens or internal errors
	// NotGranted lists resource types the EHR did not grant ehrgate's
	// access token (wholly or in part): scopes narrower than requested.
	NotGranted []string
	// ScopesCheckedAt is when NotGranted was last established.
	ScopesCheckedAt time.Time
	// BulkExports are the outcomes of the last Bulk Data export of each
	// scope (system, patient, group/ID) into the store.
	BulkExports []BulkExportStatus
	// Runs are the syncs and exports that started and have not finished:
	// under way, or interrupted (their process stopped).
	Runs []RunStatus
	// Subscription is the connection's FHIR Subscription in this process;
	// nil: kept current by scheduled and HL7-driven refresh only.
	Subscription *SubscriptionStatus
}

// SubscriptionStatus is the health of a connection's FHIR Subscription.
type SubscriptionStatus struct {
	ID string // the EHR's Subscription id (criteria mode: the ids, comma-separated)
	// Mode is "topic" (topic-based, R5 Backport IG) or "criteria"
	// (classic R4, one per type).
	Mode      string
	Leading   bool      // this replica keeps it (the others follow)
	Healthy   bool      // false: it could not be re-created, ehrgate polls
	LastHeard time.Time // last notification or status check
	LastEvent int64     // topic mode: the event number up to which all is applied
	Events    int64     // events taken
	Recovered int64     // events recovered ($events or refresh)
	Refused   int64     // notifications refused (forged, malformed)
	Errors    int64     // failures (status checks, re-creations, refreshes)
	LastError string    // user-safe
	// LastReconcile is, in criteria mode, the last refresh of every type
	// by _lastUpdated.
	LastReconcile time.Time
}

// ModeLabel names how the connection is kept current: "topic-based
// Subscription", "criteria Subscriptions (R4)", or "polling" while the
// subscription cannot be re-created.
func (s SubscriptionStatus) ModeLabel() string {
	switch {
	case !s.Healthy:
		return "polling"
	case s.Mode == "criteria":
		return "criteria Subscriptions (R4)"
	}
	return "topic-based Subscription"
}

// RunStatus is a sync or export that started and has not finished.
type RunStatus struct {
	What  string    // "sync", "bulk export system"
	Since time.Time // when it started
	// State is "running", "interrupted" (its process is gone; the next run
	// completes it) or "unknown" (it ran on another host).
	State string
}

// OK reports whether the connection is in its normal state.
func (c ConnectionStatus) OK() bool { return c.State == "" || c.State == "ok" }

// BulkIncomplete reports whether the last bulk export of some scope did
// not bring everything it asked for.
func (c ConnectionStatus) BulkIncomplete() bool {
	for _, b := range c.BulkExports {
		if !b.Complete {
			return true
		}
	}
	return false
}

// BulkExportStatus is the outcome of a connection's last Bulk Data export
// of one scope.
type BulkExportStatus struct {
	Scope           string    // system, patient or group/ID
	At              time.Time // when the export finished
	TransactionTime time.Time // the server's transactionTime of its last job
	Complete        bool
	// Error is set when the export could not run (user-safe).
	Error string
	// Incomplete lists what the export did not bring completely; those
	// types are asked again by the next export.
	Incomplete []BulkTypeIssue
}

// BulkTypeIssue is one resource type an export did not bring completely.
type BulkTypeIssue struct {
	Type   string   // "" = every type of the export
	Reason string   // user-safe
	Files  []string // manifest file URLs, without query
}

// Options configures a Dashboard. The zero value is usable.
type Options struct {
	// Title is shown in the header and page titles; "ehrgate" when empty.
	Title string
	// Clock returns the current time, for ages and relative freshness;
	// time.Now when nil.
	Clock func() time.Time
	// Logger receives errors (with the reference shown to users) and
	// warnings about records that cannot be decoded; discarded when nil.
	// Only identifiers are logged, never clinical content.
	Logger *slog.Logger
	// Status returns per-connection information supplied by the
	// application; nil means connection status is not shown.
	Status func(ctx context.Context) []ConnectionStatus
	// Probe returns the latest compatibility probe of a connection, or
	// (nil, nil) when it was never probed; nil hides the probe pages.
	Probe func(ctx context.Context, connection string) (*probe.Report, error)
	// RequestID returns the request id assigned by the serving middleware,
	// shown on error pages so users can quote it. When nil or when it
	// returns "", the dashboard makes up a reference and logs it.
	RequestID func(ctx context.Context) string
	// Audit records every view of patient data (a chart, a patient
	// search) before the page is sent; when it fails the page is not
	// shown. Nil records nothing (tests, tools without a trail).
	Audit audit.Recorder
	// RequirePerson is set when login is on: every page (not the
	// stylesheet) then needs a signed-in person on the request's context
	// (login.PersonFrom, put there by login.Service.Require) whose roles
	// allow it: patients and charts need login.SeePatients; connections,
	// probes and data quality login.SeeOperations. The person is named in
	// the audit trail and shown in the header with a logout button. When
	// false, a person on the context is still honoured and named.
	RequirePerson bool
	// Trail is the audit trail the audit page (/audit, login.SeeAudit)
	// shows; nil hides the page.
	Trail Trail
	// Feeds is the HL7 v2 message log the feed pages (/feeds/{connection},
	// login.SeeOperations) read and their replay button writes; nil hides
	// them.
	Feeds Feeds
	// FeedNames lists the HL7 feeds (listener connections) to show and
	// link from the overview; nil: any connection name is shown, none is
	// linked.
	FeedNames func(ctx context.Context) []string
	// FeedThresholds tune the alerts the feed pages show (the defaults
	// match deploy/prometheus/hl7.yml).
	FeedThresholds feedhealth.Thresholds
	// CDSFeedback reads the feedback CDS clients sent on ehrgate's CDS
	// Hooks cards, shown per service at /cds/feedback
	// (login.SeeOperations); nil hides the page.
	CDSFeedback CDSFeedbackFunc
	// Replayed, if set, is called after a message was queued for
	// conversion again (to schedule the conversion at once). It must not
	// block.
	Replayed func(connection string)
}

// Dashboard renders the pages. Create it with New; it is safe for
// concurrent use.
type Dashboard struct {
	r     Reader
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	// merged is set when the identity pages are served (Identity): charts
	// then link to the merged chart.
	merged bool
}

//go:embed templates/*.html static/*
var assets embed.FS

// New returns a Dashboard reading from r. It panics if the embedded
// templates do not parse, which is a build defect, not a run-time condition.
func New(r Reader, opts Options) *Dashboard {
	if opts.Title == "" {
		opts.Title = "ehrgate"
	}
	d := &Dashboard{r: r, opts: opts, log: opts.Logger, now: opts.Clock}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.pages = make(map[string]*template.Template)
	for _, name := range []string{"overview", "search", "chart", "quality", "probe", "connection", "audit", "feed", "cdsfeedback", "error"} {
		t := template.New("layout.html").Funcs(d.funcs())
		d.pages[name] = template.Must(t.ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	return d
}

// Handler returns the dashboard's routes, meant to be mounted at "/":
//
//	GET /                               overview and search form
//	GET /patients                       patient search (q, birthdate, connection)
//	GET /patients/{connection}/{id}     patient chart (span: trends window 1y, 2y, 5y, all)
//	GET /quality                        data-quality report (connection)
//	GET /quality/unmapped.csv           unmapped codes as a local-code map template (connection)
//	GET /connections/{connection}       a connection's state: authorization, scopes not granted, bulk exports
//	GET /connections/{connection}/probe its compatibility matrix
//	GET /audit                          the audit trail (agent, patient, since; with Options.Trail)
//	GET /feeds/{connection}             an HL7 v2 feed: messages per hour, ACK codes, problems, lag, alerts (with Options.Feeds; hours=48)
//	POST /feeds/{connection}/replay     queue a refused or unconverted message for conversion again (seq, csrf)
//	GET /cds/feedback                   CDS Hooks card feedback per service and kind of card (with Options.CDSFeedback)
//	GET /static/                        the embedded stylesheet
//
// Every other path gets the dashboard's 404 page.
func (d *Dashboard) Handler() http.Handler {
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // embedded directory; cannot fail
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", d.need("", d.overview))
	mux.Handle("GET /patients", d.need(login.SeePatients, d.search))
	mux.Handle("GET /patients/{connection}/{id}", d.need(login.SeePatients, d.chart))
	mux.Handle("GET /quality", d.need(login.SeeOperations, d.quality))
	mux.Handle("GET /quality/unmapped.csv", d.need(login.SeeOperations, d.qualityCSV))
	mux.Handle("GET /connections/{connection}", d.need(login.SeeOperations, d.connection))
	mux.Handle("GET /connections/{connection}/probe", d.need(login.SeeOperations, d.probe))
	if d.opts.Trail != nil {
		mux.Handle("GET /audit", d.need(login.SeeAudit, d.trail))
	}
	if d.opts.Feeds != nil {
		mux.Handle("GET /feeds/{connection}", d.need(login.SeeOperations, d.feed))
		mux.Handle("POST /feeds/{connection}/replay", d.need(login.SeeOperations, d.replay))
	}
	if d.opts.CDSFeedback != nil {
		mux.Handle("GET /cds/feedback", d.need(login.SeeOperations, d.cdsFeedback))
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("/", d.need("", d.notFound))
	return secure(mux)
}

// need admits a request when no login is required and no one is signed
// in, or when the signed-in person's roles grant perm ("" = any signed-in
// person); it refuses the others with the dashboard's 401 or 403 page.
func (d *Dashboard) need(perm login.Permission, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := login.PersonFrom(r.Context())
		switch {
		case !ok && d.opts.RequirePerson:
			d.render(w, r, http.StatusUnauthorized, "error", "Not signed in", errorBody{
				Status: http.StatusUnauthorized, Heading: "Not signed in", Message: "Sign in to see this page."})
			return
		case ok && perm != "" && !p.Can(perm):
			d.log.WarnContext(r.Context(), "dashboard: page refused to role", "person", p.ID, "need", string(perm), "route", r.Pattern)
			if perm == login.SeePatients {
				d.recordRefusal(r)
			}
			d.render(w, r, http.StatusForbidden, "error", "Not for your role", errorBody{
				Status: http.StatusForbidden, Heading: "Not for your role",
				Message: "Your role does not give access to this page. Ask an administrator if you need it."})
			return
		}
		h(w, r)
	})
}

// secure sets the headers every dashboard response carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// can reports whether the request's viewer may use perm: anyone when no
// one is signed in (login off), else the person's roles decide.
func (d *Dashboard) can(r *http.Request, perm login.Permission) bool {
	p, ok := login.PersonFrom(r.Context())
	return !ok || p.Can(perm)
}

// page is the data every template receives.
type page struct {
	Title   string // page title, before the dashboard title
	AppName string
	Nav     string // which navigation entry is current
	Body    any
	// Person is who is signed in (nil: login is off); CSRF is the
	// session's token for the logout form.
	Person *login.Person
	CSRF   string
	// CDS is set when the CDS feedback page is served.
	CDS bool
}

// Can reports whether the page's viewer may use perm (anyone may when
// login is off).
func (p page) Can(perm string) bool { return p.Person == nil || p.Person.Can(login.Permission(perm)) }

// render executes the named page into a buffer first so that a template
// failure becomes a clean error page instead of half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name, title string, body any) {
	var buf bytes.Buffer
	p := page{Title: title, AppName: d.opts.Title, Nav: name, Body: body, CDS: d.opts.CDSFeedback != nil}
	if who, ok := login.PersonFrom(r.Context()); ok {
		p.Person, p.CSRF = &who, login.CSRFToken(r.Context())
	}
	if err := d.pages[name].Execute(&buf, p); err != nil {
		if name == "error" {
			d.log.ErrorContext(r.Context(), "dashboard: rendering error page", "err", err)
			http.Error(w, "Internal error", http.StatusInternalServerError)
			return
		}
		d.fail(w, r, "rendering "+name, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// errorBody is the data of the error page.
type errorBody struct {
	Status    int
	Heading   string
	Message   string
	Reference string
}

// fail logs err with a reference and shows a generic 500 page quoting it.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, doing string, err error) {
	ref := d.reference(r.Context())
	d.log.ErrorContext(r.Context(), "dashboard: "+doing, "err", err, "ref", ref, "path", r.URL.Path)
	d.render(w, r, http.StatusInternalServerError, "error", "Something went wrong", errorBody{
		Status:    http.StatusInternalServerError,
		Heading:   "Something went wrong",
		Message:   "The page could not be shown. Please try again; if the problem persists, contact support and quote the reference below.",
		Reference: ref,
	})
}

// reference returns the request id if the application provides one, or a
// fresh random reference otherwise.
func (d *Dashboard) reference(ctx context.Context) string {
	if d.opts.RequestID != nil {
		if id := d.opts.RequestID(ctx); id != "" {
			return id
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *Dashboard) notFound(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		d.render(w, r, http.StatusMethodNotAllowed, "error", "Method not allowed", errorBody{
			Status:  http.StatusMethodNotAllowed,
			Heading: "Method not allowed",
			Message: "This dashboard is read-only.",
		})
		return
	}
	d.render(w, r, http.StatusNotFound, "error", "Page not found", errorBody{
		Status:  http.StatusNotFound,
		Heading: "Page not found",
		Message: "There is no page at this address.",
	})
}

// statuses returns the application's connection statuses, or nil.
func (d *Dashboard) statuses(ctx context.Context) []ConnectionStatus {
	if d.opts.Status == nil {
		return nil
	}
	return d.opts.Status(ctx)
}
