package cdshooks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestSubstitute(t *testing.T) {
	req := &Request{Context: map[string]json.RawMessage{
		"userId":      json.RawMessage(`"PractitionerRole/123"`),
		"patientId":   json.RawMessage(`"1288992"`),
		"encounterId": json.RawMessage(`"89284"`),
		"count":       json.RawMessage(`3`),
		"flag":        json.RawMessage(`true`),
		"odd":         json.RawMessage(`"a b&c"`),
		"draftOrders": json.RawMessage(`{"resourceType":"Bundle"}`),
		"selections":  json.RawMessage(`["MedicationRequest/1"]`),
	}}
	for _, tc := range []struct {
		template, want string
		err            bool
	}{
		{"Patient/{{context.patientId}}", "Patient/1288992", false},
		{"Observation?patient={{context.patientId}}&code=4548-4&_count=1&sort:desc=date", "Observation?patient=1288992&code=4548-4&_count=1&sort:desc=date", false},
		{"{{context.userId}}", "PractitionerRole/123", false},
		{"PractitionerRole?_id={{userPractitionerRoleId}}&_include=PractitionerRole:practitioner", "PractitionerRole?_id=123&_include=PractitionerRole:practitioner", false},
		{"Encounter/{{ context.encounterId }}", "Encounter/89284", false},
		{"X?n={{context.count}}&f={{context.flag}}", "X?n=3&f=true", false},
		{"X?q={{context.odd}}", "X?q=a+b%26c", false},
		{"Practitioner/{{userPractitionerId}}", "", true}, // the user is a PractitionerRole
		{"Patient/{{userPatientId}}", "", true},           // ... not a Patient
		{"X?e={{context.draftOrders}}", "", true},         // objects are not tokens
		{"X?e={{context.selections}}", "", true},          // nor arrays
		{"X?e={{context.draftOrders.id}}", "", true},      // only root-level fields
		{"X?e={{context.missing}}", "", true},             // absent
		{"X?e={{Patient.id}}", "", true},                  // the pre-1.0 syntax
		{"X?e={{context.patientId}", "", true},            // unbalanced
		{"Condition?patient={{context.patientId}}&status=active", "Condition?patient=1288992&status=active", false},
	} {
		got, err := Substitute(tc.template, req)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("Substitute(%q) = %q, %v; want %q, error %v", tc.template, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrToken) {
			t.Errorf("Substitute(%q) error %v does not wrap ErrToken", tc.template, err)
		}
	}
	user := func(u string) *Request {
		return &Request{Context: map[string]json.RawMessage{"userId": json.RawMessage(`"` + u + `"`)}}
	}
	for u, tok := range map[string]string{"Practitioner/abc": "userPractitionerId", "Patient/p1": "userPatientId",
		"RelatedPerson/r9": "userRelatedPersonId", "PractitionerRole/x": "userPractitionerRoleId"} {
		got, err := Substitute("{{"+tok+"}}", user(u))
		_, id, _ := cut(u)
		if err != nil || got != id {
			t.Errorf("Substitute({{%s}}) with userId %s = %q, %v", tok, u, got, err)
		}
	}
}

func cut(ref string) (string, string, bool) {
	for i := range ref {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], true
		}
	}
	return ref, "", false
}

func TestParseRequestErrors(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{"hook":1}`, `{}`,
		`{"hook":"order-select","hookInstance":"x"}`,                                            // no context
		`{"hook":"order-select","hookInstance":"x","context":[]}`,                               // context not an object
		`{"hook":"h","hookInstance":"x","context":{},"fhirServer":"relative/path"}`,             // fhirServer not absolute
		`{"hook":"h","hookInstance":"x","context":{},"fhirAuthorization":{"access_token":"t"}}`, // no fhirServer, incomplete
		`{"hook":"h","hookInstance":"x","context":{},"fhirServer":"https://f","fhirAuthorization":{"access_token":"t","token_type":"MAC","expires_in":1,"scope":"s","subject":"c"}}`,
		`{"hook":"h","hookInstance":"x","context":{},"prefetch":{"p":"Patient/1"}}`, // prefetch values are resources
	} {
		if _, err := ParseRequest([]byte(body)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseRequest(%q) = %v, want ErrBadRequest", body, err)
		}
	}
	if _, err := ParseRequest([]byte(`{"hook":"h","hookInstance":"x","context":{},"fhirAuthorization":{"access_token":"secret-token-value"}}`)); err == nil ||
		strings.Contains(err.Error(), "secret-token-value") {
		t.Errorf("an error quotes the token: %v", err)
	}
}

func TestParseFeedback(t *testing.T) {
	good := `{"feedback":[{"card":"4e0a3a1e-3283-4575-ab82-028d55fe2719","outcome":"accepted","acceptedSuggestions":[{"id":"e56e1945-20b3-4393-8503-a1a20fd73152"}],"outcomeTimestamp":"2021-12-11T10:05:31Z"},` +
		`{"card":"9368d37b-283f-44a0-93ea-547cebab93ed","outcome":"overridden","overrideReason":{"reason":{"code":"d7ecf885","system":"https://example.com/cds-hooks/override-reason-system"},"userComment":"A comment entered by the clinician."},"outcomeTimestamp":"2020-12-11T00:00:00Z"}]}`
	if _, err := ParseFeedback([]byte(good)); err != nil {
		t.Errorf("ParseFeedback(the specification's examples) = %v", err)
	}
	for _, body := range []string{
		`{}`, `{"feedback":[]}`,
		`{"feedback":[{"card":"c","outcome":"accepted","outcomeTimestamp":"2020-12-11T00:00:00Z"}]}`, // accepted without suggestions
		`{"feedback":[{"card":"c","outcome":"ignored","outcomeTimestamp":"2020-12-11T00:00:00Z"}]}`,
		`{"feedback":[{"card":"c","outcome":"overridden"}]}`,
		`{"feedback":[{"card":"../../x","outcome":"overridden","outcomeTimestamp":"t"}]}`,
	} {
		if _, err := ParseFeedback([]byte(body)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseFeedback(%q) = %v, want ErrBadRequest", body, err)
		}
	}
}
