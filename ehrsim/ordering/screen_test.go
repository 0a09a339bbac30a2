package ordering_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestSignInAndCSRF: every page needs a signed-in clinician; a wrong
// password is refused; a POST without the session's CSRF token is
// refused and orders nothing; an unknown medication is refused.
func TestSignInAndCSRF(t *testing.T) {
	l := newLoop(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string, string) {
		resp, err := c.Get(l.ehr.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Request.URL.Path, string(b)
	}
	post := func(path string, v url.Values) (int, string) {
		resp, err := c.PostForm(l.ehr.URL+path, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if _, at, _ := get("/ehr/patients/pen1"); at != "/ehr/login" {
		t.Errorf("a patient page without sign-in ended at %s, want the login page", at)
	}
	if st, _ := post("/ehr/login", url.Values{"username": {"dr.smith"}, "password": {"wrong"}}); st != http.StatusUnauthorized {
		t.Errorf("wrong password = %d, want 401", st)
	}
	if st, _ := post("/ehr/login", url.Values{"username": {"dr.smith"}, "password": {"password"}}); st != http.StatusOK {
		t.Fatalf("sign-in = %d", st)
	}
	_, _, page := get("/ehr/patients/pen1")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the patient page")
	}
	if st, _ := post("/ehr/patients/pen1/orders", url.Values{"medication": {"308182"}}); st != http.StatusForbidden {
		t.Errorf("order without CSRF token = %d, want 403", st)
	}
	if st, _ := post("/ehr/patients/pen1/orders", url.Values{"medication": {"308182"}, "csrf": {"forged"}}); st != http.StatusForbidden {
		t.Errorf("order with a forged CSRF token = %d, want 403", st)
	}
	if _, _, page := get("/ehr/patients/pen1"); !strings.Contains(page, "No draft orders.") {
		t.Error("a refused order was drafted")
	}
	if st, _ := post("/ehr/patients/pen1/orders", url.Values{"medication": {"999"}, "csrf": {m[1]}}); st != http.StatusBadRequest {
		t.Errorf("unknown medication = %d, want 400", st)
	}
	// A free-text order cannot be checked: the service says so.
	if st, body := post("/ehr/patients/pen1/orders", url.Values{"text": {"amoxicillin 500 mg capsule"}, "csrf": {m[1]}}); st != http.StatusOK ||
		!strings.Contains(body, "not coded") {
		t.Errorf("free-text order = %d, want a card saying the check could not be done:\n%s", st, body)
	}
}
