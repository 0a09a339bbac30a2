package smartauth

import (
	"net/http"
	"slices"
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
