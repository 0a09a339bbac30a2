package dashboard_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ehrgate/dashboard"
	"ehrgate/login"
)

var feedbackAt = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// sampleFeedback: drug-allergy-select got 2 accepted and 3 overridden
// class-match cards (2 "tolerated before", 1 without reason) and one
// overridden cross-sensitivity card; duplicate-therapy-sign one accepted
// card of a kind this process did not send.
var sampleFeedback = []dashboard.CDSFeedback{
	{Service: "drug-allergy-select", Card: "c1", Kind: "class", Indicator: "critical", Outcome: "accepted", Client: "epic", Received: feedbackAt},
	{Service: "drug-allergy-select", Card: "c2", Kind: "class", Indicator: "critical", Outcome: "accepted", Client: "epic", Received: feedbackAt.Add(time.Hour)},
	{Service: "drug-allergy-select", Card: "c3", Kind: "class", Indicator: "critical", Outcome: "overridden", Reason: "Patient has tolerated this medication before", Client: "epic", Received: feedbackAt},
	{Service: "drug-allergy-select", Card: "c4", Kind: "class", Indicator: "critical", Outcome: "overridden", Reason: "Patient has tolerated this medication before", Client: "epic", Received: feedbackAt},
	{Service: "drug-allergy-select", Card: "c5", Kind: "class", Indicator: "critical", Outcome: "overridden", Client: "epic", Received: feedbackAt},
	{Service: "drug-allergy-select", Card: "c6", Kind: "cross-sensitivity", Indicator: "warning", Outcome: "overridden", Reason: "Patient has been desensitized", Client: "epic", Received: feedbackAt},
	{Service: "duplicate-therapy-sign", Card: "c7", Outcome: "accepted", Client: "epic", Received: feedbackAt},
}

// The page counts per service and kind of card, with the reasons, and is
// for people who see operations.
func TestCDSFeedbackPage(t *testing.T) {
	fail := false
	d := dashboard.New(fixture(), dashboard.Options{RequirePerson: true, CDSFeedback: func(context.Context) ([]dashboard.CDSFeedback, error) {
		if fail {
			return nil, errors.New("store down")
		}
		return sampleFeedback, nil
	}})
	admin := &login.Person{ID: "root", Roles: []login.Role{login.RoleAdmin}, Method: "local"}
	clinician := &login.Person{ID: "dr.jones", Roles: []login.Role{login.RoleClinician}, Method: "local"}
	get := func(who *login.Person) (int, string) {
		rr := httptest.NewRecorder()
		as(who, d.Handler()).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/cds/feedback", nil))
		b, _ := io.ReadAll(rr.Body)
		return rr.Code, string(b)
	}
	for _, tc := range []struct {
		who  *login.Person
		want int
	}{{nil, http.StatusUnauthorized}, {clinician, http.StatusForbidden}, {admin, http.StatusOK}} {
		if code, _ := get(tc.who); code != tc.want {
			t.Errorf("GET /cds/feedback as %v = %d, want %d", tc.who, code, tc.want)
		}
	}
	_, body := get(admin)
	for _, want := range []string{
		`id="svc-drug-allergy-select"`, "2 accepted", "4 overridden",
		`data-kind="class"`, `<td class="n-accepted">2</td><td class="n-overridden">3</td>`,
		"Patient has tolerated this medication before (2)</span>; <span class=\"reason\">(no reason given) (1)",
		`data-kind="cross-sensitivity"`, "Patient has been desensitized (1)",
		`id="svc-duplicate-therapy-sign"`, "(not known to this process)",
		`href="/cds/feedback" aria-current="page"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("feedback page lacks %q", want)
		}
	}
	fail = true
	if code, body := get(admin); code != http.StatusOK || !strings.Contains(body, "could not be read") || strings.Contains(body, "store down") {
		t.Errorf("feedback page on a store error = %d, want the failure shown without the internal error", code)
	}
	// Without the option the page is not served and not linked.
	plain := dashboard.New(fixture(), dashboard.Options{})
	rr := httptest.NewRecorder()
	plain.Handler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/cds/feedback", nil))
	if rr.Code != http.StatusNotFound {
		t.Errorf("without CDSFeedback: GET /cds/feedback = %d, want 404", rr.Code)
	}
	rr = httptest.NewRecorder()
	plain.Handler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/", nil))
	if strings.Contains(rr.Body.String(), "/cds/feedback") {
		t.Error("without CDSFeedback the navigation links the feedback page")
	}
}
