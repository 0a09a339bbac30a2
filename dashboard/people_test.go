package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ehrgate/audit"
	"ehrgate/dashboard"
	"ehrgate/login"
	"ehrgate/store"
)

// as wraps h so that every request carries p as the signed-in person (what
// login.Service.Require does in the gateway).
func as(p *login.Person, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p != nil {
			r = r.WithContext(login.NewContext(r.Context(), *p, "csrf-token-1"))
		}
		h.ServeHTTP(w, r)
	})
}

type fakeTrail struct{ q store.AuditQuery }

func (f *fakeTrail) QueryAudit(_ context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	f.q = q
	return []store.AuditEntry{{Seq: 7, Type: "rest", Subtype: "read", Action: "R", Outcome: "0", Agent: "dr.jones", Connection: "sim-epic", Patient: adaID}}, nil
}

// With login on, each page needs a person whose roles allow it: a
// clinician sees charts but not operations, an auditor the audit trail but
// no chart or search, an admin everything; without a person every page is
// refused.
func TestPagesByRole(t *testing.T) {
	rec := &recorder{}
	d := dashboard.New(fixture(), dashboard.Options{Audit: rec, RequirePerson: true, Trail: &fakeTrail{}})
	clinician := &login.Person{ID: "dr.jones", Name: "Dr Jones", Roles: []login.Role{login.RoleClinician}, Method: "oidc"}
	auditor := &login.Person{ID: "pat.audit", Roles: []login.Role{login.RoleAuditor}, Method: "local"}
	admin := &login.Person{ID: "root", Roles: []login.Role{login.RoleAdmin}, Method: "local"}
	chart := "/patients/sim-epic/" + adaID
	tests := []struct {
		who  *login.Person
		path string
		want int
	}{
		{nil, "/", http.StatusUnauthorized},
		{nil, chart, http.StatusUnauthorized},
		{clinician, "/", http.StatusOK},
		{clinician, chart, http.StatusOK},
		{clinician, "/patients?q=ada", http.StatusOK},
		{clinician, "/quality", http.StatusForbidden},
		{clinician, "/connections/sim-epic", http.StatusForbidden},
		{clinician, "/audit", http.StatusForbidden},
		{auditor, "/", http.StatusOK},
		{auditor, chart, http.StatusForbidden},
		{auditor, "/patients?q=ada", http.StatusForbidden},
		{auditor, "/quality", http.StatusForbidden},
		{auditor, "/audit", http.StatusOK},
		{admin, chart, http.StatusOK},
		{admin, "/quality", http.StatusOK},
		{admin, "/audit", http.StatusOK},
		{nil, "/static/style.css", http.StatusOK},
	}
	for _, tc := range tests {
		res, body := get(t, as(tc.who, d.Handler()), tc.path)
		who := "no one"
		if tc.who != nil {
			who = tc.who.ID
		}
		if res.StatusCode != tc.want {
			t.Errorf("GET %s as %s = %d, want %d", tc.path, who, res.StatusCode, tc.want)
		}
		if res.StatusCode == http.StatusForbidden && (strings.Contains(body, "Lovelace") || strings.Contains(body, "MRN-1001")) {
			t.Errorf("GET %s as %s: the refusal shows patient data", tc.path, who)
		}
	}
	// The auditor's refused chart view and search are recorded as refused
	// (outcome 4), with no resources.
	var refused []audit.Event
	for _, e := range rec.events {
		if e.Agent.UserID == auditor.ID {
			refused = append(refused, e)
		}
	}
	if len(refused) != 2 || refused[0].Outcome != audit.OutcomeMinor || refused[0].Patient.ID != adaID || len(refused[0].Resources) != 0 ||
		refused[1].Outcome != audit.OutcomeMinor || refused[1].Query != "q=ada" {
		t.Errorf("recorded for the auditor: %+v, want a refused read of the chart and a refused search", refused)
	}
}

// The chart view names the signed-in person in the audit trail, and the
// page shows who is signed in with a logout form carrying the CSRF token.
func TestChartViewNamesThePerson(t *testing.T) {
	rec := &recorder{}
	d := dashboard.New(fixture(), dashboard.Options{Audit: rec, RequirePerson: true})
	p := &login.Person{ID: "dr.jones", Name: "Dr Jones", Roles: []login.Role{login.RoleClinician}, Method: "oidc"}
	res, body := get(t, as(p, d.Handler()), "/patients/sim-epic/"+adaID)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("chart = %d", res.StatusCode)
	}
	if len(rec.events) != 1 {
		t.Fatalf("recorded %d events, want 1", len(rec.events))
	}
	a := rec.events[0].Agent
	if a.UserID != "dr.jones" || a.Name != "Dr Jones" || a.ClientID != "ehrgate-dashboard" || rec.events[0].Action != audit.ActionRead {
		t.Errorf("chart view agent = %+v, want the signed-in person", a)
	}
	for _, want := range []string{`action="/logout"`, `name="csrf" value="csrf-token-1"`, `Dr Jones`} {
		if !strings.Contains(body, want) {
			t.Errorf("chart page lacks %s", want)
		}
	}
	if strings.Contains(body, `href="/quality"`) {
		t.Error("a clinician's page links to data quality, which the role cannot see")
	}
}

func TestAuditPage(t *testing.T) {
	tr := &fakeTrail{}
	d := dashboard.New(fixture(), dashboard.Options{RequirePerson: true, Trail: tr})
	p := &login.Person{ID: "pat.audit", Roles: []login.Role{login.RoleAuditor}, Method: "local"}
	rec := httptest.NewRecorder()
	as(p, d.Handler()).ServeHTTP(rec, httptest.NewRequest("GET", "/audit?agent=dr.jones&since=2026-01-02", nil))
	b, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != http.StatusOK || !strings.Contains(string(b), "dr.jones") || !strings.Contains(string(b), adaID) {
		t.Fatalf("audit page = %d:\n%s", rec.Code, b)
	}
	if tr.q.Agent != "dr.jones" || tr.q.Since.Format("2006-01-02") != "2026-01-02" {
		t.Errorf("query = %+v", tr.q)
	}
}

// The overview offers each role what it may use: the patient search to
// clinicians, the connections to admins, neither to auditors.
func TestOverviewByRole(t *testing.T) {
	d := newDashboard(fixture())
	for _, tc := range []struct {
		role               login.Role
		search, connection bool
	}{
		{login.RoleAdmin, true, true},
		{login.RoleClinician, true, false},
		{login.RoleAuditor, false, false},
	} {
		p := &login.Person{ID: "x", Roles: []login.Role{tc.role}}
		_, body := get(t, as(p, d.Handler()), "/")
		if got := strings.Contains(body, `id="find-h"`); got != tc.search {
			t.Errorf("overview for %s shows the patient search: %v, want %v", tc.role, got, tc.search)
		}
		if got := strings.Contains(body, `href="/connections/`); got != tc.connection {
			t.Errorf("overview for %s links connections: %v, want %v", tc.role, got, tc.connection)
		}
	}
}
