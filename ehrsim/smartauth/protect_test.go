package smartauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"ehrgate/ehrsim"
)

func TestProtectUnauthorized(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AccessTokenTTL = time.Minute })
	expired := e.mint("p1", "patient/*.rs")
	revoked := e.mint("p1", "patient/*.rs")
	e.auth.Revoke(revoked)
	tests := []struct {
		name, token, want string
	}{
		{"missing", "", "required"},
		{"unknown", "garbage", "not recognized"},
		{"revoked", revoked, "revoked"},
		{"expired", expired, "expired"},
	}
	e.auth.SetClockSkew(61 * time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.fhirGet("/fhir/Patient/p1", tt.token)
			wa := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(wa, `Bearer realm="ehrsim", error="invalid_token", error_description="`) ||
				!strings.Contains(wa, tt.want) || body["resourceType"] != "OperationOutcome" {
				t.Errorf("GET = %d, WWW-Authenticate %q, body %v", resp.StatusCode, wa, body)
			}
		})
	}
	if resp, _ := e.fhirGet("/fhir/metadata", ""); resp.StatusCode != 200 {
		t.Errorf("metadata = %d, want open", resp.StatusCode)
	}
}

func TestProtectScopes(t *testing.T) {
	e := newEnv(t, nil)
	obsP1 := e.mint("p1", "patient/Observation.rs")
	allP1 := e.mint("p1", "patient/*.read")
	user := e.mint("", "user/*.read")
	system := e.mint("", "system/*.rs")
	lab := e.mint("p1", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory")
	labOrVital := e.mint("p1", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs")
	readOnly := e.mint("p1", "patient/Observation.r")
	noPatient := e.mint("", "patient/*.rs")
	tests := []struct {
		name   string
		token  string
		path   string
		status int
		ids    []string // for searches
	}{
		{"patient obs search", obsP1, "/fhir/Observation", 200, []string{"o1", "o2"}},
		{"patient obs search own patient", obsP1, "/fhir/Observation?patient=Patient/p1", 200, []string{"o1", "o2"}},
		{"patient obs search subject", obsP1, "/fhir/Observation?subject=p1&category=laboratory", 200, []string{"o2"}},
		{"patient obs search other patient", obsP1, "/fhir/Observation?patient=p2", 403, nil},
		{"patient obs search both patients", obsP1, "/fhir/Observation?patient=p1,p2", 403, nil},
		{"patient obs chained", obsP1, "/fhir/Observation?patient.name=Smith", 403, nil},
		{"patient obs read own", obsP1, "/fhir/Observation/o1", 200, nil},
		{"patient obs read other", obsP1, "/fhir/Observation/o3", 404, nil},
		{"patient obs read missing", obsP1, "/fhir/Observation/zz", 404, nil},
		{"patient obs condition", obsP1, "/fhir/Condition", 403, nil},
		{"patient obs condition read", obsP1, "/fhir/Condition/c1", 403, nil},
		{"patient obs Patient", obsP1, "/fhir/Patient/p1", 403, nil},
		{"v1 patient search", allP1, "/fhir/Patient?name=Jones", 200, nil},
		{"v1 patient search own", allP1, "/fhir/Patient", 200, []string{"p1"}},
		{"v1 patient search other id", allP1, "/fhir/Patient?_id=p2", 403, nil},
		{"v1 patient read own", allP1, "/fhir/Patient/p1", 200, nil},
		{"v1 patient read other", allP1, "/fhir/Patient/p2", 404, nil},
		{"v1 conditions", allP1, "/fhir/Condition", 200, []string{"c1"}},
		{"v1 medication outside compartment", allP1, "/fhir/Medication/m1", 200, nil},
		{"user sees all", user, "/fhir/Observation", 200, []string{"o1", "o2", "o3"}},
		{"user reads any", user, "/fhir/Condition/c2", 200, nil},
		{"system sees all", system, "/fhir/Observation?category=laboratory", 200, []string{"o2", "o3"}},
		{"v2 category search filtered", lab, "/fhir/Observation", 200, []string{"o2"}},
		{"v2 category search other category", lab, "/fhir/Observation?category=vital-signs", 200, []string{}},
		{"v2 category read inside", lab, "/fhir/Observation/o2", 200, nil},
		{"v2 category read outside", lab, "/fhir/Observation/o1", 403, nil},
		{"v2 two categories OR", labOrVital, "/fhir/Observation", 200, []string{"o1", "o2"}},
		{"v2 read-only cannot search", readOnly, "/fhir/Observation", 403, nil},
		{"v2 read-only reads", readOnly, "/fhir/Observation/o1", 200, nil},
		{"patient scope without patient", noPatient, "/fhir/Observation", 403, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.fhirGet(tt.path, tt.token)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s = %d %v, want %d", tt.path, resp.StatusCode, body, tt.status)
			}
			if tt.status == 403 && (body["resourceType"] != "OperationOutcome" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope")) {
				t.Errorf("403 without OperationOutcome or insufficient_scope: %v %q", body, resp.Header.Get("WWW-Authenticate"))
			}
			if tt.ids != nil {
				got := ids(body)
				if got == nil {
					got = []string{}
				}
				if !slices.Equal(got, tt.ids) {
					t.Errorf("GET %s ids = %v, want %v", tt.path, got, tt.ids)
				}
			}
			if tt.name == "v1 patient search" && body["total"] != float64(0) {
				t.Errorf("a patient token searching by another name: total %v, want 0", body["total"])
			}
		})
	}
}

