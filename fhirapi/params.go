package fhirapi

import (
	"slices"
	"strings"
)

// kind is a search parameter type (FHIR R4 search, 3.1.1.4).
type kind int

const (
	tokenParam kind = iota
	stringParam
	dateParam
	referenceParam
)

func (k kind) String() string {
	return [...]string{"token", "string", "date", "reference"}[k]
}

// param is a search parameter a type supports: the elements (dotted paths
// from the resource root; choice types listed by their typed names) whose
// values it searches.
type param struct {
	name  string
	kind  kind
	paths []string
	doc   string
}

// common parameters every type supports.
var commonParams = []param{
	{"_id", tokenParam, []string{"id"}, "logical id (a served id)"},
	{"_lastUpdated", dateParam, []string{"meta.lastUpdated"}, "when the source last changed it"},
}

// effective, onset, performed... as one date parameter.
var (
	effective    = []string{"effectiveDateTime", "effectivePeriod", "effectiveInstant"}
	patientRef   = param{"patient", referenceParam, []string{"patient", "subject"}, "the patient (a served Patient id)"}
	subjectRef   = param{"subject", referenceParam, []string{"subject"}, "the subject (a served Patient id)"}
	encounterRef = param{"encounter", referenceParam, []string{"encounter", "context.encounter"}, "the encounter"}
)

// searchParams are the parameters served per resource type: those of FHIR
// R4 that US Core and apps use, by their R4 names and expressions
// (https://hl7.org/fhir/R4/searchparameter-registry.html).
var searchParams = map[string][]param{
	"Patient": {
		{"identifier", tokenParam, []string{"identifier"}, "an identifier (system|value)"},
		{"name", stringParam, []string{"name"}, "any part of any name"},
		{"family", stringParam, []string{"name.family"}, "a family name"},
		{"given", stringParam, []string{"name.given"}, "a given name"},
		{"birthdate", dateParam, []string{"birthDate"}, "date of birth"},
		{"gender", tokenParam, []string{"gender"}, "administrative gender"},
	},
	"Observation": {
		patientRef, subjectRef, encounterRef,
		{"category", tokenParam, []string{"category"}, "the category (laboratory, vital-signs, ...)"},
		{"code", tokenParam, []string{"code"}, "what was observed (system|code)"},
		{"date", dateParam, effective, "when it was observed"},
		{"status", tokenParam, []string{"status"}, "status"},
	},
	"Condition": {
		patientRef, subjectRef, encounterRef,
		{"category", tokenParam, []string{"category"}, "problem-list-item, encounter-diagnosis, health-concern"},
		{"code", tokenParam, []string{"code"}, "the condition (system|code)"},
		{"clinical-status", tokenParam, []string{"clinicalStatus"}, "active, resolved, ..."},
		{"verification-status", tokenParam, []string{"verificationStatus"}, "confirmed, refuted, ..."},
		{"onset-date", dateParam, []string{"onsetDateTime", "onsetPeriod"}, "onset"},
		{"recorded-date", dateParam, []string{"recordedDate"}, "when recorded"},
	},
	"AllergyIntolerance": {
		patientRef,
		{"code", tokenParam, []string{"code", "reaction.substance"}, "the substance"},
		{"clinical-status", tokenParam, []string{"clinicalStatus"}, "active, inactive, resolved"},
		{"verification-status", tokenParam, []string{"verificationStatus"}, "confirmed, refuted, ..."},
		{"category", tokenParam, []string{"category"}, "food, medication, environment, biologic"},
		{"criticality", tokenParam, []string{"criticality"}, "low, high, unable-to-assess"},
		{"date", dateParam, []string{"recordedDate"}, "when recorded"},
	},
	"MedicationRequest": {
		patientRef, subjectRef, encounterRef,
		{"status", tokenParam, []string{"status"}, "status"},
		{"intent", tokenParam, []string{"intent"}, "order, plan, ..."},
		{"code", tokenParam, []string{"medicationCodeableConcept"}, "the medication (system|code)"},
		{"medication", referenceParam, []string{"medicationReference"}, "a Medication reference"},
		{"category", tokenParam, []string{"category"}, "inpatient, outpatient, community, discharge"},
		{"authoredon", dateParam, []string{"authoredOn"}, "when written"},
	},
	"Immunization": {
		patientRef,
		{"status", tokenParam, []string{"status"}, "completed, not-done, entered-in-error"},
		{"vaccine-code", tokenParam, []string{"vaccineCode"}, "the vaccine (CVX)"},
		{"date", dateParam, []string{"occurrenceDateTime"}, "when given"},
	},
	"Procedure": {
		patientRef, subjectRef, encounterRef,
		{"code", tokenParam, []string{"code"}, "the procedure (system|code)"},
		{"status", tokenParam, []string{"status"}, "status"},
		{"category", tokenParam, []string{"category"}, "category"},
		{"date", dateParam, []string{"performedDateTime", "performedPeriod"}, "when performed"},
	},
	"Encounter": {
		patientRef, subjectRef,
		{"identifier", tokenParam, []string{"identifier"}, "an identifier"},
		{"status", tokenParam, []string{"status"}, "status"},
		{"class", tokenParam, []string{"class"}, "inpatient, ambulatory, emergency, ..."},
		{"type", tokenParam, []string{"type"}, "the encounter type"},
		{"date", dateParam, []string{"period"}, "when it took place"},
	},
	"DiagnosticReport": {
		patientRef, subjectRef, encounterRef,
		{"category", tokenParam, []string{"category"}, "LAB, RAD, ..."},
		{"code", tokenParam, []string{"code"}, "the report (system|code)"},
		{"status", tokenParam, []string{"status"}, "status"},
		{"date", dateParam, effective, "clinically relevant time"},
	},
	"ServiceRequest": {
		patientRef, subjectRef, encounterRef,
		{"code", tokenParam, []string{"code"}, "what is ordered"},
		{"status", tokenParam, []string{"status"}, "status"},
		{"intent", tokenParam, []string{"intent"}, "order, plan, ..."},
		{"category", tokenParam, []string{"category"}, "category"},
		{"authored", dateParam, []string{"authoredOn"}, "when ordered"},
		{"identifier", tokenParam, []string{"identifier"}, "placer or filler number"},
	},
	"Specimen": {
		{"patient", referenceParam, []string{"subject"}, "the patient (a served Patient id)"}, subjectRef,
		{"type", tokenParam, []string{"type"}, "the kind of specimen"},
		{"status", tokenParam, []string{"status"}, "status"},
		{"collected", dateParam, []string{"collection.collectedDateTime", "collection.collectedPeriod"}, "when collected"},
		{"identifier", tokenParam, []string{"identifier"}, "an identifier"},
	},
	"RelatedPerson": {
		patientRef,
		{"name", stringParam, []string{"name"}, "any part of the name"},
		{"relationship", tokenParam, []string{"relationship"}, "the relationship to the patient"},
	},
	"Coverage": {
		{"patient", referenceParam, []string{"beneficiary"}, "the patient covered (a served Patient id)"},
		{"beneficiary", referenceParam, []string{"beneficiary"}, "the patient covered"},
		{"status", tokenParam, []string{"status"}, "status"},
		{"type", tokenParam, []string{"type"}, "the kind of coverage"},
		{"identifier", tokenParam, []string{"identifier"}, "member or policy number"},
	},
	"Appointment": {
		{"patient", referenceParam, []string{"participant.actor"}, "a patient taking part (a served Patient id)"},
		{"status", tokenParam, []string{"status"}, "proposed, booked, cancelled, ..."},
		{"date", dateParam, []string{"start"}, "when it starts"},
		{"service-type", tokenParam, []string{"serviceType"}, "the service"},
		{"identifier", tokenParam, []string{"identifier"}, "an identifier"},
	},
	"Provenance": {
		{"patient", referenceParam, []string{"target"}, "the patient whose resources it traces (a served Patient id)"},
		{"target", referenceParam, []string{"target"}, "a resource it traces"},
		{"recorded", dateParam, []string{"recorded"}, "when recorded"},
	},
	"DocumentReference": {
		patientRef, subjectRef, encounterRef,
		{"category", tokenParam, []string{"category"}, "the category"},
		{"type", tokenParam, []string{"type"}, "the document type"},
		{"status", tokenParam, []string{"status"}, "current, superseded, entered-in-error"},
		{"date", dateParam, []string{"date"}, "when the reference was created"},
		{"period", dateParam, []string{"context.period"}, "the time the document covers"},
	},
}

