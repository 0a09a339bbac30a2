package ehrsim

import (
	"encoding/json"
	"go/parser"
	gotoken "go/token"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/fhir"
)

func TestRead(t *testing.T) {
	_, ts := startSmall(t, Options{})
	tests := []struct {
		name        string
		method      string
		path        string
		header      []string
		wantStatus  int
		wantETag    string
		wantIssue   string // OperationOutcome issue code, "" for a resource
		wantVersion string
	}{
		{name: "read", path: "/fhir/Observation/o1", wantStatus: 200, wantETag: `W/"1"`, wantVersion: "1"},
		{name: "loaded meta kept", path: "/fhir/Patient/p1", wantStatus: 200, wantETag: `W/"3"`, wantVersion: "3"},
		{name: "type without table entry", path: "/fhir/CarePlan/cp1", wantStatus: 200, wantETag: `W/"1"`, wantVersion: "1"},
		{name: "if-none-match weak", path: "/fhir/Observation/o1", header: []string{"If-None-Match", `W/"1"`}, wantStatus: 304, wantETag: `W/"1"`},
		{name: "if-none-match strong form", path: "/fhir/Observation/o1", header: []string{"If-None-Match", `"1"`}, wantStatus: 304, wantETag: `W/"1"`},
		{name: "if-none-match list", path: "/fhir/Patient/p1", header: []string{"If-None-Match", `W/"2", W/"3"`}, wantStatus: 304, wantETag: `W/"3"`},
		{name: "if-none-match stale", path: "/fhir/Observation/o1", header: []string{"If-None-Match", `W/"0"`}, wantStatus: 200, wantETag: `W/"1"`, wantVersion: "1"},
		{name: "unknown id", path: "/fhir/Observation/nope", wantStatus: 404, wantIssue: "not-found"},
		{name: "unknown type", path: "/fhir/Spaceship/1", wantStatus: 404, wantIssue: "not-supported"},
		{name: "unknown type search", path: "/fhir/Spaceship", wantStatus: 404, wantIssue: "not-supported"},
		{name: "known type, nothing loaded", path: "/fhir/Immunization/x", wantStatus: 404, wantIssue: "not-found"},
		{name: "delete", method: "DELETE", path: "/fhir/Observation/o1", wantStatus: 405, wantIssue: "not-supported"},
		{name: "put type", method: "PUT", path: "/fhir/Observation", wantStatus: 405, wantIssue: "not-supported"},
		{name: "post metadata", method: "POST", path: "/fhir/metadata", wantStatus: 405, wantIssue: "not-supported"},
		{name: "outside fhir", path: "/other", wantStatus: 404, wantIssue: "not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body json.RawMessage
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d (%s)", method, tt.path, resp.StatusCode, tt.wantStatus, body)
			}
			if got := resp.Header.Get("ETag"); got != tt.wantETag {
				t.Errorf("ETag = %q, want %q", got, tt.wantETag)
			}
			if tt.wantIssue != "" {
				oo := decodeOutcome(t, body)
				if oo.Issue[0].Code != tt.wantIssue {
					t.Errorf("issue code = %q, want %q", oo.Issue[0].Code, tt.wantIssue)
				}
				return
			}
			if tt.wantStatus == http.StatusNotModified {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != "application/fhir+json; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if _, err := http.ParseTime(resp.Header.Get("Last-Modified")); err != nil {
				t.Errorf("Last-Modified %q: %v", resp.Header.Get("Last-Modified"), err)
			}
			h, err := fhir.ParseHeader(body)
			if err != nil {
				t.Fatal(err)
			}
			if h.VersionID() != tt.wantVersion || h.LastUpdated().IsZero() {
				t.Errorf("meta = %+v, want versionId %q and a lastUpdated", h.Meta, tt.wantVersion)
			}
		})
	}
}

