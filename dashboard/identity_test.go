package dashboard_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ehrgate/audit"
	"ehrgate/dashboard"
	"ehrgate/dashboard/browsertest"
	"ehrgate/identity"
	"ehrgate/login"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

type identityEnv struct {
	rec  *recorder // the audit trail of the pages
	st   *sqlite.Store
	svc  *identity.Service
	recs []identity.Record
	as   *login.Person
	h    http.Handler
}

var identityNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// newIdentityEnv stores a synthetic population's Patients in a real
// SQLite store, runs the matcher over them as `ehrgate match run` does and
// serves the identity pages as person as (CSRF token "tok"; nil: login
// off).
func newIdentityEnv(t *testing.T, as *login.Person) *identityEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pop := identity.Generate(identity.GenOptions{People: 400, Seed: 3})
	var batch []store.Record
	for _, r := range pop.Records {
		raw, err := identity.PatientJSON(r, identity.MRNSystem(r.Key.Source))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := refresh.NewRecord(r.Key.Source, raw, identityNow.Add(-3*time.Hour), "test")
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, rec)
	}
	if _, err := st.PutResources(ctx, batch); err != nil {
		t.Fatal(err)
	}
	e := &identityEnv{st: st, svc: &identity.Service{Docs: st, Now: func() time.Time { return identityNow }}, as: as, rec: &recorder{}}
	e.run(t)
	d := dashboard.New(st, dashboard.Options{Clock: func() time.Time { return identityNow }, RequirePerson: as != nil, Audit: e.rec})
	h := d.Identity(dashboard.IdentityOptions{Service: e.svc, LocalApprover: "opuser"})
	e.h = h
	if as != nil {
		e.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(login.NewContext(r.Context(), *e.as, "tok")))
		})
	}
	return e
}

