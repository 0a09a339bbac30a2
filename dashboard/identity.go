package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"ehrgate/audit"
	"ehrgate/identity"
	"ehrgate/login"
	"ehrgate/normalize"
	"ehrgate/store"
	"ehrgate/summary"
)

// IdentityService is what the identity pages read and change: persons,
// the last run's review pairs and people's link and unlink decisions
// (*identity.Service is one). Decisions are respected by every later run.
type IdentityService interface {
	Status(ctx context.Context) (identity.RunSummary, error)
	ReviewQueue(ctx context.Context) (identity.RunSummary, []identity.ReviewPair, error)
	Overrides(ctx context.Context) ([]identity.Override, error)
	SetOverride(ctx context.Context, o identity.Override) error
	Persons(ctx context.Context) ([]identity.Person, error)
}

// Every identity service satisfies IdentityService.
var _ IdentityService = (*identity.Service)(nil)

// IdentityOptions configure the identity pages.
type IdentityOptions struct {
	Service IdentityService
	// LocalApprover names who decided when no one is signed in (login
	// off: the loopback-only dashboard): the OS user, or "local".
	LocalApprover string
}

// IdentityRoutes are the identity pages' routes, served by Identity's
// handler (the gateway mounts each as a patient-data route):
//
//	GET  /identity/review               the review queue: the last run's undecided pairs, strongest first (page)
//	GET  /identity/pair                 two records side by side with the score's explanation (a, b: connection/id)
//	POST /identity/pair                 link or unlink two records (a, b, action, reason, csrf)
//	GET  /persons/{connection}/{id}     the merged chart: the person of a record across sources
var IdentityRoutes = []struct{ Pattern, Serves string }{
	{"GET /identity/review", "identity review queue: record pairs the matcher could not decide"},
	{"GET /identity/pair", "two patient records side by side with the match score's explanation"},
	{"POST /identity/pair", "link or unlink two patient records (session CSRF token, reason)"},
	{"GET /persons/{connection}/{id}", "merged chart: one person across sources, each fact with its sources"},
}

// reviewPageSize is how many pairs the review queue lists per page.
const reviewPageSize = 50

