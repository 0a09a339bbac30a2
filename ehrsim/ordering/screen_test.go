package ordering_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"ehrgate/synth"
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
	post := poster(t, c, l.ehr.URL)
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

// TestSyntheticPatientsConflictWithCommonOrders runs the ordering loop over
// the synthetic population that `ehrgate sim` serves: a patient with a
// coded penicillin allergy ordering amoxicillin, one with a sulfonamide
// allergy ordering sulfamethoxazole-trimethoprim, and the patient whose
// drug allergy is recorded as text only (synth.IndexTextAllergy), for whom
// ehrgate says the check could not be done.
func TestSyntheticPatientsConflictWithCommonOrders(t *testing.T) {
	g := synth.New(synth.Options{Patients: 120, Seed: 1})
	var resources []json.RawMessage
	penicillin, sulfa := "", ""
	for i := range 120 {
		for _, r := range g.Resources(i) {
			resources = append(resources, r.JSON)
			if r.Type != "AllergyIntolerance" {
				continue
			}
			var a struct {
				Code struct {
					Text   string
					Coding []struct{ Code string }
				}
				ClinicalStatus struct{ Coding []struct{ Code string } }
				Patient        struct{ Reference string }
			}
			if err := json.Unmarshal(r.JSON, &a); err != nil {
				t.Fatal(err)
			}
			if len(a.ClinicalStatus.Coding) == 0 || a.ClinicalStatus.Coding[0].Code != "active" || len(a.Code.Coding) == 0 {
				continue
			}
			pid := strings.TrimPrefix(a.Patient.Reference, "Patient/")
			switch a.Code.Coding[0].Code {
			case "764146007": // Penicillin (substance)
				if penicillin == "" {
					penicillin = pid
				}
			case "387406002": // Sulfonamide (substance)
				if sulfa == "" {
					sulfa = pid
				}
			}
		}
	}
	if penicillin == "" || sulfa == "" {
		t.Fatalf("120 synthetic patients have no active penicillin (%q) or sulfonamide (%q) allergy", penicillin, sulfa)
	}
	l := newLoopWith(t, resources)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	post := poster(t, c, l.ehr.URL)
	if st, _ := post("/ehr/login", url.Values{"username": {"dr.smith"}, "password": {"password"}}); st != http.StatusOK {
		t.Fatalf("sign-in = %d", st)
	}
	order := func(pid, rxcui string) string {
		t.Helper()
		resp, err := c.Get(l.ehr.URL + "/ehr/patients/" + pid)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no CSRF token on %s's page", pid)
		}
		st, body := post("/ehr/patients/"+pid+"/orders", url.Values{"medication": {rxcui}, "csrf": {m[1]}})
		if st != http.StatusOK {
			t.Fatalf("ordering %s for %s = %d", rxcui, pid, st)
		}
		return body
	}
	for _, tc := range []struct {
		name, patient, rxcui string
		want                 []string
	}{
		{"penicillin allergy, amoxicillin", penicillin, "308182", []string{"Allergy to Penicillin", "amoxicillin"}},
		{"sulfonamide allergy, sulfamethoxazole-trimethoprim", sulfa, "198335", []string{"Allergy to Sulfa", "sulfamethoxazole"}},
		{"text-only allergy, amoxicillin", fmt.Sprintf("p%05d", synth.IndexTextAllergy), "308182", []string{"Keflex", "could not be checked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := order(tc.patient, tc.rxcui)
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s: the cards do not say %q:\n%s", tc.patient, w, body)
				}
			}
		})
	}
}

// poster returns a function that posts a form to base+path with c and
// gives the status and body.
func poster(t *testing.T, c *http.Client, base string) func(path string, v url.Values) (int, string) {
	return func(path string, v url.Values) (int, string) {
		t.Helper()
		resp, err := c.PostForm(base+path, v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

// TestSignedOrdersAreRecorded: signing an order writes it into the
// simulated EHR's record as an active MedicationRequest authored by the
// signed-in clinician, which its FHIR API serves; ordering the same
// medication again then meets ehrgate's duplicate-therapy card, whose
// prefetch read the recorded order.
func TestSignedOrdersAreRecorded(t *testing.T) {
	l := newLoop(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	post := poster(t, c, l.ehr.URL)
	if st, _ := post("/ehr/login", url.Values{"username": {"dr.smith"}, "password": {"password"}}); st != http.StatusOK {
		t.Fatalf("sign-in = %d", st)
	}
	csrf := func() string {
		resp, err := c.Get(l.ehr.URL + "/ehr/patients/clear1")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatal("no CSRF token on the patient page")
		}
		return m[1]
	}
	const amlodipine = "197361"
	if st, body := post("/ehr/patients/clear1/orders", url.Values{"medication": {amlodipine}, "csrf": {csrf()}}); st != http.StatusOK || strings.Contains(body, "Duplicate therapy") {
		t.Fatalf("first order = %d, want no duplicate-therapy card:\n%s", st, body)
	}
	if st, body := post("/ehr/patients/clear1/sign", url.Values{"csrf": {csrf()}}); st != http.StatusOK {
		t.Fatalf("signing = %d:\n%s", st, body)
	}
	resp, err := http.Get(l.ehr.URL + "/fhir/MedicationRequest?patient=clear1")
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				Status                    string
				AuthoredOn                string
				Requester                 struct{ Reference string }
				MedicationCodeableConcept struct{ Coding []struct{ Code string } }
			}
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entry) != 1 {
		t.Fatalf("the EHR serves %d MedicationRequests for clear1 after signing, want 1", len(b.Entry))
	}
	mr := b.Entry[0].Resource
	if mr.Status != "active" || mr.AuthoredOn == "" || mr.Requester.Reference != "Practitioner/dr-smith" ||
		len(mr.MedicationCodeableConcept.Coding) != 1 || mr.MedicationCodeableConcept.Coding[0].Code != amlodipine {
		t.Errorf("recorded order = %+v, want active amlodipine authored by Practitioner/dr-smith", mr)
	}
	if st, body := post("/ehr/patients/clear1/orders", url.Values{"medication": {amlodipine}, "csrf": {csrf()}}); st != http.StatusOK || !strings.Contains(body, "Duplicate therapy") {
		t.Errorf("the same order again = %d, want ehrgate's duplicate-therapy card:\n%s", st, body)
	}
}
