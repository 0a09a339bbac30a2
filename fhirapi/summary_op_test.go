package fhirapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/identity"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/summary"
)

var updateSummary = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixtureDir holds hand-made charts: patient s1 on epic_a, s2 on cerner.
const fixtureDir = "../summary/testdata/fixture"

// loadCharts stores the fixture charts and their fetch states: cerner
// does not expose AllergyIntolerance.
func (e *env) loadCharts() {
	e.t.Helper()
	ctx := context.Background()
	for _, conn := range []string{"epic_a", "cerner"} {
		f, err := os.Open(filepath.Join(fixtureDir, conn+".ndjson"))
		if err != nil {
			e.t.Fatal(err)
		}
		var recs []store.Record
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			rec, err := refresh.NewRecord(conn, bytes.Clone(sc.Bytes()), e.gen.Now(), "fixture")
			if err != nil {
				e.t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		f.Close()
		if _, err := e.st.PutResources(ctx, recs); err != nil {
			e.t.Fatal(err)
		}
	}
	var states []store.FetchState
	for _, typ := range []string{"Condition", "MedicationRequest", "AllergyIntolerance", "Observation", "Encounter"} {
		states = append(states, store.FetchState{Connection: "epic_a", PatientID: "s1", Type: typ, Availability: store.Available, FetchedAt: e.gen.Now()})
		a, detail := store.Available, ""
		if typ == "AllergyIntolerance" {
			a, detail = store.NotAvailable, "the endpoint does not support AllergyIntolerance"
		}
		states = append(states, store.FetchState{Connection: "cerner", PatientID: "s2", Type: typ, Availability: a, Detail: detail, FetchedAt: e.gen.Now()})
	}
	if err := e.st.PutFetchStates(ctx, states); err != nil {
		e.t.Fatal(err)
	}
}

// raw calls the API and returns the status, content type and body.
func (e *env) raw(tok, path string) (int, string, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/fhir/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func goldenFile(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateSummary {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (run with -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestPatientContext(t *testing.T) {
	e := newEnv(t)
	e.loadCharts()
	all := e.token("user/*.rs", "")

	before := e.auditCount()
	code, ctype, body := e.raw(all, "Patient/cerner.s2/$context")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/markdown") {
		t.Fatalf("$context = %d %s: %s", code, ctype, body)
	}
	goldenFile(t, "context-cerner.md", body)
	if !bytes.Contains(body, []byte("Source cerner: not available from this source")) || bytes.Contains(body, []byte("Ada")) {
		t.Errorf("$context does not say allergies are not available, or holds the name:\n%s", body)
	}
	if got := e.auditCount(); got != before+1 {
		t.Errorf("audit events %d -> %d, want one more", before, got)
	}

	code, ctype, body = e.raw(all, "Patient/epic-a.s1/$context?format=json&max-tokens=300")
	if code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("$context JSON = %d %s: %s", code, ctype, body)
	}
	var s summary.Summary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("$context JSON: %v", err)
	}
	if summary.Tokens(body) > 300 || s.Budget == nil || s.Budget.Omitted == 0 || len(s.Allergies.Items) != 1 {
		t.Errorf("$context within 300 tokens: %d tokens, budget %+v, %d allergies", summary.Tokens(body), s.Budget, len(s.Allergies.Items))
	}

	// Observation read not granted: the results sections say withheld
	_, _, body = e.raw(e.token("user/Patient.r user/Condition.r", ""), "Patient/epic-a.s1/$context")
	if !bytes.Contains(body, []byte("## Labs (last; previous; trend)\nSource epic_a: withheld")) || !bytes.Contains(body, []byte("Hypertension")) {
		t.Errorf("$context with Patient and Condition read only:\n%s", body)
	}

	for _, c := range []struct {
		name, tok, path string
		want            int
	}{
		{"no Patient read", e.token("user/Observation.rs user/Condition.rs", ""), "Patient/epic-a.s1/$context", http.StatusForbidden},
		{"another patient's token", e.token("patient/*.rs", "epic-a.p00000"), "Patient/epic-a.s1/$context", http.StatusNotFound},
		{"unknown patient", all, "Patient/epic-a.nobody/$context", http.StatusNotFound},
		{"bad budget", all, "Patient/epic-a.s1/$context?max-tokens=0", http.StatusBadRequest},
		{"bad format", all, "Patient/epic-a.s1/$context?format=xml", http.StatusBadRequest},
		{"IPS without Patient read", e.token("user/Observation.rs", ""), "Patient/epic-a.s1/$summary", http.StatusForbidden},
	} {
		before := e.auditCount()
		if code, _, body := e.raw(c.tok, c.path); code != c.want {
			t.Errorf("%s: GET %s = %d %s, want %d", c.name, c.path, code, body, c.want)
		}
		if got := e.auditCount(); got != before+1 {
			t.Errorf("%s: audit events %d -> %d, want one more", c.name, before, got)
		}
	}
	// the patient's own token
	if code, _, _ := e.raw(e.token("patient/*.rs", "epic-a.s1"), "Patient/epic-a.s1/$context"); code != http.StatusOK {
		t.Errorf("$context with the patient's own token = %d", code)
	}
}

func TestPatientSummaryIPS(t *testing.T) {
	e := newEnv(t)
	e.loadCharts()
	before := e.auditCount()
	code, ctype, body := e.raw(e.token("user/*.rs", ""), "Patient/cerner.s2/$summary")
	if code != http.StatusOK || ctype != "application/fhir+json" {
		t.Fatalf("$summary = %d %s: %s", code, ctype, body)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", " "); err != nil {
		t.Fatal(err)
	}
	goldenFile(t, "summary-cerner.ips.json", pretty.Bytes())
	if got := e.auditCount(); got != before+1 {
		t.Errorf("audit events %d -> %d, want one more", before, got)
	}
	var b struct {
		Type  string `json:"type"`
		Entry []struct {
			FullURL  string `json:"fullUrl"`
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Section      []struct {
					Code struct {
						Coding []struct{ Code string } `json:"coding"`
					} `json:"code"`
					Entry       []any `json:"entry"`
					EmptyReason *struct {
						Coding []struct{ Code string } `json:"coding"`
					} `json:"emptyReason"`
				} `json:"section"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Type != "document" || b.Entry[0].Resource.ResourceType != "Composition" {
		t.Fatalf("$summary is not a document Bundle: %v", err)
	}
	if p := b.Entry[1]; p.Resource.ResourceType != "Patient" || p.Resource.ID != "cerner.s2" || p.FullURL != audience+"/Patient/cerner.s2" {
		t.Errorf("second entry = %s %s %s, want the served Patient cerner.s2", p.Resource.ResourceType, p.Resource.ID, p.FullURL)
	}
	for _, s := range b.Entry[0].Resource.Section {
		switch s.Code.Coding[0].Code {
		case "48765-2":
			if len(s.Entry) != 0 || s.EmptyReason == nil || s.EmptyReason.Coding[0].Code != "unavailable" {
				t.Errorf("allergies section: %d entries, emptyReason %+v; want unavailable", len(s.Entry), s.EmptyReason)
			}
		case "8716-3":
			if len(s.Entry) != 0 || s.EmptyReason == nil || s.EmptyReason.Coding[0].Code != "nilknown" {
				t.Errorf("vital signs section: %d entries, emptyReason %+v; want nilknown", len(s.Entry), s.EmptyReason)
			}
		}
	}
}

func TestPatientContextMergedPerson(t *testing.T) {
	e := newEnv(t)
	e.loadCharts()
	ctx := context.Background()
	svc := &identity.Service{Docs: e.st, Now: e.gen.Now}
	a, b := identity.Key{Source: "epic_a", ID: "s1"}, identity.Key{Source: "cerner", ID: "s2"}
	if err := svc.SetOverride(ctx, identity.Override{A: a, B: b, Action: identity.ActionLink, By: "test", Reason: "same person"}); err != nil {
		t.Fatal(err)
	}
	recs, err := identity.LoadPatients(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Run(ctx, recs, identity.Options{}); err != nil {
		t.Fatal(err)
	}
	before := e.auditCount()
	code, _, body := e.raw(e.token("user/*.rs", ""), "Patient/epic-a.s1/$context?merged=person")
	if code != http.StatusOK {
		t.Fatalf("$context?merged=person = %d %s", code, body)
	}
	for _, want := range []string{
		"Records [cerner Patient/s2; epic_a Patient/s1]",
		"[cerner MedicationRequest/s2-m1 2026-01-10; epic_a MedicationRequest/s1-m1 2026-01-10]",
		"[cerner Observation/s2-o1 2026-05-20; epic_a Observation/s1-o2 2026-05-20]",
		"Source cerner: not available from this source",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("merged $context lacks %q:\n%s", want, body)
		}
	}
	if got := e.auditCount(); got != before+1 {
		t.Errorf("audit events %d -> %d, want one more", before, got)
	}
	// a patient token reaches only its own record
	_, _, body = e.raw(e.token("patient/*.rs", "epic-a.s1"), "Patient/epic-a.s1/$context?merged=person")
	if bytes.Contains(body, []byte("cerner")) {
		t.Errorf("a patient token's merged $context holds the other connection's record:\n%s", body)
	}
	// the IPS of the person
	code, _, body = e.raw(e.token("user/*.rs", ""), "Patient/epic-a.s1/$summary?merged=person")
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"value":"MedicationRequest/s2-m1"`)) {
		t.Errorf("merged $summary = %d, want the cerner order cited", code)
	}
}
