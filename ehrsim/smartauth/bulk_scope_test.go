package smartauth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestBulkExportNeedsReadOnEveryType: a Bulk Data kick-off is allowed only
// when the token may read every exported type (_type, else everything);
// status and file URLs need a valid token only.
func TestBulkExportNeedsReadOnEveryType(t *testing.T) {
	e := newEnv(t, nil)
	_, out := e.tokenForm(backendForm(e.assertion(e.rsaAssertion()), "system/Patient.rs system/Observation.rs"), "", "")
	narrow, _ := out["access_token"].(string)
	if narrow == "" {
		t.Fatalf("no token: %v", out)
	}
	tests := []struct {
		path  string
		token string
		want  int
	}{
		{"/fhir/$export?_type=Patient,Observation", narrow, 0},
		{"/fhir/$export?_type=Patient,Condition", narrow, http.StatusForbidden},
		{"/fhir/$export", narrow, http.StatusForbidden},
		{"/fhir/Group/all/$export?_type=Patient", narrow, 0},
		{"/fhir/$export?_type=Patient", "", http.StatusUnauthorized},
		{"/fhir/$bulk-status/nope", narrow, 0},
	}
	for _, tc := range tests {
		resp, _ := e.fhirGet(tc.path, tc.token)
		got := resp.StatusCode
		refused := got == http.StatusForbidden || got == http.StatusUnauthorized
		if (tc.want == 0 && refused) || (tc.want != 0 && got != tc.want) {
			t.Errorf("GET %s = %d, want %v", tc.path, got, map[bool]any{true: "not refused", false: tc.want}[tc.want == 0])
		}
	}
}

// TestBulkScopeFilter: with Options.BulkScopeFilter a kick-off is narrowed
// to the types the token may read (as the SMART reference bulk-data server
// does), and refused only when none is left.
func TestBulkScopeFilter(t *testing.T) {
	scopes := parseScopeList([]string{"system/Patient.rs", "system/Observation.read", "system/Condition.cud"})
	tests := []struct {
		name   string
		scopes []scope
		types  []string
		want   []string // nil: unchanged
		ok     bool
	}{
		{"all readable", scopes, []string{"Patient", "Observation"}, nil, true},
		{"narrowed", scopes, []string{"Patient", "Condition", "Observation", "Encounter"}, []string{"Patient", "Observation"}, true},
		{"no _type: the token's readable types", scopes, []string{"*"}, []string{"Patient", "Observation"}, true},
		{"no _type, wildcard scope", parseScopeList([]string{"system/*.rs"}), []string{"*"}, nil, true},
		{"none readable", scopes, []string{"Condition", "Encounter"}, nil, false},
		{"patient scopes at system level", parseScopeList([]string{"patient/*.rs"}), []string{"*"}, nil, false},
	}
	for _, tc := range tests {
		got, ok := bulkTypes(tc.scopes, "", tc.types)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: bulkTypes(%v) = %v, %v; want %v, %v", tc.name, tc.types, got, ok, tc.want, tc.ok)
		}
	}

	e := newEnv(t, func(o *Options) { o.BulkScopeFilter = true })
	_, out := e.tokenForm(backendForm(e.assertion(e.rsaAssertion()), "system/Patient.rs system/Observation.rs"), "", "")
	narrow, _ := out["access_token"].(string)
	for _, tc := range []struct {
		path string
		want int // 0: not refused
	}{
		{"/fhir/$export?_type=Patient,Condition", 0},
		{"/fhir/$export", 0},
		{"/fhir/$export?_type=Condition", http.StatusForbidden},
	} {
		resp, _ := e.fhirGet(tc.path, narrow)
		refused := resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized
		if (tc.want == 0 && refused) || (tc.want != 0 && resp.StatusCode != tc.want) {
			t.Errorf("GET %s with BulkScopeFilter = %d, want %v", tc.path, resp.StatusCode, map[bool]any{true: "not refused", false: tc.want}[tc.want == 0])
		}
	}
}