func TestProtectPostSearchAndWrites(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.mint("p1", "patient/Observation.rs")
	post := func(path string, form url.Values) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+tok)
		return e.fhirDo(req)
	}
	if resp, body := post("/fhir/Observation/_search", url.Values{}); resp.StatusCode != 200 || !slices.Equal(ids(body), []string{"o1", "o2"}) {
		t.Errorf("POST _search = %d %v", resp.StatusCode, ids(body))
	}
	if resp, _ := post("/fhir/Observation/_search", url.Values{"patient": {"p2"}}); resp.StatusCode != 403 {
		t.Errorf("POST _search for p2 = %d, want 403", resp.StatusCode)
	}
	if resp, _ := post("/fhir/Observation", url.Values{}); resp.StatusCode != 403 {
		t.Errorf("create with .rs = %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.ts.URL+"/fhir/Observation/o1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, _ := e.fhirDo(req); resp.StatusCode != 403 {
		t.Errorf("delete with .rs = %d, want 403", resp.StatusCode)
	}
	// Conditional read inside the compartment.
	resp, _ := e.fhirGet("/fhir/Observation/o1", tok)
	etag := resp.Header.Get("ETag")
	if resp, _ := e.fhirGet("/fhir/Observation/o1", tok, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match = %d, want 304", resp.StatusCode)
	}
	if resp, _ := e.fhirGet("/fhir/Observation/o3", tok, "If-None-Match", etag); resp.StatusCode != 404 {
		t.Errorf("If-None-Match on another patient's = %d, want 404", resp.StatusCode)
	}
	// Next links keep working (they carry the forced patient parameter).
	resp, body := e.fhirGet("/fhir/Observation?_count=1", tok)
	var next string
	for _, l := range body["link"].([]any) {
		if l.(map[string]any)["relation"] == "next" {
			next = l.(map[string]any)["url"].(string)
		}
	}
	if resp.StatusCode != 200 || next == "" {
		t.Fatalf("paged search = %d, next %q", resp.StatusCode, next)
	}
	u, _ := url.Parse(next)
	if resp, body := e.fhirGet(u.RequestURI(), tok); resp.StatusCode != 200 || !slices.Equal(ids(body), []string{"o2"}) {
		t.Errorf("next page = %d %v", resp.StatusCode, ids(body))
	}
}

func TestPatientLister(t *testing.T) {
	sim := ehrsim.New(ehrsim.Options{})
	for _, raw := range simData {
		if err := sim.Load(json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	got := PatientLister(sim.Handler(), "/fhir")()
	want := []PatientChoice{{ID: "p1", Name: "John Smith"}, {ID: "p2", Name: "Mary Jones"}}
	if !slices.Equal(got, want) {
		t.Errorf("PatientLister() = %v, want %v", got, want)
	}
}

func TestProtectMalformedAndFaults(t *testing.T) {
	t.Run("malformed subject", func(t *testing.T) {
		e := newEnvSim(t, ehrsim.Options{Malformed: func(typ, id string) bool { return typ == "Observation" }}, nil)
		tok := e.mint("p1", "patient/Observation.rs")
		for path, want := range map[string]int{"/fhir/Observation/o1": 200, "/fhir/Observation/o3": 404} {
			if resp, _ := e.fhirGet(path, tok); resp.StatusCode != want {
				t.Errorf("GET %s (subject corrupted) = %d, want %d", path, resp.StatusCode, want)
			}
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		e := newEnvSim(t, ehrsim.Options{Faults: ehrsim.Faults{Rate: 1, Seed: 1, Kinds: []ehrsim.FaultKind{ehrsim.FaultMalformedBody}}}, nil)
		tok := e.mint("p1", "patient/Observation.rs")
		resp, body := e.fhirGet("/fhir/Observation/o3", tok)
		if resp.StatusCode != http.StatusBadGateway || body["resourceType"] != "OperationOutcome" {
			t.Errorf("truncated read = %d %v, want 502 OperationOutcome", resp.StatusCode, body)
		}
	})
}

func TestWithSMARTListsPatients(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Patients = nil })
	b := newBrowser(t)
	resp, page := b.get(e.ts.URL + "/auth/launch")
	if resp.StatusCode != 200 || !strings.Contains(page, "Mary Jones") || !strings.Contains(page, "Launch "+pubApp) {
		t.Errorf("launch page = %d, want the simulator's patients and a launch button: %.400s", resp.StatusCode, page)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("launch page without %s", h)
		}
	}
}
