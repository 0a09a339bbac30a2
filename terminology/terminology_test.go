package terminology

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTablesParse(t *testing.T) {
	if _, err := parse(); err != nil {
		t.Fatalf("parse() error: %v", err)
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string
		standard bool
	}{
		{"http://loinc.org", "http://loinc.org", true},
		{"urn:oid:2.16.840.1.113883.6.1", "http://loinc.org", true},
		{"http://snomed.info/sct/", "http://snomed.info/sct", true},
		{"urn:oid:2.16.840.1.113883.6.90", "http://hl7.org/fhir/sid/icd-10-cm", true},
		{"urn:oid:2.16.840.1.113883.12.292", "http://hl7.org/fhir/sid/cvx", true},
		{"http://www.ama-assn.org/go/cpt", "http://www.ama-assn.org/go/cpt", true},
		{"http://unitsofmeasure.org", "http://unitsofmeasure.org", true},
		{"http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.nlm.nih.gov/research/umls/rxnorm", true},
		{"http://hl7.org/fhir/sid/ndc", "http://hl7.org/fhir/sid/ndc", false},
		{"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10", false},
		{"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14", "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14", false},
		{"", "", false},
	}
	for _, tc := range tests {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := IsStandard(tc.in); got != tc.standard {
			t.Errorf("IsStandard(%q) = %v, want %v", tc.in, got, tc.standard)
		}
	}
}

func TestPreferred(t *testing.T) {
	tests := []struct {
		ctx  Context
		want []string
	}{
		{ConditionCode, []string{"http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"}},
		{MedicationCode, []string{"http://www.nlm.nih.gov/research/umls/rxnorm", "http://hl7.org/fhir/sid/ndc"}},
		{ObservationCode, []string{"http://loinc.org", "http://snomed.info/sct"}},
		{"Unknown.element", nil},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, Preferred(tc.ctx)); diff != "" {
			t.Errorf("Preferred(%q) mismatch (-want +got):\n%s", tc.ctx, diff)
		}
	}
	for _, ctx := range []Context{ConditionCode, ObservationCode, ObservationValue, MedicationCode, ImmunizationVaccine,
		AllergySubstance, ProcedureCode, DiagnosticReportCode, DocumentReferenceType, EncounterType} {
		if len(Preferred(ctx)) == 0 {
			t.Errorf("Preferred(%q) is empty: context constant without data", ctx)
		}
	}
}

func TestTelehealth(t *testing.T) {
	codes := []struct {
		system, code string
		want         bool
	}{
		{"http://terminology.hl7.org/CodeSystem/v3-ActCode", "VR", true},
		{"http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", false},
		{"http://snomed.info/sct", "448337001", true},
		{"urn:oid:2.16.840.1.113883.6.96", "448337001", true},
		{"http://loinc.org", "448337001", false},
	}
	for _, tc := range codes {
		if got := TelehealthCode(tc.system, tc.code); got != tc.want {
			t.Errorf("TelehealthCode(%q, %q) = %v, want %v", tc.system, tc.code, got, tc.want)
		}
	}
	texts := []struct {
		in   string
		want bool
	}{
		{"Video Visit", true},
		{"virtual", true},
		{"TELEHEALTH - follow up", true},
		{"Telemedicine consultation with patient (procedure)", true},
		{"Videofluoroscopic swallow study", false},
		{"Office visit", false},
		{"", false},
	}
	for _, tc := range texts {
		if got := TelehealthText(tc.in); got != tc.want {
			t.Errorf("TelehealthText(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