func TestLoadReplaceBumpsVersion(t *testing.T) {
	now := fixedClock()
	s := New(Options{Clock: func() time.Time { return now }})
	loadSmall(t, s)
	now = now.Add(time.Hour)
	if err := s.Load(json.RawMessage(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","tag":[{"code":"x"}]},"name":[{"family":"Smyth"}]}`)); err != nil {
		t.Fatal(err)
	}
	ts := newHTTPServer(t, s)
	resp, body := get(t, ts.Client(), ts.URL+"/fhir/Patient/p1")
	if got, want := resp.Header.Get("ETag"), `W/"4"`; got != want {
		t.Errorf("ETag = %q, want %q", got, want)
	}
	var p struct {
		Meta fhir.Meta
		Name []fhir.HumanName
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	want := fhir.Meta{VersionID: "4", LastUpdated: "2025-01-02T04:04:05.000Z", Tag: []fhir.Coding{{Code: "x"}}}
	if diff := cmp.Diff(want, p.Meta); diff != "" {
		t.Errorf("meta after replace (-want +got):\n%s", diff)
	}
	// The replacement is what searches find; the old name is gone.
	for q, want := range map[string]int{"family=Smyth": 1, "family:exact=Smith": 0, "family=smith": 1 /* Smithers */} {
		_, body := get(t, ts.Client(), ts.URL+"/fhir/Patient?"+q)
		if b, _, _ := decodeBundle(t, body); *b.Total != want {
			t.Errorf("Patient?%s total = %d, want %d", q, *b.Total, want)
		}
	}
	if got := s.Counts()["Patient"]; got != 3 {
		t.Errorf("Counts()[Patient] = %d, want 3", got)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []string{
		`[]`,
		`{"resourceType":"Patient"}`,
		`{"id":"1"}`,
		`{"resourceType":"Patient","id":1}`,
		`{"resourceType":"Patient","id":"a/b"}`,
		`{"resourceType":"Patient","id":"1"`,
		`{"resourceType":"Patient","id":"1"} {}`,
		`{"resourceType":"Patient","id":"1","meta":[]}`,
	}
	for _, raw := range tests {
		s := New(Options{})
		if err := s.Load(json.RawMessage(raw)); err == nil {
			t.Errorf("Load(%s) = nil, want an error", raw)
		}
	}
}

func TestCountsAndPatientIDs(t *testing.T) {
	s, _ := startSmall(t, Options{})
	want := map[string]int{
		"Patient": 3, "Observation": 6, "Condition": 2, "AllergyIntolerance": 1, "Medication": 1,
		"MedicationRequest": 2, "DiagnosticReport": 1, "Encounter": 1, "Procedure": 1,
		"Immunization": 1, "DocumentReference": 1, "CarePlan": 1,
	}
	if diff := cmp.Diff(want, s.Counts()); diff != "" {
		t.Errorf("Counts() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"p1", "p2", "p3"}, s.PatientIDs()); diff != "" {
		t.Errorf("PatientIDs() (-want +got):\n%s", diff)
	}
}

func TestMetadata(t *testing.T) {
	// Metadata is never faulted, even at rate 1.
	s, ts := startSmall(t, Options{Faults: Faults{Rate: 1, Kinds: []FaultKind{Fault500}}})
	resp, body := get(t, ts.Client(), ts.URL+"/fhir/metadata")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET metadata: status %d: %s", resp.StatusCode, body)
	}
	var cs capabilityStatement
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Software.Name != "ehrgate-sim" ||
		cs.Software.Version == "" || cs.Implementation.URL != ts.URL+"/fhir" || cs.Kind != "instance" {
		t.Errorf("CapabilityStatement header = %+v", cs)
	}
	types := map[string]capResource{}
	for _, r := range cs.Rest[0].Resource {
		types[r.Type] = r
	}
	for typ := range s.Counts() {
		if _, ok := types[typ]; !ok {
			t.Errorf("loaded type %s missing from CapabilityStatement", typ)
		}
	}
	obs := types["Observation"]
	var names []string
	for _, p := range obs.SearchParam {
		names = append(names, p.Name+":"+p.Type)
	}
	wantNames := []string{"_id:token", "_lastUpdated:date", "category:token", "code:token", "date:date", "encounter:reference", "identifier:token", "patient:reference", "status:token", "subject:reference"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("Observation searchParam (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]capInteraction{{"read"}, {"search-type"}, {"create"}, {"update"}}, obs.Interaction); diff != "" {
		t.Errorf("Observation interactions (-want +got):\n%s", diff)
	}
	if !obs.ConditionalCreate || obs.Versioning != "versioned-update" {
		t.Errorf("Observation conditionalCreate %v versioning %q, want true and versioned-update", obs.ConditionalCreate, obs.Versioning)
	}
	if got := types["Condition"].Interaction; len(got) != 2 {
		t.Errorf("Condition interactions = %v, want read and search-type only (not writable)", got)
	}
	if got := types["DiagnosticReport"].SearchInclude; !contains(got, "DiagnosticReport:result") {
		t.Errorf("DiagnosticReport searchInclude = %v, want DiagnosticReport:result", got)
	}
	if got := s.Stats(); got.Requests != 1 || len(got.Faults) != 0 {
		t.Errorf("Stats() = %+v, want 1 request and no faults", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestLinksAreAbsolute(t *testing.T) {
	_, ts := startSmall(t, Options{})
	tests := []struct {
		name   string
		header []string
		scheme string
	}{
		{"plain", nil, "http"},
		{"forwarded https", []string{"X-Forwarded-Proto", "https"}, "https"},
		{"forwarded list", []string{"X-Forwarded-Proto", "https, http"}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body := get(t, ts.Client(), ts.URL+"/fhir/Observation?_count=2&patient=p1", tt.header...)
			b, _, _ := decodeBundle(t, body)
			host := strings.TrimPrefix(ts.URL, "http://")
			for _, rel := range []string{"self", "next"} {
				u, err := url.Parse(b.LinkURL(rel))
				if err != nil || u.Scheme != tt.scheme || u.Host != host || u.Path != "/fhir/Observation" {
					t.Errorf("%s link = %q, want %s://%s/fhir/Observation?...", rel, b.LinkURL(rel), tt.scheme, host)
				}
			}
			for _, e := range b.Entry {
				if !strings.HasPrefix(e.FullURL, tt.scheme+"://"+host+"/fhir/Observation/") {
					t.Errorf("fullUrl = %q", e.FullURL)
				}
			}
		})
	}
}

// TestNoSynthImport keeps the server independent of the data generator: it
// serves whatever raw resources it is given.
func TestNoSynthImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(gotoken.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if imp.Path.Value == `"ehrgate/synth"` {
				t.Errorf("%s imports ehrgate/synth", f)
			}
		}
	}
}

func TestReplaceMovesPatient(t *testing.T) {
	s, ts := startSmall(t, Options{})
	if err := s.Load(json.RawMessage(`{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p2"}}`)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"Observation?patient=p1", []string{"Observation/o2", "Observation/o3"}},
		{"Observation?patient=p2", []string{"Observation/o1", "Observation/o4", "Observation/o5"}},
		{"Observation?patient=p1,p2&status=final", []string{"Observation/o1", "Observation/o2", "Observation/o5"}},
	}
	for _, tt := range tests {
		_, body := get(t, ts.Client(), ts.URL+"/fhir/"+tt.query)
		_, got, _ := decodeBundle(t, body)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("GET %s after moving o1 (-want +got):\n%s", tt.query, diff)
		}
	}
	if got := s.Counts()["Observation"]; got != 6 {
		t.Errorf("Counts()[Observation] = %d, want 6", got)
	}
}

func TestLoadKeepsBytes(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{
			name: "complete meta kept byte for byte",
			raw:  `{"resourceType":"Observation","id":"x","meta":{"versionId":"7","lastUpdated":"2022-01-19T03:01:52Z"},"status":"final","valueQuantity":{"value":1.50}}`,
			want: `{"resourceType":"Observation","id":"x","meta":{"versionId":"7","lastUpdated":"2022-01-19T03:01:52Z"},"status":"final","valueQuantity":{"value":1.50}}`,
		},
		{
			name: "whitespace compacted",
			raw:  "{\n  \"resourceType\": \"Observation\",\n  \"id\": \"x\",\n  \"meta\": {\"versionId\": \"7\", \"lastUpdated\": \"2022-01-19T03:01:52Z\"}\n}",
			want: `{"resourceType":"Observation","id":"x","meta":{"versionId":"7","lastUpdated":"2022-01-19T03:01:52Z"}}`,
		},
		{
			name: "missing meta stamped after id, order kept",
			raw:  `{"resourceType":"Observation","id":"x","status":"final","code":{"text":"a"}}`,
			want: `{"resourceType":"Observation","id":"x","meta":{"versionId":"1","lastUpdated":"2025-01-02T03:04:05.000Z"},"status":"final","code":{"text":"a"}}`,
		},
		{
			name: "missing lastUpdated filled, other meta kept",
			raw:  `{"resourceType":"Observation","id":"x","meta":{"profile":["p"],"versionId":"2"}}`,
			want: `{"resourceType":"Observation","id":"x","meta":{"profile":["p"],"versionId":"2","lastUpdated":"2025-01-02T03:04:05.000Z"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Clock: fixedClock})
			if err := s.Load(json.RawMessage(tt.raw)); err != nil {
				t.Fatal(err)
			}
			ts := newHTTPServer(t, s)
			_, body := get(t, ts.Client(), ts.URL+"/fhir/Observation/x")
			if string(body) != tt.want {
				t.Errorf("Load(%s) then read =\n%s\nwant\n%s", tt.raw, body, tt.want)
			}
		})
	}
}

// TestMetadataBulkAndOAuth: with Options.BulkExport and Options.OAuth the
// CapabilityStatement lists the Bulk Data operations where the IG puts them
// (export at system level, patient-export on Patient, group-export on
// Group) and the authorization server's endpoints (SMART oauth-uris).
func TestMetadataBulkAndOAuth(t *testing.T) {
	_, ts := startSmall(t, Options{BulkExport: true, OAuth: &OAuthURIs{Token: "/auth/token", Authorize: "/auth/authorize"}})
	_, body := get(t, ts.Client(), ts.URL+"/fhir/metadata")
	var cs capabilityStatement
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	rest := cs.Rest[0]
	ops := func(list []capOperation) []string {
		var out []string
		for _, o := range list {
			out = append(out, o.Name+" "+o.Definition)
		}
		return out
	}
	if diff := cmp.Diff([]string{"export " + bulkOperation + "export"}, ops(rest.Operation)); diff != "" {
		t.Errorf("rest.operation (-want +got):\n%s", diff)
	}
	for typ, want := range map[string]string{"Patient": "patient-export", "Group": "group-export"} {
		found := false
		for _, r := range rest.Resource {
			if r.Type == typ {
				found = slices.Contains(ops(r.Operation), want+" "+bulkOperation+want)
			}
		}
		if !found {
			t.Errorf("%s does not list %s", typ, want)
		}
	}
	if rest.Security == nil || len(rest.Security.Extension) != 1 {
		t.Fatalf("rest.security = %+v", rest.Security)
	}
	uris := map[string]string{}
	for _, e := range rest.Security.Extension[0].Extension {
		uris[e.URL] = e.ValueURI
	}
	if diff := cmp.Diff(map[string]string{"token": ts.URL + "/auth/token", "authorize": ts.URL + "/auth/authorize"}, uris); diff != "" {
		t.Errorf("oauth-uris (-want +got):\n%s", diff)
	}
}
