package summary

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Markdown renders the summary as compact, deterministic Markdown: one
// line per statement, each ending with its citations in brackets
// ("[connection Type/id date; ...]"), and, per section, a line for every
// source that holds none of its items saying why (none recorded, not
// available from this source, could not be fetched, not fetched yet,
// withheld), so an absence is never read as "none".
func Markdown(s *Summary) []byte {
	var b bytes.Buffer
	b.WriteString("# Clinical summary\n")
	fmt.Fprintf(&b, "As of %s.", s.AsOf)
	if s.Person != "" {
		fmt.Fprintf(&b, " Person %s.", s.Person)
	}
	var demo []string
	if s.Patient.Gender != "" {
		demo = append(demo, s.Patient.Gender)
	}
	if s.Patient.BirthDate != "" {
		demo = append(demo, "born "+s.Patient.BirthDate)
	}
	if s.Patient.Deceased {
		demo = append(demo, "deceased")
	}
	if len(demo) > 0 {
		fmt.Fprintf(&b, " Patient: %s.", strings.Join(demo, ", "))
	}
	fmt.Fprintf(&b, " Records %s.\n", cite(s.Patient.Sources))
	b.WriteString("Citations: [connection Type/id date].\n")
	if bu := s.Budget; bu != nil && !bu.Fits {
		fmt.Fprintf(&b, "Token budget %d: over it even with every statement left out.\n", bu.MaxTokens)
	}
	if bu := s.Budget; bu != nil && bu.Omitted > 0 {
		fmt.Fprintf(&b, "Token budget %d: %d statements left out, least important first (oldest encounters, then labs, inactive problems, vital signs, ...).\n", bu.MaxTokens, bu.Omitted)
	}
	section := func(title string, lines []string, notes []string) {
		fmt.Fprintf(&b, "\n## %s\n", title)
		for _, l := range lines {
			b.WriteString("- " + l + "\n")
		}
		for _, l := range notes {
			b.WriteString(l + "\n")
		}
	}
	section("Problems", mapLines(s.Problems.Items, problemLine), notes(&s.Problems.Section, "problems", ""))
	section("Active medications", mapLines(s.Medications.Items, medicationLine), notes(&s.Medications.Section, "medications", "inactive order"))
	section("Allergies", mapLines(s.Allergies.Items, allergyLine), notes(&s.Allergies.Section, "allergies", ""))
	section("Vital signs (last; previous; trend)", mapLines(s.Vitals.Items, resultLine), notes(&s.Vitals.Section, "vital signs", "older vital sign"))
	section("Labs (last; previous; trend)", mapLines(s.Labs.Items, resultLine), notes(&s.Labs.Section, "labs", "older lab"))
	section("Recent encounters", mapLines(s.Encounters.Items, encounterLine), notes(&s.Encounters.Section, "encounters", "older encounter"))
	return b.Bytes()
}

func mapLines[T any](items []T, f func(T) string) []string {
	out := make([]string, len(items))
	for i, x := range items {
		out[i] = f(x)
	}
	return out
}

func problemLine(p Problem) string {
	status := p.Status
	if status == "" {
		status = map[bool]string{true: "active", false: "inactive"}[p.Active]
	}
	s := p.Text + codeText(p.Code) + ", " + status
	if p.Onset != "" {
		s += ", onset " + p.Onset
	}
	return s + " " + cite(p.Sources)
}

func medicationLine(m Medication) string {
	s := m.Text + codeText(m.Code)
	if m.Dosage != "" {
		s += "; " + m.Dosage
	}
	if m.AuthoredOn != "" {
		s += "; ordered " + m.AuthoredOn
	}
	if m.Stale {
		s += "; STALE"
		if m.StaleReason != "" {
			s += " (" + m.StaleReason + ")"
		}
	}
	return s + " " + cite(m.Sources)
}