// run matches the stored patients (with the stored decisions) and
// returns the person of each record.
func (e *identityEnv) run(t *testing.T) map[identity.Key]string {
	t.Helper()
	ctx := context.Background()
	recs, err := identity.LoadPatients(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	e.recs = recs
	persons, _, err := e.svc.Run(ctx, recs, identity.Options{})
	if err != nil {
		t.Fatal(err)
	}
	of := map[identity.Key]string{}
	for _, p := range persons {
		for _, k := range p.Members {
			of[k] = p.ID
		}
	}
	return of
}

func (e *identityEnv) do(t *testing.T, method, path string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	rr := httptest.NewRecorder()
	e.h.ServeHTTP(rr, req)
	return rr
}

func (e *identityEnv) record(k identity.Key) identity.Record {
	for _, r := range e.recs {
		if r.Key == k {
			return r
		}
	}
	return identity.Record{}
}

var fieldRow = regexp.MustCompile(`(?s)<tr data-field="([a-zA-Z]+)"><th scope="row"[^>]*>[^<]*</th>(.*?)</tr>`)

// TestIdentityReviewQueue: the queue lists the run's undecided pairs; a
// pair's page shows both records side by side with the score's
// explanation, field by field, adding up to the run's weight; a decision
// needs the session's CSRF token, a reason and a role that approves; it
// leaves the queue and every later run respects it, link and unlink alike.
func TestIdentityReviewQueue(t *testing.T) {
	ctx := context.Background()
	clin := login.Person{ID: "alice", Roles: []login.Role{login.RoleClinician}, Method: "local"}
	e := newIdentityEnv(t, &clin)
	sum, err := e.svc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Review) == 0 {
		t.Fatal("the run sent no pair to review; the test needs one")
	}
	p := sum.Review[0]
	if len(p.Explanation) == 0 {
		t.Fatal("the run kept no explanation with the review pair")
	}

	rr := e.do(t, "GET", "/identity/review", nil)
	if rr.Code != http.StatusOK {
		t.Fatalf("GET /identity/review = %d:\n%s", rr.Code, rr.Body)
	}
	list := rr.Body.String()
	pairLink := html.EscapeString("/identity/pair?" + url.Values{"a": {p.A.String()}, "b": {p.B.String()}}.Encode())
	if !strings.Contains(list, pairLink) || !strings.Contains(list, p.Reason) {
		t.Fatalf("the queue lacks the first review pair (%s, %s):\n%s", p.A, p.B, list)
	}

	path := "/identity/pair?" + url.Values{"a": {p.A.String()}, "b": {p.B.String()}}.Encode()
	rr = e.do(t, "GET", path, nil)
	if rr.Code != http.StatusOK {
		t.Fatalf("GET %s = %d:\n%s", path, rr.Code, rr.Body)
	}
	page := html.UnescapeString(rr.Body.String())
	read := map[string]bool{}
	for _, ev := range e.rec.events {
		if ev.Action == audit.ActionRead && ev.Agent.UserID == "alice" {
			read[ev.Patient.Connection+"/"+ev.Patient.ID] = true
		}
	}
	if !read[p.A.String()] || !read[p.B.String()] {
		t.Errorf("the pair page's view is not audited as a read of both patients: %v", read)
	}
	rows := map[string]string{}
	for _, m := range fieldRow.FindAllStringSubmatch(page, -1) {
		rows[m[1]] = m[2]
	}
	ra, rb := e.record(p.A), e.record(p.B)
	var total float64
	for _, c := range p.Explanation {
		total += c.Weight
		row, ok := rows[c.Field]
		if !ok {
			t.Errorf("no row for %s on the pair page", c.Field)
			continue
		}
		want := fmt.Sprintf("<td>%s</td><td class=\"num\">%+.1f</td>", c.Level, c.Weight)
		if !strings.Contains(row, want) {
			t.Errorf("row %s = %s, want the level and weight %s", c.Field, row, want)
		}
	}
	for _, v := range []string{ra.BirthDate, rb.BirthDate, ra.Given, rb.Given, ra.Phone, rb.Phone} {
		if v != "" && !strings.Contains(page, v) {
			t.Errorf("the pair page does not show %q side by side", v)
		}
	}
	if !strings.Contains(page, fmt.Sprintf("%+.1f", total)) {
		t.Errorf("the pair page lacks the match weight %+.1f", total)
	}
	if !strings.Contains(page, `name="csrf" value="tok"`) || !strings.Contains(page, `id="unlink"`) {
		t.Errorf("the pair page lacks the decision form with the session's token")
	}

	decide := func(action, reason, csrf string) *httptest.ResponseRecorder {
		f := url.Values{"a": {p.A.String()}, "b": {p.B.String()}, "action": {action}, "reason": {reason}}
		if csrf != "" {
			f.Set("csrf", csrf)
		}
		return e.do(t, "POST", "/identity/pair", f)
	}
	if rr := decide("link", "same SSN on the paper chart", ""); rr.Code != http.StatusForbidden {
		t.Errorf("POST without the CSRF token = %d, want 403", rr.Code)
	}
	if rr := decide("link", "", "tok"); rr.Code != http.StatusUnprocessableEntity {
		t.Errorf("POST without a reason = %d, want 422", rr.Code)
	}
	if rr := decide("merge", "x", "tok"); rr.Code != http.StatusBadRequest {
		t.Errorf("POST with an unknown action = %d, want 400", rr.Code)
	}
	if ovs, _ := e.svc.Overrides(ctx); len(ovs) != 0 {
		t.Fatalf("refused posts stored %d decisions", len(ovs))
	}
	e.as = &login.Person{ID: "audrey", Roles: []login.Role{login.RoleAuditor}, Method: "local"}
	for _, r := range []struct{ method, path string }{{"GET", "/identity/review"}, {"GET", path}} {
		if rr := e.do(t, r.method, r.path, nil); rr.Code != http.StatusForbidden {
			t.Errorf("auditor %s %s = %d, want 403", r.method, r.path, rr.Code)
		}
	}
	if rr := decide("link", "x", "tok"); rr.Code != http.StatusForbidden {
		t.Errorf("auditor POST = %d, want 403", rr.Code)
	}
	e.as = &clin

	rr = decide("link", "same SSN on the paper chart", "tok")
	if rr.Code != http.StatusSeeOther || rr.Header().Get("Location") != "/identity/review?done=link" {
		t.Fatalf("POST link = %d (Location %q), want 303 to the queue", rr.Code, rr.Header().Get("Location"))
	}
	ovs, _ := e.svc.Overrides(ctx)
	if len(ovs) != 1 || ovs[0].By != "alice" || ovs[0].Action != identity.ActionLink || ovs[0].Reason != "same SSN on the paper chart" {
		t.Fatalf("stored decisions = %+v, want alice's link with the reason", ovs)
	}
	if list := e.do(t, "GET", "/identity/review?done=link", nil).Body.String(); strings.Contains(list, pairLink) {
		t.Errorf("the decided pair is still in the queue")
	}
	if of := e.run(t); of[p.A] == "" || of[p.A] != of[p.B] {
		t.Errorf("after the link the run put %s in %q and %s in %q; want one person", p.A, of[p.A], p.B, of[p.B])
	}
	if page := e.do(t, "GET", path, nil).Body.String(); !strings.Contains(page, "same SSN on the paper chart") {
		t.Errorf("the pair page does not show the earlier decision")
	}

	if rr := decide("unlink", "different mothers' names", "tok"); rr.Code != http.StatusSeeOther {
		t.Fatalf("POST unlink = %d", rr.Code)
	}
	for range 2 { // and stays unlinked when run again
		if of := e.run(t); of[p.A] == of[p.B] {
			t.Fatalf("after the unlink the run put %s and %s in one person %q", p.A, p.B, of[p.A])
		}
	}
}

