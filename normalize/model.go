// Package normalize turns vendor-shaped FHIR R4 resources into one clinical
// model that application code can use without knowing which EHR or coding
// produced it. It never invents data: every field the source lacked is listed
// in Missing, and values are never guessed.
//
// Normalize is the entry point. Each of the ten modelled resource types
// (Patient, Encounter, Condition, Observation, MedicationRequest,
// AllergyIntolerance, Immunization, Procedure, DiagnosticReport,
// DocumentReference) is decoded into a purpose-built struct holding only the
// elements read here; every other type becomes an *Other carrying Common.
//
// Coded concepts are reduced by package terminology: the coding in the most
// preferred system for the context (Condition.code: SNOMED CT, then
// ICD-10-CM; Observation.code: LOINC; medications: RxNorm, then NDC;
// vaccines: CVX; ...), else any standard system, else the first coding with a
// code. Concept.Standard is true only when the chosen system is standard
// (LOINC, SNOMED CT, ICD-10-CM, RxNorm, CVX, UCUM, CPT; NDC is not).
//
// Missing uses the model's JSON field names. Per type it can list:
// Patient name, birthDate, gender, mrn; Encounter status, class, start;
// Condition code, clinicalStatus, onset; Observation code, value, effective,
// status (value is not missing for panels with components or hasMember, nor
// when dataAbsentReason explains it: Value.Kind is then "absent");
// MedicationRequest medication, status, authoredOn, dosage;
// AllergyIntolerance substance, clinicalStatus; Immunization vaccine, status,
// occurrence; Procedure code, status, performed; DiagnosticReport code,
// status, effective; DocumentReference type, status, date, content.
//
// The terminology chain (Normalizer) then decides how each clinical code is
// mapped, in order: a standard code as is; the connection's local-code map;
// for medications, NDC to RxNorm; for Observation.code, the text matcher at
// or above its threshold; else unmapped, keeping the original codes and
// text (Concept.Mapping and Confidence say which). Quantities get a
// canonical-unit value beside the original, blood pressures are available
// directly (Observation.BloodPressure), conditions get clinical groups,
// medication orders get their RxNorm level, ingredient and a stale flag.
// DeriveBMI and MergeConditions work across a patient's resources.
//
// Extensions: the US Core Patient extensions fill Patient fields (Race,
// Ethnicity, BirthSex, GenderIdentity, Sex, TribalAffiliation,
// InterpreterNeeded); other US Core extensions and those a vendor profile
// registers (RegisterExtensions; package ehr does it for every profile) land
// in Common.Extensions; the URLs of the rest are kept in
// Common.UnknownExtensions for the quality report. A medication order's
// period (Start, End) comes from its dosage bounds or its validity period,
// never from a guess.
//
// Not done here: resolving medicationReference to a non-contained Medication.
package normalize