func allergyLine(a Allergy) string {
	status := a.Status
	if status == "" {
		status = map[bool]string{true: "active", false: "inactive"}[a.Active]
	}
	s := a.Substance + codeText(a.Code) + ", " + status
	if a.Criticality != "" {
		s += ", criticality " + a.Criticality
	}
	if len(a.Reactions) > 0 {
		s += "; reactions: " + strings.Join(a.Reactions, ", ")
	}
	return s + " " + cite(a.Sources)
}

func resultLine(r Result) string {
	s := r.Name + codeText(r.Code) + ": " + pointText(r.Last)
	if p := r.Previous; p != nil {
		s += "; previous " + pointText(*p)
	}
	if r.Trend != "" {
		s += "; " + r.Trend
	}
	return s
}

func encounterLine(e Encounter) string {
	s := orDash(day(e.Start))
	if e.End != "" && day(e.End) != day(e.Start) {
		s += " to " + day(e.End)
	}
	for _, x := range []string{e.Class, e.Type} {
		if x != "" {
			s += " " + x
		}
	}
	if e.Status != "" {
		s += " (" + e.Status + ")"
	}
	return s + " " + cite(e.Sources)
}

func pointText(p Point) string {
	s := p.Value
	if p.Flag != "" {
		s += " (" + p.Flag + ")"
	}
	if d := day(p.Date); d != "" {
		s += " on " + d
	}
	return s + " " + cite(p.Sources)
}

// notes says what the section left out and, for each source without
// items, why.
func notes(s *Section, what, limited string) []string {
	var out []string
	if s.Omitted > 0 {
		out = append(out, fmt.Sprintf("%d more %s left out for the token budget.", s.Omitted, what))
	}
	if s.Limited > 0 && limited != "" {
		out = append(out, fmt.Sprintf("%d %s not listed.", s.Limited, plural(s.Limited, limited, limited+"s")))
	}
	for _, c := range s.Coverage {
		switch {
		case c.State == StateData && c.FetchError != "":
			out = append(out, fmt.Sprintf("Source %s: the last fetch failed (%s); its items may be out of date.", c.Connection, c.FetchError))
		case c.State != StateData:
			out = append(out, fmt.Sprintf("Source %s: %s.", c.Connection, stateText(c)))
		}
	}
	return out
}

// stateText says a source's state in words.
func stateText(c Coverage) string {
	var s string
	switch c.State {
	case StateNone:
		return "none recorded"
	case StateNotAvailable:
		s = "not available from this source"
	case StateFailed:
		s = "could not be fetched"
	case StateWithheld:
		return "withheld (outside the access token's scopes)"
	default:
		return "not fetched yet"
	}
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// cite renders sources as "[conn Type/id date; ...]".
func cite(ss []Source) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.Connection + " " + s.Type + "/" + s.ID
		if s.Date != "" {
			parts[i] += " " + s.Date
		}
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// systemNames are short names of the code systems the summary shows.
var systemNames = map[string]string{
	"http://loinc.org":                            "LOINC",
	"http://snomed.info/sct":                      "SNOMED CT",
	"http://hl7.org/fhir/sid/icd-10-cm":           "ICD-10-CM",
	"http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
	"http://hl7.org/fhir/sid/ndc":                 "NDC",
	"http://hl7.org/fhir/sid/cvx":                 "CVX",
}

func codeText(c Code) string {
	if c.Code == "" {
		return ""
	}
	if n, ok := systemNames[c.System]; ok {
		return " (" + n + " " + c.Code + ")"
	}
	return " (local code " + c.Code + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// JSON renders the summary as compact JSON with a final newline; empty
// lists are [] rather than null.
func JSON(s *Summary) []byte {
	c := *s
	c.Problems.Items = nonNil(c.Problems.Items)
	c.Medications.Items = nonNil(c.Medications.Items)
	c.Allergies.Items = nonNil(c.Allergies.Items)
	c.Vitals.Items = nonNil(c.Vitals.Items)
	c.Labs.Items = nonNil(c.Labs.Items)
	c.Encounters.Items = nonNil(c.Encounters.Items)
	b, err := json.Marshal(&c)
	if err != nil {
		panic("summary: encoding: " + err.Error()) // plain data: cannot fail
	}
	return append(b, '\n')
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
