package normalize

import "testing"

// TestOtherPatientLinks: resources outside the ten models find their
// patient through the elements of the FHIR R4 Patient compartment that name
// the patient (Coverage.beneficiary, Appointment.participant.actor,
// AppointmentResponse.actor, Provenance.target), and through nothing that
// may name someone else (Coverage.subscriber, payor) or another type.
func TestOtherPatientLinks(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"coverage beneficiary", `{"resourceType":"Coverage","id":"c1","status":"active","beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/o1"}]}`, "p1"},
		{"coverage subscriber only", `{"resourceType":"Coverage","id":"c2","subscriber":{"reference":"Patient/p2"},"payor":[{"reference":"Patient/p2"}]}`, ""},
		{"coverage beneficiary absolute", `{"resourceType":"Coverage","id":"c3","beneficiary":{"reference":"https://ehr.example/fhir/Patient/p3/_history/2"}}`, "p3"},
		{"appointment participant", `{"resourceType":"Appointment","id":"a1","status":"booked","participant":[{"actor":{"reference":"Location/l1"},"status":"accepted"},{"actor":{"reference":"Patient/p4"},"status":"accepted"}]}`, "p4"},
		{"appointment participant typed id", `{"resourceType":"Appointment","id":"a2","participant":[{"actor":{"type":"Patient","reference":"p5"}}]}`, "p5"},
		{"appointment without patient", `{"resourceType":"Appointment","id":"a3","participant":[{"actor":{"reference":"Practitioner/d1"}}]}`, ""},
		{"appointment odd participant", `{"resourceType":"Appointment","id":"a4","participant":{"actor":{"reference":"Patient/p6"}}}`, ""},
		{"appointment response actor", `{"resourceType":"AppointmentResponse","id":"r1","actor":{"reference":"Patient/p7"}}`, "p7"},
		{"provenance target", `{"resourceType":"Provenance","id":"v1","target":[{"reference":"Encounter/e1"},{"reference":"Patient/p8"}]}`, "p8"},
		{"provenance no patient target", `{"resourceType":"Provenance","id":"v2","target":[{"reference":"Observation/o1"}]}`, ""},
		{"provenance odd target", `{"resourceType":"Provenance","id":"v3","target":"Patient/p9"}`, ""},
		{"subject first", `{"resourceType":"Flag","id":"f1","subject":{"reference":"Patient/p10"},"target":[{"reference":"Patient/other"}]}`, "p10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Normalize(Ref{Connection: "c"}, []byte(tc.raw))
			if err != nil {
				t.Fatalf("Normalize(%s) = %v", tc.name, err)
			}
			if got := r.Base().PatientID; got != tc.want {
				t.Errorf("Normalize(%s).PatientID = %q, want %q", tc.name, got, tc.want)
			}
			if got, err := PatientID([]byte(tc.raw)); err != nil || got != tc.want {
				t.Errorf("PatientID(%s) = %q, %v, want %q", tc.name, got, err, tc.want)
			}
		})
	}
}
