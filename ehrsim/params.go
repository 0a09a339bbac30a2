package ehrsim

import "sort"

// paramType is a FHIR search parameter type as named in the
// CapabilityStatement (http://hl7.org/fhir/R4/search.html#ptypes).
type paramType string

// The search parameter types the simulator evaluates.
const (
	paramToken     paramType = "token"
	paramReference paramType = "reference"
	paramDate      paramType = "date"
	paramString    paramType = "string"
)

// paramDef defines one search parameter of one resource type: what kind of
// value it is and where in the resource its values come from.
type paramDef struct {
	name string
	typ  paramType
	// paths are dotted element paths from the resource root; arrays are
	// flattened at every step. Choice types list each variant
	// (effectiveDateTime, effectivePeriod).
	paths []string
	// target is the resource type a bare reference value ("123") means, and
	// the type _include follows for references without a type.
	target string
	// patient marks the reference parameter whose Patient references feed
	// the per-patient index, so that searches on it skip scanning.
	patient bool
	// onlyTarget drops references to other types than target: "patient"
	// reads subject but only where the subject is a Patient.
	onlyTarget bool
	// doc is the CapabilityStatement documentation of a parameter whose
	// meaning differs from the FHIR R4 definition.
	doc string
}

func tok(name string, paths ...string) paramDef {
	if len(paths) == 0 {
		paths = []string{name}
	}
	return paramDef{name: name, typ: paramToken, paths: paths}
}

func date(name string, paths ...string) paramDef {
	return paramDef{name: name, typ: paramDate, paths: paths}
}

func str(name string, paths ...string) paramDef {
	return paramDef{name: name, typ: paramString, paths: paths}
}

func ref(name, target string, paths ...string) paramDef {
	return paramDef{name: name, typ: paramReference, paths: paths, target: target}
}

// patientRef is the "patient" parameter read from the given element.
func patientRef(path string) paramDef {
	return paramDef{name: "patient", typ: paramReference, paths: []string{path}, target: "Patient", patient: true, onlyTarget: true}
}

// subjectRef is the "subject" parameter. A bare id means a Patient (most
// simulated subjects are patients); "Group/7" finds other subjects.
func subjectRef() paramDef {
	return paramDef{name: "subject", typ: paramReference, paths: []string{"subject"}, target: "Patient", patient: true}
}

// Parameters every type supports, besides the result controls (_count,
// _include, _format and the paging cursor).
var commonParams = []paramDef{
	{name: "_id", typ: paramToken},
	{name: "_lastUpdated", typ: paramDate},
}

