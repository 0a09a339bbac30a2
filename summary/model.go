// Package summary builds a clinical summary of one patient, or of one
// person across connections (identity's person: several (connection,
// patient) pairs), from the normalized data in the store: problems,
// active medications (stale orders marked), allergies, recent vital signs
// and labs with their trend, and recent encounters.
//
// Every statement cites its sources (connection, resource type and id,
// date). A fact two sources both hold (the same problem or allergy by
// code, the same medication by code and date, the same result by code,
// time and value, the same encounter by start, class and type) is one
// statement with both sources. A section a source does not provide says
// so per source (Coverage): "not available" (the source does not expose
// the type), "could not be fetched", "not fetched" or "withheld" are never
// shown as "none recorded".
//
// Build reads the model; Markdown renders it for people and language
// models, Fit trims it to a token budget (least important statements
// first, counting what it left out), and IPS renders it as an
// International Patient Summary document Bundle.
package summary

// Source cites where a statement comes from.
type Source struct {
	Connection string `json:"connection"`
	Type       string `json:"type"`
	ID         string `json:"id"`
	Date       string `json:"date,omitempty"` // YYYY-MM-DD, when the resource has a clinical date
}

// Section states, per source (Coverage.State) and for a whole section
// (Section.State: StateData when it has items, else the sources' state
// when they agree, else StateMixed).
const (
	StateData         = "data"          // items to show
	StateNone         = "none"          // fetched and available: nothing recorded
	StateNotAvailable = "not-available" // the source does not expose the type
	StateFailed       = "failed"        // the last fetch failed
	StateNotFetched   = "not-fetched"   // no fetch state recorded
	StateWithheld     = "withheld"      // the caller may not read the type
	StateMixed        = "mixed"         // no items; the sources differ (see Coverage)
)

// Coverage is what one source says about one section.
type Coverage struct {
	Connection string `json:"connection"`
	State      string `json:"state"`
	Detail     string `json:"detail,omitempty"` // the fetch state's user-safe detail
	// FetchError is set when the section has this source's items but its
	// last fetch failed (the items may be out of date).
	FetchError string `json:"fetchError,omitempty"`
}

// Section is the common part of every section.
type Section struct {
	State    string     `json:"state"`
	Coverage []Coverage `json:"coverage"`
	// Omitted counts the items Fit left out for the token budget; Limited
	// counts those Build left out by its limits (older results and
	// encounters, inactive orders).
	Omitted int `json:"omitted,omitempty"`
	Limited int `json:"limited,omitempty"`
}

// Code is a coded concept reduced to its chosen coding.
type Code struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`
}

// Problem is a condition.
type Problem struct {
	Text    string   `json:"text"`
	Code    Code     `json:"code"`
	Active  bool     `json:"active"`
	Status  string   `json:"status,omitempty"` // clinicalStatus
	Onset   string   `json:"onset,omitempty"`
	Sources []Source `json:"sources"`
}

// Medication is an active medication order.
type Medication struct {
	Text        string   `json:"text"`
	Code        Code     `json:"code"`
	Status      string   `json:"status,omitempty"`
	Dosage      string   `json:"dosage,omitempty"`
	AuthoredOn  string   `json:"authoredOn,omitempty"`
	Stale       bool     `json:"stale,omitempty"`
	StaleReason string   `json:"staleReason,omitempty"`
	Sources     []Source `json:"sources"`
}

// Allergy is an allergy or intolerance.
type Allergy struct {
	Substance   string   `json:"substance"`
	Code        Code     `json:"code"`
	Active      bool     `json:"active"`
	Status      string   `json:"status,omitempty"`
	Criticality string   `json:"criticality,omitempty"`
	Reactions   []string `json:"reactions,omitempty"`
	Sources     []Source `json:"sources"`
}

// Point is one result value.
type Point struct {
	Value string `json:"value"` // as shown: "7.1 %", "128/82 mm[Hg]", "positive"
	// Number is the value compared for the trend (canonical unit when
	// known; systolic for blood pressures); nil when not numeric.
	Number *float64 `json:"number,omitempty"`
	Unit   string   `json:"unit,omitempty"` // the unit of Number
	Date   string   `json:"date,omitempty"` // effective, as received
	Flag   string   `json:"flag,omitempty"` // interpretation (H, L, ...)
	// Quantity is the value as received when it is a quantity; Systolic
	// and Diastolic (with Quantity.Unit) hold a blood pressure.
	Quantity  *Quantity `json:"quantity,omitempty"`
	Systolic  *float64  `json:"systolic,omitempty"`
	Diastolic *float64  `json:"diastolic,omitempty"`
	Sources   []Source  `json:"sources"`
}

// Quantity is a number with its unit as received (a UCUM code when the
// source gave one).
type Quantity struct {
	Value      float64 `json:"value"`
	Comparator string  `json:"comparator,omitempty"`
	Unit       string  `json:"unit,omitempty"`
	UCUM       bool    `json:"ucum,omitempty"` // Unit is a UCUM code
}

// Result is the last value of one vital sign or lab, with the previous
// one and the direction between them.
type Result struct {
	Name     string `json:"name"`
	Code     Code   `json:"code"`
	Last     Point  `json:"last"`
	Previous *Point `json:"previous,omitempty"`
	// Trend is "up", "down" or "same" when both values are numbers in
	// the same unit, else "".
	Trend string `json:"trend,omitempty"`
	Count int    `json:"count"` // distinct results of this code
}

// Encounter is a visit.
type Encounter struct {
	Start   string   `json:"start,omitempty"`
	End     string   `json:"end,omitempty"`
	Class   string   `json:"class,omitempty"`
	Type    string   `json:"type,omitempty"`
	Status  string   `json:"status,omitempty"`
	Sources []Source `json:"sources"`
}

// Patient is the summarized patient's demographics (no name or MRN: the
// summary cites the records instead).
type Patient struct {
	Gender    string   `json:"gender,omitempty"`
	BirthDate string   `json:"birthDate,omitempty"`
	Deceased  bool     `json:"deceased,omitempty"`
	Sources   []Source `json:"sources"`
}

// Summary is the clinical summary of one patient or person.
type Summary struct {
	Person      string            `json:"person,omitempty"` // identity's person id, when built for one
	AsOf        string            `json:"asOf"`             // YYYY-MM-DD
	Patient     Patient           `json:"patient"`
	Problems    ProblemSection    `json:"problems"`
	Medications MedicationSection `json:"medications"`
	Allergies   AllergySection    `json:"allergies"`
	Vitals      ResultSection     `json:"vitalSigns"`
	Labs        ResultSection     `json:"labs"`
	Encounters  EncounterSection  `json:"encounters"`
	// Budget is set by Fit when a token budget was applied.
	Budget *Budget `json:"budget,omitempty"`
}

// ProblemSection lists problems, active first.
type ProblemSection struct {
	Section
	Items []Problem `json:"items"`
}

// MedicationSection lists active medication orders.
type MedicationSection struct {
	Section
	Items []Medication `json:"items"`
}

// AllergySection lists allergies, active first.
type AllergySection struct {
	Section
	Items []Allergy `json:"items"`
}

// ResultSection lists vital signs or labs, most recent first.
type ResultSection struct {
	Section
	Items []Result `json:"items"`
}

// EncounterSection lists encounters, most recent first.
type EncounterSection struct {
	Section
	Items []Encounter `json:"items"`
}
