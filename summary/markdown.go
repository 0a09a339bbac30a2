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
	if bu := s.Budget; bu != nil && bu.Omitted > 0 {
		fmt.Fprintf(&b, "Token budget %d: %d statements left out, least important first (oldest encounters, then labs, inactive problems, vital signs, ...).\n", bu.MaxTokens, bu.Omitted)
	}

	b.WriteString("\n## Problems\n")
	for _, p := range s.Problems.Items {
		status := p.Status
		if status == "" {
			status = map[bool]string{true: "active", false: "inactive"}[p.Active]
		}
		fmt.Fprintf(&b, "- %s%s, %s", p.Text, codeText(p.Code), status)
		if p.Onset != "" {
			fmt.Fprintf(&b, ", onset %s", p.Onset)
		}
		fmt.Fprintf(&b, " %s\n", cite(p.Sources))
	}
	tail(&b, &s.Problems.Section, "problems", "problems")

	b.WriteString("\n## Active medications\n")
	for _, m := range s.Medications.Items {
		fmt.Fprintf(&b, "- %s%s", m.Text, codeText(m.Code))
		if m.Dosage != "" {
			fmt.Fprintf(&b, "; %s", m.Dosage)
		}
		if m.AuthoredOn != "" {
			fmt.Fprintf(&b, "; ordered %s", m.AuthoredOn)
		}
		if m.Stale {
			b.WriteString("; STALE")
			if m.StaleReason != "" {
				fmt.Fprintf(&b, " (%s)", m.StaleReason)
			}
		}
		fmt.Fprintf(&b, " %s\n", cite(m.Sources))
	}
	if n := s.Medications.Limited; n > 0 {
		fmt.Fprintf(&b, "%d inactive %s not listed.\n", n, plural(n, "order", "orders"))
	}
	tail(&b, &s.Medications.Section, "medications", "")

	b.WriteString("\n## Allergies\n")
	for _, a := range s.Allergies.Items {
		status := a.Status
		if status == "" {
			status = map[bool]string{true: "active", false: "inactive"}[a.Active]
		}
		fmt.Fprintf(&b, "- %s%s, %s", a.Substance, codeText(a.Code), status)
		if a.Criticality != "" {
			fmt.Fprintf(&b, ", criticality %s", a.Criticality)
		}
		if len(a.Reactions) > 0 {
			fmt.Fprintf(&b, "; reactions: %s", strings.Join(a.Reactions, ", "))
		}
		fmt.Fprintf(&b, " %s\n", cite(a.Sources))
	}
	tail(&b, &s.Allergies.Section, "allergies", "allergies")

	b.WriteString("\n## Vital signs (last; previous; trend)\n")
	resultLines(&b, s.Vitals.Items)
	tail(&b, &s.Vitals.Section, "vital signs", "vital signs")

	b.WriteString("\n## Labs (last; previous; trend)\n")
	resultLines(&b, s.Labs.Items)
	tail(&b, &s.Labs.Section, "labs", "older lab codes")

	b.WriteString("\n## Recent encounters\n")
	for _, e := range s.Encounters.Items {
		fmt.Fprintf(&b, "- %s", orDash(day(e.Start)))
		if e.End != "" && day(e.End) != day(e.Start) {
			fmt.Fprintf(&b, " to %s", day(e.End))
		}
		for _, x := range []string{e.Class, e.Type} {
			if x != "" {
				fmt.Fprintf(&b, " %s", x)
			}
		}
		if e.Status != "" {
			fmt.Fprintf(&b, " (%s)", e.Status)
		}
		fmt.Fprintf(&b, " %s\n", cite(e.Sources))
	}
	tail(&b, &s.Encounters.Section, "encounters", "older encounters")
	return b.Bytes()
}

func resultLines(b *bytes.Buffer, rs []Result) {
	for _, r := range rs {
		fmt.Fprintf(b, "- %s%s: %s", r.Name, codeText(r.Code), pointText(r.Last))
		if p := r.Previous; p != nil {
			fmt.Fprintf(b, "; previous %s", pointText(*p))
		}
		if r.Trend != "" {
			fmt.Fprintf(b, "; %s", r.Trend)
		}
		b.WriteByte('\n')
	}
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

// tail writes what the section left out and, for each source without
// items, why.
func tail(b *bytes.Buffer, s *Section, what, limited string) {
	if s.Omitted > 0 {
		fmt.Fprintf(b, "%d more %s left out for the token budget.\n", s.Omitted, what)
	}
	if s.Limited > 0 && limited != "" {
		fmt.Fprintf(b, "%d %s not listed.\n", s.Limited, limited)
	}
	for _, c := range s.Coverage {
		switch {
		case c.State == StateData && c.FetchError != "":
			fmt.Fprintf(b, "Source %s: the last fetch failed (%s); its items may be out of date.\n", c.Connection, c.FetchError)
		case c.State != StateData:
			fmt.Fprintf(b, "Source %s: %s.\n", c.Connection, stateText(c))
		}
	}
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
