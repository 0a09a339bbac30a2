// Package risk computes published clinical risk scores and care gaps from
// ehrgate's normalized model (package normalize), for the population
// pipeline (issue 17).
//
// Two rules are implemented, each with its source cited where it is
// encoded:
//
//   - RuleAFAnticoagulation: for patients with atrial fibrillation, the
//     CHA₂DS₂-VASc score (Lip et al., Chest 2010) and the gap "score calls
//     for oral anticoagulation, none active" (2019 AHA/ACC/HRS focused
//     update: men ≥ 2, women ≥ 3).
//   - RuleDiabetesHbA1c: for patients with active diabetes, the gap "no
//     HbA1c (LOINC 4548-4 and its HbA1c siblings) in the 12 months before
//     the evaluation" (ADA Standards of Care: at least twice a year).
//
// Nothing is guessed. Every result says which inputs it used, with the
// resource and the code each came from. When an input cannot be known (no
// birth date or sex, a source that does not expose conditions, a result
// without a date) the result is not computable, with the reason: an absent
// input never counts as "no".
package risk

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"ehrgate/fhir"
	"ehrgate/normalize"
)

// Rule names a rule and its version; the version changes whenever what it
// computes changes, so that results say which logic made them.
type Rule struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Title   string `json:"title"`
	Source  string `json:"source"`
}

// The rules.
var (
	RuleAFAnticoagulation = Rule{Name: "af-anticoagulation", Version: "1",
		Title: "Atrial fibrillation: CHA2DS2-VASc calls for oral anticoagulation, none active",
		Source: "CHA2DS2-VASc: Lip GYH et al., Chest 2010;137:263-272. Threshold: January CT et al., " +
			"2019 AHA/ACC/HRS focused update, Circulation 2019;140:e125-e151 (men >= 2, women >= 3)"}
	RuleDiabetesHbA1c = Rule{Name: "diabetes-hba1c", Version: "1",
		Title: "Diabetes without an HbA1c in 12 months",
		Source: "ADA Standards of Care in Diabetes-2024, section 6 (A1C at least twice a year); " +
			"LOINC 4548-4, 17856-6, 4549-2"}
)

// ScoreCHA2DS2VASc names the CHA₂DS₂-VASc score itself, as written back
// for each patient with atrial fibrillation whose score is computable (a
// derived Observation).
var ScoreCHA2DS2VASc = Rule{Name: "cha2ds2-vasc", Version: "1", Title: "CHA2DS2-VASc score",
	Source: "Lip GYH et al., Chest 2010;137:263-272"}

// Rules lists every rule, in evaluation order.
var Rules = []Rule{RuleAFAnticoagulation, RuleDiabetesHbA1c}

// Chart is what the rules read of one patient: the normalized resources
// of one source, and the resource types that source could not give.
type Chart struct {
	Patient            normalize.Patient
	Conditions         []normalize.Condition
	Observations       []normalize.Observation
	MedicationRequests []normalize.MedicationRequest
	// Unavailable maps a resource type the source does not expose, or
	// whose fetch failed, to a user-safe reason. A type listed here is
	// unknown, not empty.
	Unavailable map[string]string
}

// Evidence is one input of a result and where it came from.
type Evidence struct {
	Item    string         `json:"item"`              // what it shows, e.g. "hypertension"
	Source  *normalize.Ref `json:"source,omitempty"`  // the resource it came from
	System  string         `json:"system,omitempty"`  // the code that matched
	Code    string         `json:"code,omitempty"`    //
	Display string         `json:"display,omitempty"` //
	Date    string         `json:"date,omitempty"`    // its date, when it has one
	Value   string         `json:"value,omitempty"`   // e.g. the age, the sex
	// Mapping says how a code was reached when the source did not send it
	// (normalize.Concept.Mapping: local-map, ndc, text).
	Mapping string `json:"mapping,omitempty"`
}

// Item is one component of a score.
type Item struct {
	Name     string     `json:"name"`
	Points   int        `json:"points"`
	Present  bool       `json:"present"`
	Evidence []Evidence `json:"evidence,omitempty"`
}

// Score is a computed score, or why it could not be computed.
type Score struct {
	Name       string `json:"name"`
	Computable bool   `json:"computable"`
	Reason     string `json:"reason,omitempty"` // why not computable
	Value      int    `json:"value"`
	Items      []Item `json:"items,omitempty"`
}