// builtinParams is the search parameter table: which parameters each
// resource type supports. A type that is loaded but not listed here gets
// defaultParams. Names follow FHIR R4 except where doc says otherwise.
var builtinParams = map[string][]paramDef{
	"Patient": {
		str("name", "name.family", "name.given", "name.text", "name.prefix", "name.suffix"),
		str("family", "name.family"),
		str("given", "name.given"),
		date("birthdate", "birthDate"),
		tok("identifier"),
		tok("gender"),
	},
	"Observation": {
		patientRef("subject"), subjectRef(),
		tok("category"), tok("code"), tok("status"), tok("identifier"),
		date("date", "effectiveDateTime", "effectivePeriod", "effectiveInstant"),
		ref("encounter", "Encounter", "encounter"),
	},
	"Condition": {
		patientRef("subject"), subjectRef(),
		tok("category"), tok("code"),
		tok("clinical-status", "clinicalStatus"), tok("verification-status", "verificationStatus"),
		date("onset-date", "onsetDateTime", "onsetPeriod"),
		date("recorded-date", "recordedDate"),
		ref("encounter", "Encounter", "encounter"),
		withDoc(date("date", "onsetDateTime", "onsetPeriod"), "simulator extension: same as onset-date"),
	},
	"AllergyIntolerance": {
		patientRef("patient"),
		tok("category"), tok("code"),
		tok("clinical-status", "clinicalStatus"), tok("verification-status", "verificationStatus"),
		date("date", "recordedDate"),
	},
	"MedicationRequest": {
		patientRef("subject"), subjectRef(),
		tok("status"), tok("intent"), tok("category"),
		tok("code", "medicationCodeableConcept"),
		ref("medication", "Medication", "medicationReference"),
		date("authoredon", "authoredOn"),
		ref("encounter", "Encounter", "encounter"),
		withDoc(date("date", "authoredOn"), "simulator extension: same as authoredon (R4 date is the dosage timing)"),
	},
	"Medication": {
		tok("code"), tok("status"),
	},
	"DiagnosticReport": {
		patientRef("subject"), subjectRef(),
		tok("category"), tok("code"), tok("status"),
		date("date", "effectiveDateTime", "effectivePeriod"),
		date("issued", "issued"),
		ref("result", "Observation", "result"),
		ref("encounter", "Encounter", "encounter"),
	},
	"Encounter": {
		patientRef("subject"), subjectRef(),
		tok("status"), tok("class"), tok("type"),
		date("date", "period"),
	},
	"Procedure": {
		patientRef("subject"), subjectRef(),
		tok("status"), tok("category"), tok("code"),
		date("date", "performedDateTime", "performedPeriod"),
		ref("encounter", "Encounter", "encounter"),
	},
	"Immunization": {
		patientRef("patient"),
		tok("status"), tok("vaccine-code", "vaccineCode"),
		date("date", "occurrenceDateTime"),
	},
	"DocumentReference": {
		patientRef("subject"), subjectRef(),
		tok("status"), tok("category"), tok("type"), tok("identifier"),
		date("date", "date"),
		ref("encounter", "Encounter", "context.encounter"),
	},

	// Types ehrgate writes back (write.go): searched by business
	// identifier for conditional creates (If-None-Exist).
	"Flag": {
		patientRef("subject"), subjectRef(),
		tok("status"), tok("category"), tok("code"), tok("identifier"),
	},
	"Task": {
		patientRef("for"), tok("status"), tok("code"), tok("identifier"),
	},
	"Communication": {
		patientRef("subject"), subjectRef(), tok("status"), tok("category"), tok("identifier"),
	},
	"Provenance": {
		ref("target", "", "target"),
	},
}

// defaultParams serve a loaded type the table does not list.
var defaultParams = []paramDef{
	{name: "patient", typ: paramReference, paths: []string{"subject", "patient"}, target: "Patient", patient: true, onlyTarget: true},
	tok("status"),
}

func withDoc(d paramDef, doc string) paramDef {
	d.doc = doc
	return d
}

// paramSet is the parameters of one resource type, by name.
type paramSet map[string]*paramDef

// paramSets holds a paramSet per type of builtinParams, built once.
var paramSets = func() map[string]paramSet {
	m := make(map[string]paramSet, len(builtinParams)+1)
	for typ, defs := range builtinParams {
		m[typ] = newParamSet(defs)
	}
	return m
}()

var defaultParamSet = newParamSet(defaultParams)

func newParamSet(defs []paramDef) paramSet {
	ps := make(paramSet, len(defs)+len(commonParams))
	for _, d := range commonParams {
		ps[d.name] = &d
	}
	for _, d := range defs {
		ps[d.name] = &d
	}
	return ps
}

// paramsFor returns the parameters of a resource type.
func paramsFor(resourceType string) paramSet {
	if ps, ok := paramSets[resourceType]; ok {
		return ps
	}
	return defaultParamSet
}

// sortedNames returns the parameter names in order.
func (ps paramSet) sortedNames() []string {
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// patientParam returns the parameter feeding the per-patient index, or nil.
func (ps paramSet) patientParam() *paramDef {
	if d, ok := ps["patient"]; ok && d.patient {
		return d
	}
	return nil
}

// builtinTypes returns the types of the search parameter table.
func builtinTypes() []string {
	types := make([]string, 0, len(builtinParams))
	for t := range builtinParams {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}
