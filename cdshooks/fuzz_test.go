package cdshooks

import (
	"errors"
	"testing"
)

// FuzzParseRequest: any body either parses into a request whose context
// checks, draft reading and prefetch substitution run without panicking,
// or is refused with ErrBadRequest. (TestParseRequestErrors checks that
// errors never quote the access token.)
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"hookInstance":"d1577c69","fhirServer":"http://hooks.smarthealthit.org:9080","hook":"patient-view","fhirAuthorization":{"access_token":"some-opaque-fhir-access-token","token_type":"Bearer","expires_in":300,"scope":"user/Patient.read user/Observation.read","subject":"cds-service4"},"context":{"userId":"Practitioner/example","patientId":"1288992","encounterId":"89284"},"prefetch":{"patientToGreet":{"resourceType":"Patient","gender":"male","birthDate":"1925-12-23","id":"1288992","active":true}}}`,
		`{"hook":"order-select","hookInstance":"x","context":{"userId":"PractitionerRole/123","patientId":"1288992","selections":["MedicationRequest/m1"],"draftOrders":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"MedicationRequest","id":"m1","status":"draft","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"617993","display":"Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"}]},"subject":{"reference":"Patient/1288992"}}}]}}}`,
		`{"hook":"medication-prescribe","hookInstance":"x","context":{"userId":"Practitioner/1","patientId":"p","medications":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"MedicationRequest","medicationCodeableConcept":{"text":"amoxicillin"}}}]}}}`,
		`{"hook":"h","hookInstance":"x","context":{},"prefetch":{"p":null}}`,
		`{"hook":"h","hookInstance":"x","context":{},"fhirAuthorization":{"access_token":"secret"}}`,
		`{}`, `[]`, `null`, `{"context":{"patientId":{"a":1}}}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Service{know: BundledKnowledge()}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("ParseRequest error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		_ = req.CheckContext()
		if ds, err := s.drafts(req); err == nil {
			s.know.Check(ds, nil)
		}
		_, _ = Substitute(allergyTemplate, req)
		_, _ = Substitute("X?a={{context.patientId}}&b={{userPractitionerId}}&c={{context.encounterId}}", req)
	})
}