// Ref links a normalized resource to the raw resource it came from.
type Ref struct {
	Connection string `json:"connection,omitempty"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	VersionID  string `json:"versionId,omitempty"`
}

// Concept is a coded concept reduced to its best standard coding, keeping the
// original codings and text.
type Concept struct {
	System   string   `json:"system,omitempty"`   // the chosen coding's system
	Code     string   `json:"code,omitempty"`     // the chosen coding's code
	Display  string   `json:"display,omitempty"`  // the chosen coding's display
	Text     string   `json:"text,omitempty"`     // CodeableConcept.text or best label
	Standard bool     `json:"standard,omitempty"` // chosen coding is LOINC, SNOMED CT, ICD-10-CM, RxNorm, CVX...
	Original []Coding `json:"original,omitempty"` // every coding as received, exact duplicates dropped
	// Mapping says how System and Code were reached: MappingStandard,
	// MappingLocal, MappingNDC, MappingText or MappingUnmapped ("" for
	// concepts outside the terminology chain, such as value codes).
	Mapping string `json:"mapping,omitempty"`
	// Confidence is 1 for standard, local-map and NDC mappings, the text
	// matcher's score for text mappings, and 0 when unmapped.
	Confidence float64 `json:"confidence,omitempty"`
}

// How a Concept was mapped (Concept.Mapping), in the order the terminology
// chain tries them.
const (
	MappingStandard = "standard"  // the source sent a standard code
	MappingLocal    = "local-map" // the connection's local-code map gave the standard code
	MappingNDC      = "ndc"       // an NDC was mapped to RxNorm (bundled table or online lookup)
	MappingText     = "text"      // the text matcher gave a code at or above the threshold
	MappingUnmapped = "unmapped"  // no standard code: original codes and text kept
)

// Coding is a compact copy of a FHIR Coding.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// Label returns the best human-readable label.
func (c Concept) Label() string {
	switch {
	case c.Text != "":
		return c.Text
	case c.Display != "":
		return c.Display
	default:
		return c.Code
	}
}

// Common carries the fields every normalized resource has.
type Common struct {
	Source    Ref      `json:"source"`
	PatientID string   `json:"patientId,omitempty"`
	Missing   []string `json:"missing,omitempty"` // fields the source did not provide
	// Extensions are the understood extensions of the resource (see
	// Extension) that have no model field of their own.
	Extensions []Extension `json:"extensions,omitempty"`
	// UnknownExtensions are the URLs of top-level extensions nobody
	// understands (not US Core, not registered by a vendor profile), each
	// once. They stay in the raw resource; the quality report counts them.
	UnknownExtensions []string `json:"unknownExtensions,omitempty"`
}

// Identifier is a business identifier.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
	Type   string `json:"type,omitempty"` // e.g. MR for medical record number
}

// Patient is a normalized patient.
type Patient struct {
	Common
	Name        string       `json:"name,omitempty"` // "Given Family"
	Family      string       `json:"family,omitempty"`
	Given       []string     `json:"given,omitempty"`
	BirthDate   string       `json:"birthDate,omitempty"`
	Gender      string       `json:"gender,omitempty"`
	MRN         string       `json:"mrn,omitempty"`
	Identifiers []Identifier `json:"identifiers,omitempty"`
	Address     string       `json:"address,omitempty"`
	Phone       string       `json:"phone,omitempty"`
	Email       string       `json:"email,omitempty"`
	Language    string       `json:"language,omitempty"`
	// Race and Ethnicity are the US Core race and ethnicity extensions:
	// their text, else their OMB category displays joined with ", ".
	Race      string `json:"race,omitempty"`
	Ethnicity string `json:"ethnicity,omitempty"`
	// BirthSex is the US Core birth sex extension's code (F, M, UNK; in US
	// Core 6.1 also OTH and ASKU).
	BirthSex string `json:"birthSex,omitempty"`
	// GenderIdentity, Sex and InterpreterNeeded are the US Core
	// genderIdentity, sex and interpreter-needed extensions as text (a
	// coding's display, else its code).
	GenderIdentity    string `json:"genderIdentity,omitempty"`
	Sex               string `json:"sex,omitempty"`
	InterpreterNeeded string `json:"interpreterNeeded,omitempty"`
	// TribalAffiliation lists the US Core tribal affiliation extensions:
	// the tribe, with " (enrolled)" when isEnrolled is true.
	TribalAffiliation []string `json:"tribalAffiliation,omitempty"`
	Deceased          bool     `json:"deceased,omitempty"`
	// DeceasedDate is deceasedDateTime when the source gave one.
	DeceasedDate string `json:"deceasedDate,omitempty"`
}

// Encounter is a normalized encounter.
type Encounter struct {
	Common
	Status     string  `json:"status,omitempty"`
	Class      string  `json:"class,omitempty"` // AMB, IMP, EMER, VR, ...
	Type       Concept `json:"type,omitempty"`
	Telehealth bool    `json:"telehealth"`
	Start      string  `json:"start,omitempty"`
	End        string  `json:"end,omitempty"`
}

// Condition is a normalized condition (problem or diagnosis).
type Condition struct {
	Common
	Code               Concept  `json:"code"`
	Category           []string `json:"category,omitempty"`
	ClinicalStatus     string   `json:"clinicalStatus,omitempty"`
	VerificationStatus string   `json:"verificationStatus,omitempty"`
	Active             bool     `json:"active"`
	Onset              string   `json:"onset,omitempty"`
	Abatement          string   `json:"abatement,omitempty"`
	Recorded           string   `json:"recorded,omitempty"`
	// Groups are clinical groups of the code (hypertension, diabetes, ckd,
	// ...) from ICD-10-CM ranges and SNOMED CT concepts in any coding.
	Groups []string `json:"groups,omitempty"`
}

// Value is an observation value of any FHIR value type.
type Value struct {
	Kind       string   `json:"kind"` // quantity, concept, string, boolean, integer, range, ratio, period, time, datetime, sampled, absent
	Number     *float64 `json:"number,omitempty"`
	Comparator string   `json:"comparator,omitempty"`
	Unit       string   `json:"unit,omitempty"`
	UnitCode   string   `json:"unitCode,omitempty"`
	Concept    *Concept `json:"concept,omitempty"`
	Text       string   `json:"text,omitempty"`
	Bool       *bool    `json:"bool,omitempty"`
	Low        *float64 `json:"low,omitempty"`
	High       *float64 `json:"high,omitempty"`
	// Numerator and Denominator hold a ratio (kind "ratio"); Text renders it.
	Numerator   *float64 `json:"numerator,omitempty"`
	Denominator *float64 `json:"denominator,omitempty"`
	// Start and End hold a period (kind "period").
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// Canonical is a quantity converted to the canonical unit for its
	// analyte (kg, cm, Cel, mmol/L for glucose and cholesterol, umol/L for
	// creatinine, ...), set when the unit is known; Number and Unit keep
	// the original.
	Canonical *Canonical `json:"canonical,omitempty"`
}

// Canonical is a value converted to a canonical UCUM unit.
type Canonical struct {
	Number float64 `json:"number"`
	Unit   string  `json:"unit"` // UCUM code
}

// BP is a blood pressure with its systolic and diastolic values available
// directly, whichever shape the source used.
type BP struct {
	Systolic  *Value `json:"systolic,omitempty"`  // LOINC 8480-6
	Diastolic *Value `json:"diastolic,omitempty"` // LOINC 8462-4
	// From says where the values came from: "components" of a panel
	// (85354-9, 55284-4 or any observation with 8480-6/8462-4 components),
	// or "observation" for a lone systolic or diastolic observation.
	From string `json:"from"`
}

// Component is one part of a multi-part observation, such as the systolic
// value of a blood-pressure panel.
type Component struct {
	Code  Concept `json:"code"`
	Value Value   `json:"value"`
}

// Observation is a normalized observation (vital sign, lab result, ...).
type Observation struct {
	Common
	Status         string      `json:"status,omitempty"`
	Category       []string    `json:"category,omitempty"` // vital-signs, laboratory, ...
	Code           Concept     `json:"code"`
	Effective      string      `json:"effective,omitempty"`
	Value          *Value      `json:"value,omitempty"`
	Components     []Component `json:"components,omitempty"`
	Interpretation string      `json:"interpretation,omitempty"`
	ReferenceRange string      `json:"referenceRange,omitempty"`
	BloodPressure  *BP         `json:"bloodPressure,omitempty"`
	// Derived marks an observation ehrgate computed (such as BMI from weight
	// and height) rather than received; DerivedFrom names its inputs.
	Derived     bool  `json:"derived,omitempty"`
	DerivedFrom []Ref `json:"derivedFrom,omitempty"`
}

// MedicationRequest is a normalized medication order.
type MedicationRequest struct {
	Common
	Medication Concept `json:"medication"`
	Status     string  `json:"status,omitempty"`
	Intent     string  `json:"intent,omitempty"`
	AuthoredOn string  `json:"authoredOn,omitempty"`
	Dosage     string  `json:"dosage,omitempty"`
	Active     bool    `json:"active"`
	// Start and End are the period the order covers, read from the
	// elements FHIR R4 defines, never guessed: dosage
	// timing.repeat.boundsPeriod, else dispenseRequest.validityPeriod;
	// PeriodFrom says which (PeriodDosageBounds, PeriodValidity). Either
	// may be empty: an order without an end has no known stop date.
	Start      string `json:"start,omitempty"`
	End        string `json:"end,omitempty"`
	PeriodFrom string `json:"periodFrom,omitempty"`
	// Stale marks an order still "active" with no activity (authoredOn)
	// within the quiet period (default one year); StaleReason says why.
	Stale       bool   `json:"stale,omitempty"`
	StaleReason string `json:"staleReason,omitempty"`
	// DrugLevel is the RxNorm level of Medication: "clinical-drug" (SCD),
	// "branded-drug" (SBD) or "ingredient" (IN), when known.
	DrugLevel  string  `json:"drugLevel,omitempty"`
	Ingredient *Coding `json:"ingredient,omitempty"` // the RxNorm ingredient, when known
}

// AllergyIntolerance is a normalized allergy or intolerance.
type AllergyIntolerance struct {
	Common
	Substance      Concept `json:"substance"`
	ClinicalStatus string  `json:"clinicalStatus,omitempty"`
	// VerificationStatus is unconfirmed, confirmed, refuted or entered-in-error.
	VerificationStatus string   `json:"verificationStatus,omitempty"`
	Criticality        string   `json:"criticality,omitempty"`
	Category           []string `json:"category,omitempty"`
	Reactions          []string `json:"reactions,omitempty"`
	Recorded           string   `json:"recorded,omitempty"`
	Active             bool     `json:"active"`
}

// Immunization is a normalized immunization.
type Immunization struct {
	Common
	Vaccine    Concept `json:"vaccine"`
	Status     string  `json:"status,omitempty"`
	Occurrence string  `json:"occurrence,omitempty"`
}

// Procedure is a normalized procedure.
type Procedure struct {
	Common
	Code      Concept `json:"code"`
	Status    string  `json:"status,omitempty"`
	Performed string  `json:"performed,omitempty"`
}

// DiagnosticReport is a normalized diagnostic report.
type DiagnosticReport struct {
	Common
	Code          Concept  `json:"code"`
	Status        string   `json:"status,omitempty"`
	Category      []string `json:"category,omitempty"`
	Effective     string   `json:"effective,omitempty"`
	Results       int      `json:"results"`
	NarrativeOnly bool     `json:"narrativeOnly"`
	Conclusion    string   `json:"conclusion,omitempty"`
}

// DocumentReference is a normalized clinical document pointer.
type DocumentReference struct {
	Common
	Type        Concept `json:"type"`
	Status      string  `json:"status,omitempty"`
	Date        string  `json:"date,omitempty"`
	ContentType string  `json:"contentType,omitempty"`
	Title       string  `json:"title,omitempty"`
}