// TestKickoffTypes: every _type of a kick-off is checked, repeated in the
// query or in a POST's Parameters body, and narrowing rewrites the body.
func TestKickoffTypes(t *testing.T) {
	get := httptest.NewRequest(http.MethodGet, "/fhir/$export?_type=Patient&_type=Condition,Observation", nil)
	if types, _, _ := kickoffTypes(get); !slices.Equal(types, []string{"Patient", "Condition", "Observation"}) {
		t.Errorf("kickoffTypes(GET) = %v", types)
	}
	body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Condition"},{"name":"_since","valueInstant":"2020-01-01T00:00:00Z"}]}`
	post := httptest.NewRequest(http.MethodPost, "/fhir/$export", strings.NewReader(body))
	types, parsed, err := kickoffTypes(post)
	if err != nil || !slices.Equal(types, []string{"Patient", "Condition"}) {
		t.Fatalf("kickoffTypes(POST) = %v, %v", types, err)
	}
	if b, _ := io.ReadAll(post.Body); string(b) != body {
		t.Errorf("the body was not put back: %s", b)
	}
	narrowed := withKickoffTypes(post, parsed, []string{"Patient"})
	again, _, _ := kickoffTypes(narrowed)
	if !slices.Equal(again, []string{"Patient"}) {
		t.Errorf("after narrowing, the POST asks for %v", again)
	}

	e := newEnv(t, nil)
	_, out := e.tokenForm(backendForm(e.assertion(e.rsaAssertion()), "system/Patient.rs"), "", "")
	narrow, _ := out["access_token"].(string)
	for _, tc := range []struct {
		method, path, body string
	}{
		{http.MethodGet, "/fhir/$export?_type=Patient&_type=Condition", ""},
		{http.MethodPost, "/fhir/$export", `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Condition"}]}`},
	} {
		req, _ := http.NewRequest(tc.method, e.ts.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+narrow)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s %s = %d, want 403", tc.method, tc.path, tc.body, resp.StatusCode)
		}
	}
}

// TestSystemScopesReadOnly: client_credentials grants read access only, and
// refuses (before the client assertion is spent) scopes no client may have.
func TestSystemScopesReadOnly(t *testing.T) {
	for _, tc := range []struct {
		scope string
		ok    bool
	}{
		{"system/*.read", true},
		{"system/*.*", true},
		{"system/Patient.cruds system/Observation.rs?category=laboratory", true},
		{"system/UnknownResource.read", false},
		{"system/UnknownResource.r", false},
		{"system/Patient.write", false},
		{"system/Patient.cud", false},
		{"launch fhirUser", false},
	} {
		if e := checkSystemScopes(tc.scope); (e == nil) != tc.ok || (e != nil && e.Code != ErrInvalidScope) {
			t.Errorf("checkSystemScopes(%q) = %v, want ok %v", tc.scope, e, tc.ok)
		}
	}
	for in, want := range map[string]string{
		"system/*.*":                     "system/*.read",
		"system/*.read":                  "system/*.read",
		"system/Patient.cruds":           "system/Patient.rs",
		"system/Patient.cr?category=lab": "system/Patient.r?category=lab",
		"system/Patient.write":           "",
	} {
		sc, err := parseScope(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := readOnly(sc); got != want {
			t.Errorf("readOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAssertionJKU: a client assertion's jku header must be the client's
// registered JWKS URL; the inline-JWKS test client registered none.
func TestAssertionJKU(t *testing.T) {
	e := newEnv(t, nil)
	a := e.rsaAssertion()
	a.jku = "test-bad-jku"
	if code, out := e.tokenForm(backendForm(e.assertion(a), "system/Patient.rs"), "", ""); code != http.StatusUnauthorized && code != http.StatusBadRequest || out["error"] != ErrInvalidClient {
		t.Errorf("token with a bad jku = %d %v, want invalid_client", code, out)
	}
	if code, out := e.tokenForm(backendForm(e.assertion(e.rsaAssertion()), "system/Patient.rs"), "", ""); code != http.StatusOK {
		t.Errorf("token without jku = %d %v, want 200", code, out)
	}
}