// Identity returns the handler of the identity pages (IdentityRoutes).
// Viewing needs login.SeePatients; deciding (POST) needs
// login.ApproveWrites, as approving writes does: a link changes what every
// merged chart shows. The decider is the signed-in person, or
// o.LocalApprover without login. Every POST must be same-origin and, with
// a person signed in, carry the session's CSRF token. Showing a pair or a
// merged chart is recorded in the audit trail as a read of each patient
// shown. Call Identity before d serves requests.
func (d *Dashboard) Identity(o IdentityOptions) http.Handler {
	if o.LocalApprover == "" {
		o.LocalApprover = "local"
	}
	for _, name := range []string{"review", "pair", "person"} {
		t := template.New("layout.html").Funcs(d.funcs())
		d.pages[name] = template.Must(t.ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
	}
	d.merged = true
	ip := &identityPages{d: d, o: o, cop: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	mux.Handle("GET /identity/review", d.need(login.SeePatients, ip.review))
	mux.Handle("GET /identity/pair", d.need(login.SeePatients, ip.pair))
	mux.Handle("POST /identity/pair", d.need(login.ApproveWrites, ip.decide))
	mux.Handle("GET /persons/{connection}/{id}", d.need(login.SeePatients, ip.person))
	return secure(mux)
}

type identityPages struct {
	d   *Dashboard
	o   IdentityOptions
	cop *http.CrossOriginProtection
}

// reviewRow is one pair of the queue.
type reviewRow struct {
	identity.ReviewPair
	URL string
}

type reviewBody struct {
	Ran     bool      // a run happened
	At      time.Time // when the last run was
	Records int
	Persons int
	Rows    []reviewRow
	Decided int // pairs of the run that people have decided since
	Page    int
	Pages   int
	Prev    string
	Next    string
	Notice  string
}

// review lists the last run's review pairs that no one has decided yet.
func (ip *identityPages) review(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b := reviewBody{}
	switch r.URL.Query().Get("done") {
	case string(identity.ActionLink):
		b.Notice = "The records were linked. The next matching run keeps them together."
	case string(identity.ActionUnlink):
		b.Notice = "The records were unlinked. The next matching run keeps them apart."
	}
	sum, queue, err := ip.o.Service.ReviewQueue(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ip.d.render(w, r, http.StatusOK, "review", "Identity review", b)
		return
	case err != nil:
		ip.d.fail(w, r, "reading the review queue", err)
		return
	}
	b.Ran, b.At, b.Records, b.Persons = true, sum.At, sum.Records, sum.Persons
	b.Decided = len(sum.Review) - len(queue)
	rows := make([]reviewRow, len(queue))
	for i, p := range queue {
		rows[i] = reviewRow{ReviewPair: p, URL: pairURL(p.A, p.B)}
	}
	b.Pages = max(1, (len(rows)+reviewPageSize-1)/reviewPageSize)
	b.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	b.Page = min(max(b.Page, 1), b.Pages)
	lo := (b.Page - 1) * reviewPageSize
	b.Rows = rows[lo:min(lo+reviewPageSize, len(rows))]
	if b.Page > 1 {
		b.Prev = "/identity/review?page=" + strconv.Itoa(b.Page-1)
	}
	if b.Page < b.Pages {
		b.Next = "/identity/review?page=" + strconv.Itoa(b.Page+1)
	}
	ip.d.render(w, r, http.StatusOK, "review", "Identity review", b)
}

// pairURL is the address of the side-by-side page of two records.
func pairURL(a, b identity.Key) string {
	return "/identity/pair?" + url.Values{"a": {a.String()}, "b": {b.String()}}.Encode()
}

// parseKey reads "connection/id" (an id never holds a slash).
func parseKey(s string) (identity.Key, bool) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 || i == len(s)-1 {
		return identity.Key{}, false
	}
	return identity.Key{Source: s[:i], ID: s[i+1:]}, true
}

// demographics is one record's column of the side-by-side table.
type demographics struct {
	Key         identity.Key
	Found       bool
	Chart       string
	Given       string
	Middle      string
	Family      string
	BirthDate   string
	Gender      string
	Address     string
	Phone       string
	Email       string
	Identifiers []string
	Fetched     time.Time
}

// compared is one row of the side-by-side table.
type compared struct {
	Field string
	A, B  string
	Level string // "" when the run did not score the pair
	// Weight is the field's contribution in bits, signed, one decimal
	// ("" when the run did not score the pair).
	Weight string
}

type pairBody struct {
	A, B      demographics
	Rows      []compared
	Score     *identity.ReviewPair // the last run's score, nil when the pair was not in review
	Total     float64
	Other     []identity.Contribution // contributions not shown in Rows (prior, suffix)
	Decision  *identity.Override      // an earlier decision about the pair
	Notice    string
	Error     bool
	CSRF      string
	ValueA    string
	ValueB    string
	CanDecide bool
}

// pair shows two records side by side with the explanation of their score.
func (ip *identityPages) pair(w http.ResponseWriter, r *http.Request) {
	ip.pairPage(w, r, http.StatusOK, "", false)
}

func (ip *identityPages) pairPage(w http.ResponseWriter, r *http.Request, status int, notice string, isErr bool) {
	ctx := r.Context()
	a, okA := parseKey(r.FormValue("a"))
	b, okB := parseKey(r.FormValue("b"))
	if !okA || !okB || a == b {
		ip.d.render(w, r, http.StatusBadRequest, "error", "Bad request", errorBody{Status: http.StatusBadRequest,
			Heading: "Two records are needed", Message: "Give two different records as connection/id in a and b."})
		return
	}
	body := pairBody{Notice: notice, Error: isErr, CSRF: login.CSRFToken(ctx), ValueA: a.String(), ValueB: b.String(),
		CanDecide: ip.d.can(r, login.ApproveWrites)}
	var err error
	if body.A, err = ip.demographics(ctx, a); err != nil {
		ip.d.fail(w, r, "reading a patient", err)
		return
	}
	if body.B, err = ip.demographics(ctx, b); err != nil {
		ip.d.fail(w, r, "reading a patient", err)
		return
	}
	if !body.A.Found && !body.B.Found {
		ip.d.render(w, r, http.StatusNotFound, "error", "Patient not found", errorBody{Status: http.StatusNotFound,
			Heading: "Patients not found", Message: "Neither record is stored."})
		return
	}
	for _, dm := range []demographics{body.A, body.B} {
		k := dm.Key
		if dm.Found && !ip.d.recordAccess(w, r, audit.Read(audit.Agent{}, audit.PatientRef{Connection: k.Source, ID: k.ID},
			audit.ResourceRef{Connection: k.Source, Type: "Patient", ID: k.ID})) {
			return
		}
	}
	sum, err := ip.o.Service.Status(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		ip.d.fail(w, r, "reading the matching run", err)
		return
	}
	name := identity.OverrideName(a, b)
	for i, p := range sum.Review {
		if identity.OverrideName(p.A, p.B) == name {
			body.Score = &sum.Review[i]
			break
		}
	}
	ovs, err := ip.o.Service.Overrides(ctx)
	if err != nil {
		ip.d.fail(w, r, "reading identity decisions", err)
		return
	}
	for i, o := range ovs {
		if identity.OverrideName(o.A, o.B) == name {
			body.Decision = &ovs[i]
		}
	}
	body.Rows, body.Other, body.Total = sideBySide(body.A, body.B, body.Score)
	ip.d.render(w, r, status, "pair", "Same person?", body)
}

// demographics reads a record's Patient; Found is false when it is not
// stored.
func (ip *identityPages) demographics(ctx context.Context, k identity.Key) (demographics, error) {
	d := demographics{Key: k, Chart: chartURL(k.Source, k.ID)}
	rec, err := ip.d.r.Get(ctx, k.Source, "Patient", k.ID)
	if errors.Is(err, store.ErrNotFound) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	var p normalize.Patient
	if err := json.Unmarshal(rec.Normalized, &p); err != nil {
		ip.d.log.WarnContext(ctx, "dashboard: undecodable patient", "connection", k.Source, "id", k.ID)
	}
	d.Found, d.Fetched = true, rec.FetchedAt
	if len(p.Given) > 0 {
		d.Given, d.Middle = p.Given[0], strings.Join(p.Given[1:], " ")
	}
	d.Family = p.Family
	d.BirthDate, d.Gender, d.Address, d.Phone, d.Email = p.BirthDate, p.Gender, p.Address, p.Phone, p.Email
	for _, id := range p.Identifiers {
		d.Identifiers = append(d.Identifiers, systemName(id.System)+": "+id.Value)
	}
	return d, nil
}

// sideBySide pairs each compared field's values with the score's level and
// weight for it; contributions without a row (the prior, a suffix
// conflict) come back apart, with the total weight.
func sideBySide(a, b demographics, score *identity.ReviewPair) ([]compared, []identity.Contribution, float64) {
	rows := []compared{
		{Field: "given", A: a.Given, B: b.Given},
		{Field: "middle", A: a.Middle, B: b.Middle},
		{Field: "family", A: a.Family, B: b.Family},
		{Field: "birthDate", A: a.BirthDate, B: b.BirthDate},
		{Field: "gender", A: a.Gender, B: b.Gender},
		{Field: "address", A: a.Address, B: b.Address},
		{Field: "phone", A: a.Phone, B: b.Phone},
		{Field: "email", A: a.Email, B: b.Email},
		{Field: "identifier", A: strings.Join(a.Identifiers, "; "), B: strings.Join(b.Identifiers, "; ")},
	}
	if score == nil {
		return rows, nil, 0
	}
	var other []identity.Contribution
	var total float64
	for _, c := range score.Explanation {
		total += c.Weight
		i := slices.IndexFunc(rows, func(r compared) bool { return r.Field == c.Field })
		if i < 0 {
			other = append(other, c)
			continue
		}
		rows[i].Level, rows[i].Weight = c.Level, strconv.FormatFloat(c.Weight, 'f', 1, 64)
		if c.Weight >= 0 {
			rows[i].Weight = "+" + rows[i].Weight
		}
	}
	return rows, other, total
}

// decide records a person's link or unlink of two records, with a reason.
func (ip *identityPages) decide(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := checkPost(ip.cop, r); err != nil {
		ip.d.log.WarnContext(ctx, "dashboard: identity decision refused", "reason", err.Error())
		ip.d.render(w, r, http.StatusForbidden, "error", "Refused", errorBody{Status: http.StatusForbidden, Heading: "Refused",
			Message: "This request did not come from an ehrgate page; reload the page and try again."})
		return
	}
	a, okA := parseKey(r.PostFormValue("a"))
	b, okB := parseKey(r.PostFormValue("b"))
	action := identity.Action(r.PostFormValue("action"))
	if !okA || !okB || a == b || (action != identity.ActionLink && action != identity.ActionUnlink) {
		ip.d.render(w, r, http.StatusBadRequest, "error", "Bad request", errorBody{Status: http.StatusBadRequest,
			Heading: "Bad request", Message: "A decision needs two different records and link or unlink."})
		return
	}
	why := strings.TrimSpace(r.PostFormValue("reason"))
	if why == "" || len(why) > maxReason {
		ip.pairPage(w, r, http.StatusUnprocessableEntity, "A reason is needed (at most 1000 characters).", true)
		return
	}
	by := ip.o.LocalApprover
	if p, ok := login.PersonFrom(ctx); ok {
		by = p.ID
	}
	err := ip.o.Service.SetOverride(ctx, identity.Override{A: a, B: b, Action: action, By: by, Reason: why})
	if errors.Is(err, identity.ErrInvalidOverride) {
		ip.pairPage(w, r, http.StatusUnprocessableEntity, "This decision is not valid.", true)
		return
	}
	if err != nil {
		ip.d.fail(w, r, "saving an identity decision", err)
		return
	}
	ip.d.log.InfoContext(ctx, "dashboard: identity decision", "decision", string(action), "person", by)
	http.Redirect(w, r, "/identity/review?done="+url.QueryEscape(string(action)), http.StatusSeeOther)
}

// sourceFreshness is one source of a merged chart: a record of the person
// and when ehrgate last fetched from it.
type sourceFreshness struct {
	Connection string
	ID         string
	Chart      string
	Fetched    time.Time // the newest fetch of the patient's data
}

type personBody struct {
	Person  string // identity's person id; "" when the record is in no person
	Sources []sourceFreshness
	Fresh   map[string]time.Time // by connection, for each fact's label
	S       *summary.Summary
	Self    string // the chart of the record the page was opened from
}

// person shows the merged chart of the person holding record
// {connection}/{id}: every source's facts, each labelled with its sources
// and their freshness, one fact held by two sources shown once with both
// (summary.Build's deduplication).
func (ip *identityPages) person(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	k := identity.Key{Source: r.PathValue("connection"), ID: r.PathValue("id")}
	if _, err := ip.d.r.Get(ctx, k.Source, "Patient", k.ID); errors.Is(err, store.ErrNotFound) {
		ip.d.render(w, r, http.StatusNotFound, "error", "Patient not found", errorBody{Status: http.StatusNotFound,
			Heading: "Patient not found", Message: "No patient with this identifier is stored for this connection."})
		return
	} else if err != nil {
		ip.d.fail(w, r, "reading patient", err)
		return
	}
	persons, err := ip.o.Service.Persons(ctx)
	if err != nil {
		ip.d.fail(w, r, "reading persons", err)
		return
	}
	body := personBody{Self: chartURL(k.Source, k.ID), Fresh: map[string]time.Time{}}
	members := []identity.Key{k}
	for _, p := range persons {
		if slices.Contains(p.Members, k) {
			body.Person, members = p.ID, p.Members
			break
		}
	}
	var sm []summary.Member
	for _, m := range members {
		if _, err := ip.d.r.Get(ctx, m.Source, "Patient", m.ID); err != nil {
			continue // a member since deleted, or not readable: its facts are not shown
		}
		if !ip.d.recordAccess(w, r, audit.Read(audit.Agent{}, audit.PatientRef{Connection: m.Source, ID: m.ID})) {
			return
		}
		sf := sourceFreshness{Connection: m.Source, ID: m.ID, Chart: chartURL(m.Source, m.ID)}
		states, err := ip.d.r.FetchStates(ctx, m.Source, m.ID)
		if err == nil {
			for _, st := range states {
				if st.FetchedAt.After(sf.Fetched) {
					sf.Fetched = st.FetchedAt
				}
			}
		}
		if sf.Fetched.After(body.Fresh[m.Source]) {
			body.Fresh[m.Source] = sf.Fetched
		}
		body.Sources = append(body.Sources, sf)
		sm = append(sm, summary.Member{Connection: m.Source, PatientID: m.ID})
	}
	body.S, err = summary.Build(ctx, ip.d.r, sm, summary.Options{Now: ip.d.now, Person: body.Person})
	if err != nil {
		ip.d.fail(w, r, "building the merged chart", err)
		return
	}
	ip.d.render(w, r, http.StatusOK, "person", "Merged chart", body)
}

// labelledSource is a fact's source with its freshness in words.
type labelledSource struct {
	summary.Source
	Fresh string // "3 hours ago", "never"
}

// sourceLabels labels each source with how long ago its connection's
// data was fetched (fresh holds the newest fetch by connection).
func (d *Dashboard) sourceLabels(ss []summary.Source, fresh map[string]time.Time) []labelledSource {
	out := make([]labelledSource, len(ss))
	for i, s := range ss {
		out[i] = labelledSource{Source: s, Fresh: relative(fresh[s.Connection], d.now())}
	}
	return out
}