// ServedTypes are the resource types the API serves: Patient, the ten
// chart types ehrgate syncs, and what HL7 v2 feeds add to a patient's
// record (orders, specimens, contacts, coverage, appointments, the
// Provenance of each message).
var ServedTypes = []string{
	"Patient", "AllergyIntolerance", "Condition", "DiagnosticReport", "DocumentReference", "Encounter",
	"Immunization", "MedicationRequest", "Observation", "Procedure",
	"Appointment", "Coverage", "Provenance", "RelatedPerson", "ServiceRequest", "Specimen",
}

func init() {
	slices.Sort(ServedTypes[1:])
}

// lookupParam finds the named parameter of typ.
func lookupParam(typ, name string) (param, bool) {
	for _, p := range commonParams {
		if p.name == name {
			return p, true
		}
	}
	for _, p := range searchParams[typ] {
		if p.name == name {
			return p, true
		}
	}
	return param{}, false
}

// compartmentParam is the parameter naming the patient of typ's resources
// ("" for Patient itself).
func compartmentParam(typ string) string {
	if typ == "Patient" {
		return ""
	}
	return "patient"
}

// values walks path (dotted element names) through a decoded resource,
// flattening arrays, and returns what it reaches.
func values(v any, path string) []any {
	cur := []any{v}
	for _, name := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			switch x := m[name].(type) {
			case nil:
			case []any:
				next = append(next, x...)
			default:
				next = append(next, x)
			}
		}
		cur = next
	}
	return cur
}