// Explain renders the score with its items, e.g. "CHA2DS2-VASc 3 (age 65-74
// +1, hypertension +1, female +1)".
func (s Score) Explain() string {
	if !s.Computable {
		return s.Name + " not computable: " + s.Reason
	}
	var parts []string
	for _, it := range s.Items {
		if it.Present && it.Points > 0 {
			parts = append(parts, fmt.Sprintf("%s +%d", it.Name, it.Points))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%s %d (no risk factor)", s.Name, s.Value)
	}
	return fmt.Sprintf("%s %d (%s)", s.Name, s.Value, strings.Join(parts, ", "))
}

// Finding is one rule's result for one patient in its cohort.
type Finding struct {
	Rule       Rule   `json:"rule"`
	Patient    string `json:"patient"`
	Computable bool   `json:"computable"`
	Reason     string `json:"reason,omitempty"` // why not computable
	// Open is true when the gap is open (a Flag is due); false when the
	// patient is in the cohort without a gap, or not computable.
	Open bool `json:"open"`
	// Summary is the user-facing text: the gap and its inputs.
	Summary  string     `json:"summary"`
	Score    *Score     `json:"score,omitempty"`
	Evidence []Evidence `json:"evidence,omitempty"`
}

// Evaluate runs every rule over c as of asOf and returns a Finding for each
// rule whose cohort holds the patient (none when it is in no cohort).
func Evaluate(c Chart, asOf time.Time) []Finding {
	var out []Finding
	if f, ok := afAnticoagulation(c, asOf); ok {
		out = append(out, f)
	}
	if f, ok := diabetesHbA1c(c, asOf); ok {
		out = append(out, f)
	}
	return out
}

// counts reports whether a condition may be used as evidence: not refuted
// and not entered in error.
func counts(cd normalize.Condition) bool {
	return cd.VerificationStatus != "refuted" && cd.VerificationStatus != "entered-in-error"
}

// findCondition returns evidence of each condition in s (active only when
// activeOnly).
func findCondition(c Chart, s codeSet, activeOnly bool) []Evidence {
	var ev []Evidence
	for i := range c.Conditions {
		cd := &c.Conditions[i]
		if !counts(*cd) || (activeOnly && !cd.Active) {
			continue
		}
		if m, ok := s.match(cd.Code); ok {
			ref := cd.Source
			ev = append(ev, Evidence{Item: s.name, Source: &ref, System: m.System, Code: m.Code,
				Display: m.Display, Date: cd.Onset})
		}
	}
	return ev
}

// CHA2DS2VASc computes the CHA₂DS₂-VASc score (Lip et al., Chest 2010) of
// c as of asOf: congestive heart failure 1, hypertension 1, age ≥ 75 2,
// diabetes 1, stroke/TIA/thromboembolism 2, vascular disease 1, age 65–74
// 1, female sex 1. History items count when any non-refuted Condition
// carries a code of the item's set (history of, not only active). It is
// not computable without conditions from the source, a birth date precise
// enough to place the age band, or a sex of male or female.
func CHA2DS2VASc(c Chart, asOf time.Time) Score {
	s := Score{Name: "CHA2DS2-VASc"}
	if why, ok := c.Unavailable["Condition"]; ok {
		s.Reason = "the source's conditions are not available (" + why + ")"
		return s
	}
	lo, hi, err := ageRange(c.Patient.BirthDate, asOf)
	if err != nil {
		s.Reason = err.Error()
		return s
	}
	if ageBand(lo) != ageBand(hi) {
		s.Reason = fmt.Sprintf("the birth date %q does not tell whether the age band is %s or %s", c.Patient.BirthDate, bandName(lo), bandName(hi))
		return s
	}
	var female bool
	switch c.Patient.Gender {
	case "female":
		female = true
	case "male":
	case "":
		s.Reason = "no administrative sex recorded"
		return s
	default:
		// CHA2DS2-VASc's sex category is female or male; "other" and
		// "unknown" cannot be placed.
		s.Reason = fmt.Sprintf("administrative sex %q is neither female nor male", c.Patient.Gender)
		return s
	}
	pref := &normalize.Ref{Connection: c.Patient.Source.Connection, Type: "Patient", ID: c.Patient.Source.ID, VersionID: c.Patient.Source.VersionID}
	add := func(name string, points int, ev []Evidence) {
		it := Item{Name: name, Points: points, Present: len(ev) > 0, Evidence: ev}
		if it.Present {
			s.Value += points
		}
		s.Items = append(s.Items, it)
	}
	add("congestive heart failure", 1, findCondition(c, setCHF, false))
	add("hypertension", 1, findCondition(c, setHTN, false))
	ageEv := []Evidence{{Item: "age", Source: pref, Date: c.Patient.BirthDate, Value: bandName(lo)}}
	switch ageBand(lo) {
	case 2:
		add("age 75 or over", 2, ageEv)
		add("age 65-74", 1, nil)
	case 1:
		add("age 75 or over", 2, nil)
		add("age 65-74", 1, ageEv)
	default:
		add("age 75 or over", 2, nil)
		add("age 65-74", 1, nil)
	}
	add("diabetes mellitus", 1, findCondition(c, setDM, false))
	add("stroke, TIA or thromboembolism", 2, findCondition(c, setStroke, false))
	add("vascular disease", 1, findCondition(c, setVascular, false))
	var sexEv []Evidence
	if female {
		sexEv = []Evidence{{Item: "sex", Source: pref, Value: "female"}}
	}
	add("female", 1, sexEv)
	s.Computable = true
	return s
}

// ageRange returns the youngest and oldest age the patient can be at asOf
// given a FHIR birth date of any precision.
func ageRange(birth string, asOf time.Time) (lo, hi int, err error) {
	if birth == "" {
		return 0, 0, fmt.Errorf("no birth date recorded")
	}
	first, err := fhir.ParseDateTime(birth)
	if err != nil {
		return 0, 0, fmt.Errorf("the birth date %q is not a date", birth)
	}
	last := first
	switch len(birth) {
	case 4:
		last = first.AddDate(1, 0, -1)
	case 7:
		last = first.AddDate(0, 1, -1)
	}
	if first.After(asOf) {
		return 0, 0, fmt.Errorf("the birth date %q is after the evaluation date", birth)
	}
	return age(last, asOf), age(first, asOf), nil
}

// age is the age in whole years at asOf of someone born on birth.
func age(birth, asOf time.Time) int {
	y := asOf.Year() - birth.Year()
	if asOf.Month() < birth.Month() || (asOf.Month() == birth.Month() && asOf.Day() < birth.Day()) {
		y--
	}
	return y
}

// ageBand is the score's age points: 0 under 65, 1 for 65–74, 2 from 75.
func ageBand(a int) int {
	switch {
	case a >= 75:
		return 2
	case a >= 65:
		return 1
	}
	return 0
}

func bandName(a int) string {
	return [...]string{"under 65", "65-74", "75 or over"}[ageBand(a)]
}

// anticoagulationThreshold is the score from which oral anticoagulation is
// recommended: 2 for men, 3 for women (January CT et al., 2019 AHA/ACC/HRS
// focused update of the 2014 AF guideline, Circulation 2019;140:e125-e151,
// recommendation 4.1.1, class I).
func anticoagulationThreshold(female bool) int {
	if female {
		return 3
	}
	return 2
}

// afAnticoagulation is RuleAFAnticoagulation: in the cohort when an active
// atrial fibrillation condition is recorded.
func afAnticoagulation(c Chart, asOf time.Time) (Finding, bool) {
	af := findCondition(c, setAF, true)
	if len(af) == 0 {
		return Finding{}, false
	}
	f := Finding{Rule: RuleAFAnticoagulation, Patient: c.Patient.Source.ID, Evidence: af}
	s := CHA2DS2VASc(c, asOf)
	f.Score = &s
	if !s.Computable {
		f.Reason = s.Reason
		f.Summary = "Atrial fibrillation; " + s.Explain()
		return f, true
	}
	female := c.Patient.Gender == "female"
	need := anticoagulationThreshold(female)
	if s.Value < need {
		f.Computable = true
		f.Summary = fmt.Sprintf("Atrial fibrillation; %s is below %d: anticoagulation not called for", s.Explain(), need)
		return f, true
	}
	if why, ok := c.Unavailable["MedicationRequest"]; ok {
		f.Reason = "the source's medication orders are not available (" + why + ")"
		f.Summary = "Atrial fibrillation; " + s.Explain() + "; whether an anticoagulant is active is not known"
		return f, true
	}
	f.Computable = true
	for i := range c.MedicationRequests {
		m := &c.MedicationRequests[i]
		if !m.Active {
			continue
		}
		if name, ok := anticoagulant(*m); ok {
			ref := m.Source
			f.Evidence = append(f.Evidence, Evidence{Item: "active oral anticoagulant", Source: &ref,
				System: m.Medication.System, Code: m.Medication.Code, Display: name, Date: m.AuthoredOn})
			f.Summary = fmt.Sprintf("Atrial fibrillation; %s; on %s", s.Explain(), name)
			return f, true
		}
	}
	f.Open = true
	f.Summary = fmt.Sprintf("Atrial fibrillation with %s (threshold %d): no active oral anticoagulant", s.Explain(), need)
	return f, true
}

// anticoagulant reports the oral anticoagulant ingredient of m, by its
// RxNorm ingredient.
func anticoagulant(m normalize.MedicationRequest) (string, bool) {
	if m.Ingredient != nil {
		if name, ok := anticoagulants[m.Ingredient.Code]; ok {
			return name, true
		}
	}
	for _, cd := range append([]normalize.Coding{{System: m.Medication.System, Code: m.Medication.Code}}, m.Medication.Original...) {
		if cd.System == "http://www.nlm.nih.gov/research/umls/rxnorm" {
			if name, ok := anticoagulants[cd.Code]; ok {
				return name, true
			}
		}
	}
	return "", false
}

// nonStandard returns a concept's mapping unless the source sent the
// standard code itself.
func nonStandard(m string) string {
	if m == normalize.MappingStandard {
		return ""
	}
	return m
}

// diabetesHbA1c is RuleDiabetesHbA1c: in the cohort when an active diabetes
// condition is recorded; the gap is open when no HbA1c result is dated
// within the 12 months before asOf. A result counts when its code is an
// HbA1c LOINC code, sent by the source or reached by the terminology chain
// (the connection's local map, the text matcher at its threshold); the
// evidence says which.
func diabetesHbA1c(c Chart, asOf time.Time) (Finding, bool) {
	dm := findCondition(c, setDM, true)
	if len(dm) == 0 {
		return Finding{}, false
	}
	f := Finding{Rule: RuleDiabetesHbA1c, Patient: c.Patient.Source.ID, Evidence: dm}
	if why, ok := c.Unavailable["Observation"]; ok {
		f.Reason = "the source's observations are not available (" + why + ")"
		f.Summary = "Diabetes; whether an HbA1c was done is not known"
		return f, true
	}
	from := asOf.AddDate(-1, 0, 0)
	var last *Evidence
	var lastAt time.Time
	undated := 0
	for i := range c.Observations {
		o := &c.Observations[i]
		if o.Code.System != "http://loinc.org" || !slices.Contains(hba1cLOINC, o.Code.Code) {
			continue
		}
		if o.Status == "entered-in-error" || o.Status == "cancelled" || o.Value == nil {
			continue
		}
		at, err := fhir.ParseDateTime(o.Effective)
		if err != nil {
			undated++
			continue
		}
		if at.After(asOf) || (last != nil && !at.After(lastAt)) {
			continue
		}
		ref := o.Source
		last, lastAt = &Evidence{Item: "HbA1c", Source: &ref, System: o.Code.System, Code: o.Code.Code, Date: o.Effective,
			Mapping: nonStandard(o.Code.Mapping)}, at
	}
	if last != nil && !lastAt.Before(from) {
		f.Computable = true
		f.Evidence = append(f.Evidence, *last)
		f.Summary = "Diabetes; HbA1c on " + last.Date[:min(10, len(last.Date))]
		return f, true
	}
	if undated > 0 {
		f.Reason = "an HbA1c result has no date"
		f.Summary = "Diabetes; an HbA1c result has no date"
		return f, true
	}
	f.Computable, f.Open = true, true
	if last != nil {
		f.Evidence = append(f.Evidence, *last)
		f.Summary = "Diabetes without an HbA1c in 12 months (last " + last.Date[:min(10, len(last.Date))] + ")"
	} else {
		f.Summary = "Diabetes without an HbA1c in 12 months (none on record)"
	}
	return f, true
}

// WithdrawalStatus is the Flag status (http://hl7.org/fhir/R4/valueset-flag-status.html)
// that withdraws an earlier result of rule for a patient no longer flagged:
// "entered-in-error" when every condition that put the patient in the
// rule's cohort is now refuted or entered in error (the flag should never
// have been raised), else "inactive" (the gap closed or the patient left
// the cohort).
func WithdrawalStatus(c Chart, rule string) string {
	set := setAF
	if rule == RuleDiabetesHbA1c.Name {
		set = setDM
	}
	erroneous := false
	for _, cd := range c.Conditions {
		if _, ok := set.match(cd.Code); !ok {
			continue
		}
		if counts(cd) {
			return "inactive"
		}
		erroneous = true
	}
	if erroneous {
		return "entered-in-error"
	}
	return "inactive"
}
