package smartauth

import (
	"net/http"
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
