package terminology

import (
	"fmt"
	"io"
	"strings"
)

// Conversion converts a value in one unit to a canonical unit:
// canonical = value*Factor + Offset.
type Conversion struct {
	From   string  // UCUM code of the source unit
	To     string  // UCUM code of the canonical unit
	Factor float64 // multiplier
	Offset float64 // added after multiplying (temperatures)
	// Analyte is true when the conversion is specific to the observation's
	// code (molar-mass conversions such as glucose mg/dL -> mmol/L).
	Analyte bool
}

// Apply converts v.
func (c Conversion) Apply(v float64) float64 { return v*c.Factor + c.Offset }

type unitKey struct{ loinc, unit string }

// UnitTable finds the conversion of an observation value to its canonical
// unit. Read-only after loading; safe for concurrent use.
type UnitTable struct {
	conv  map[unitKey]Conversion // loinc "" for generic rows; folded units
	exact map[unitKey]Conversion // the same, unfolded spellings (fast path)
}

// unitNorm folds a unit for matching: lower case, no spaces.
func unitNorm(u string) string {
	u = strings.TrimSpace(u)
	if u == "" {
		return ""
	}
	return strings.ToLower(strings.ReplaceAll(u, " ", ""))
}

// LoadUnits reads a unit table: CSV with columns loinc (space-separated LOINC
// codes, empty for a generic row), from, to, factor, offset (decimals or
// fractions a/b) and aliases (semicolon-separated other spellings of from).
func LoadUnits(r io.Reader) (*UnitTable, error) {
	tb, err := newCSVTable(r, ',', "loinc", "from", "to", "factor", "offset")
	if err != nil {
		return nil, fmt.Errorf("loading units: %w", err)
	}
	t := &UnitTable{conv: map[unitKey]Conversion{}, exact: map[unitKey]Conversion{}}
	for {
		ok, err := tb.next()
		if err != nil {
			return nil, fmt.Errorf("loading units: %w", err)
		}
		if !ok {
			return t, nil
		}
		factor, err := parseNumber(tb.get("factor"))
		if err != nil {
			return nil, fmt.Errorf("loading units: line %d: factor: %w", tb.line, err)
		}
		offset := 0.0
		if s := tb.get("offset"); s != "" {
			if offset, err = parseNumber(s); err != nil {
				return nil, fmt.Errorf("loading units: line %d: offset: %w", tb.line, err)
			}
		}
		codes := strings.Fields(tb.get("loinc"))
		c := Conversion{From: tb.get("from"), To: tb.get("to"), Factor: factor, Offset: offset, Analyte: len(codes) > 0}
		if len(codes) == 0 {
			codes = []string{""}
		}
		spellings := append([]string{c.From}, splitList(tb.get("aliases"), ';')...)
		for _, code := range codes {
			for _, u := range spellings {
				k := unitKey{code, unitNorm(u)}
				if prev, dup := t.conv[k]; dup && prev != c {
					return nil, fmt.Errorf("loading units: line %d: unit listed twice for one code", tb.line)
				}
				t.conv[k] = c
				t.exact[unitKey{code, u}] = c // the spelling as written: no folding needed
			}
		}
	}
}

// Find returns the conversion for a value of observation code loinc in unit
// (a UCUM code or a human spelling; unitCode is tried first). Analyte rows
// for loinc win over generic rows; a unit that is analyte-specific for other
// codes (mg/dL) is never converted generically.
func (t *UnitTable) Find(loinc, unitCode, unit string) (Conversion, bool) {
	for _, u := range [2]string{unitCode, unit} {
		if u == "" {
			continue
		}
		if loinc != "" {
			if c, ok := t.exact[unitKey{loinc, u}]; ok {
				return c, true
			}
		}
		if c, ok := t.exact[unitKey{"", u}]; ok {
			return c, true
		}
		n := unitNorm(u)
		if n == "" {
			continue
		}
		if loinc != "" {
			if c, ok := t.conv[unitKey{loinc, n}]; ok {
				return c, true
			}
		}
		if c, ok := t.conv[unitKey{"", n}]; ok {
			return c, true
		}
	}
	return Conversion{}, false
}
