package normalize

import (
	"strings"

	"ehrgate/terminology"
)

// The wire types below are purpose-built subsets of the FHIR R4 data types in
// package fhir: only the elements normalize reads are decoded, and decimals
// are strict (see decimal).

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type codeableConcept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text"`
}

func (c *codeableConcept) isZero() bool { return c == nil || (len(c.Coding) == 0 && c.Text == "") }

// code returns the code of the first coding in system, else of the first
// coding with a code, else "".
func (c *codeableConcept) code(system string) string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if cd.System == system && cd.Code != "" {
			return cd.Code
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

// label is the concept's text, else first display, else first code.
func (c *codeableConcept) label() string {
	if c == nil {
		return ""
	}
	if c.Text != "" {
		return c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != "" {
			return cd.Display
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

type reference struct {
	Reference string `json:"reference"`
	Type      string `json:"type"`
	Display   string `json:"display"`
}

type quantity struct {
	Value      decimal `json:"value"`
	Comparator string  `json:"comparator"`
	Unit       string  `json:"unit"`
	System     string  `json:"system"`
	Code       string  `json:"code"`
}

// unit is the human unit, else the coded unit.
func (q *quantity) unit() string {
	if q.Unit != "" {
		return q.Unit
	}
	return q.Code
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type valueRange struct {
	Low  *quantity `json:"low"`
	High *quantity `json:"high"`
}

type narrative struct {
	Div string `json:"div"`
}

// concept reduces a CodeableConcept to its best coding for ctx: the first
// coding in the context's most preferred system, else the first coding in
// any standard system, else the first coding with a code. Original keeps
// every coding received, dropping exact duplicates.
func concept(ctx terminology.Context, c *codeableConcept) Concept {
	if c == nil {
		return Concept{}
	}
	out := Concept{Text: c.Text}
	if len(c.Coding) == 0 {
		return out
	}
	out.Original = make([]Coding, 0, len(c.Coding))
	for i, cd := range c.Coding {
		if dupCoding(c.Coding[:i], cd) {
			continue
		}
		out.Original = append(out.Original, Coding{System: cd.System, Code: cd.Code, Display: cd.Display})
	}
	best := -1
	rank := 1 << 30
	for i, cd := range c.Coding {
		if cd.Code == "" {
			continue
		}
		sys := terminology.Canonical(cd.System)
		r := 1<<30 - 1 // any coding with a code
		if terminology.IsStandard(sys) {
			r = 1<<30 - 2
		}
		for p, want := range terminology.Preferred(ctx) {
			if sys == want {
				r = p
				break
			}
		}
		if r < rank {
			best, rank = i, r
		}
	}
	if best < 0 {
		return out
	}
	cd := c.Coding[best]
	out.System = terminology.Canonical(cd.System)
	out.Code = cd.Code
	out.Display = cd.Display
	if out.Display == "" {
		// A duplicate of the chosen coding may carry the display.
		for _, o := range c.Coding {
			if o.Code == cd.Code && o.Display != "" && terminology.Canonical(o.System) == out.System {
				out.Display = o.Display
				break
			}
		}
	}
	out.Standard = terminology.IsStandard(out.System)
	return out
}

func dupCoding(seen []coding, cd coding) bool {
	for _, s := range seen {
		if s == cd {
			return true
		}
	}
	return false
}

// categories returns the codes of a list of category concepts, preferring
// codings in system, deduplicated, in order.
func categories(system string, cs []codeableConcept) []string {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, 0, len(cs))
	for i := range cs {
		code := cs[i].code(system)
		if code == "" {
			code = cs[i].Text
		}
		if code == "" || contains(out, code) {
			continue
		}
		out = append(out, code)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// missing collects the names of absent fields.
type missing []string

func (m *missing) check(absent bool, name string) {
	if absent {
		*m = append(*m, name)
	}
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// joinNonEmpty joins the non-empty strings with sep.
func joinNonEmpty(sep string, ss ...string) string {
	var b strings.Builder
	for _, s := range ss {
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(s)
	}
	return b.String()
}