// TestIdentityDecisionWithoutLogin: with login off (loopback only) a
// same-origin decision is the local approver's and a cross-site one is
// refused.
func TestIdentityDecisionWithoutLogin(t *testing.T) {
	e := newIdentityEnv(t, nil)
	a, b := e.recs[0].Key, e.recs[1].Key
	f := url.Values{"a": {a.String()}, "b": {b.String()}, "action": {"unlink"}, "reason": {"checked"}}
	req := httptest.NewRequest("POST", "/identity/pair", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rr := httptest.NewRecorder()
	e.h.ServeHTTP(rr, req)
	if rr.Code != http.StatusForbidden {
		t.Errorf("cross-site POST = %d, want 403", rr.Code)
	}
	req = httptest.NewRequest("POST", "/identity/pair", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rr = httptest.NewRecorder()
	e.h.ServeHTTP(rr, req)
	if rr.Code != http.StatusSeeOther {
		t.Fatalf("same-origin POST = %d, want 303", rr.Code)
	}
	ovs, _ := e.svc.Overrides(context.Background())
	if len(ovs) != 1 || ovs[0].By != "opuser" {
		t.Errorf("decisions = %+v, want one by opuser", ovs)
	}
}

// TestMergedChart: the merged chart of a person linked across two sources
// shows a problem both sources hold once, citing both, each source with
// its freshness; a problem only one holds cites that one; the chart opened
// from either record is the same person's.
func TestMergedChart(t *testing.T) {
	ctx := context.Background()
	clin := login.Person{ID: "alice", Roles: []login.Role{login.RoleClinician}, Method: "local"}
	e := newIdentityEnv(t, &clin)
	a, b := e.recs[0].Key, e.recs[1].Key
	for _, r := range e.recs {
		if r.Key.Source != a.Source {
			b = r.Key
			break
		}
	}
	cond := func(conn, id, patient, code, text string, at time.Time) store.Record {
		raw := fmt.Sprintf(`{"resourceType":"Condition","id":%q,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
 "code":{"coding":[{"system":"http://snomed.info/sct","code":%q}],"text":%q},"subject":{"reference":"Patient/%s"},"onsetDateTime":"2020-03-01"}`, id, code, text, patient)
		rec, err := refresh.NewRecord(conn, []byte(raw), at, "test")
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	fetchedA, fetchedB := identityNow.Add(-2*time.Hour), identityNow.Add(-50*time.Hour)
	if _, err := e.st.PutResources(ctx, []store.Record{
		cond(a.Source, "dm-a", a.ID, "44054006", "Type 2 diabetes mellitus", fetchedA),
		cond(b.Source, "dm-b", b.ID, "44054006", "Diabetes type 2", fetchedB),
		cond(b.Source, "htn-b", b.ID, "38341003", "Hypertension", fetchedB),
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PutFetchStates(ctx, []store.FetchState{
		{Connection: a.Source, PatientID: a.ID, Type: "Condition", Availability: store.Available, Count: 1, FetchedAt: fetchedA},
		{Connection: b.Source, PatientID: b.ID, Type: "Condition", Availability: store.Available, Count: 2, FetchedAt: fetchedB},
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SetOverride(ctx, identity.Override{A: a, B: b, Action: identity.ActionLink, By: "alice", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	of := e.run(t)
	if of[a] != of[b] {
		t.Fatalf("the link was not respected")
	}
	var pages []string
	for _, k := range []identity.Key{a, b} {
		rr := e.do(t, "GET", "/persons/"+url.PathEscape(k.Source)+"/"+url.PathEscape(k.ID), nil)
		if rr.Code != http.StatusOK {
			t.Fatalf("GET merged chart of %s = %d:\n%s", k, rr.Code, rr.Body)
		}
		pages = append(pages, rr.Body.String())
	}
	page := pages[0]
	problems := regexp.MustCompile(`(?s)<section id="m-problems".*?</section>`).FindString(page)
	if n := strings.Count(problems, "<li>"); n != 2 {
		t.Errorf("merged problems list %d items, want 2 (diabetes once, hypertension):\n%s", n, problems)
	}
	dm := regexp.MustCompile(`<li>Type 2 diabetes mellitus.*?</li>`).FindString(problems)
	for _, want := range []string{a.Source + " · Condition/dm-a", b.Source + " · Condition/dm-b", "fetched 2 hours ago", "fetched 2 days ago"} {
		if !strings.Contains(dm, want) {
			t.Errorf("the diabetes line lacks %q: %s", want, dm)
		}
	}
	htn := regexp.MustCompile(`<li>Hypertension.*?</li>`).FindString(problems)
	if !strings.Contains(htn, b.Source+" · Condition/htn-b") || strings.Contains(htn, a.Source+" ·") {
		t.Errorf("the hypertension line should cite %s only: %s", b.Source, htn)
	}
	if !strings.Contains(page, of[a]) {
		t.Errorf("the merged chart does not name the person %s", of[a])
	}
	strip := regexp.MustCompile(`<p><a href="[^"]*">← Chart of this record</a></p>`)
	if strip.ReplaceAllString(pages[0], "") != strip.ReplaceAllString(pages[1], "") {
		t.Errorf("the merged chart differs by the record it was opened from")
	}
}

// TestBrowserIdentityReview drives a real headless Chromium: open the
// review queue, compare its first pair, unlink it with a reason (the form
// carries the session's CSRF token and posts same-origin), and land back
// on the queue with the pair gone and the decision stored.
func TestBrowserIdentityReview(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	ctx := browsertest.NewBrowser(t)
	clin := login.Person{ID: "alice", Roles: []login.Role{login.RoleClinician}, Method: "local"}
	e := newIdentityEnv(t, &clin)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	sum, err := e.svc.Status(context.Background())
	if err != nil || len(sum.Review) == 0 {
		t.Fatalf("no review pair: %v", err)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/identity/review"),
		chromedp.WaitVisible(chromedp.ID("review")),
		chromedp.Click(chromedp.CSS(`#review tbody tr:first-child a`)),
		chromedp.WaitVisible(chromedp.ID("pair")),
		chromedp.SendKeys(chromedp.ID("reason"), "different people: checked the ID cards"),
		chromedp.Click(chromedp.ID("unlink")),
		chromedp.WaitVisible(chromedp.ID("notice")),
	)
	if err != nil {
		t.Fatalf("review in the browser: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("notice")))
	if err != nil || !strings.Contains(status, "unlinked") {
		t.Errorf("after unlinking the page says %q, %v", status, err)
	}
	ovs, _ := e.svc.Overrides(context.Background())
	p := sum.Review[0]
	if len(ovs) != 1 || identity.OverrideName(ovs[0].A, ovs[0].B) != identity.OverrideName(p.A, p.B) ||
		ovs[0].Action != identity.ActionUnlink || ovs[0].By != "alice" {
		t.Errorf("stored decisions = %+v, want alice's unlink of %s and %s", ovs, p.A, p.B)
	}
}
