package terminology

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// System URIs used by the condition tables.
const (
	SystemSNOMED   = "http://snomed.info/sct"
	SystemICD10CM  = "http://hl7.org/fhir/sid/icd-10-cm"
	SystemLOINC    = "http://loinc.org"
	SystemRxNorm   = "http://www.nlm.nih.gov/research/umls/rxnorm"
	SystemNDC      = "http://hl7.org/fhir/sid/ndc"
	SystemCVX      = "http://hl7.org/fhir/sid/cvx"
	SystemUCUM     = "http://unitsofmeasure.org"
	systemICDShort = "icd-10-cm"
	systemSCTShort = "snomed"
)

type icdRange struct {
	from, to string // 3-character categories, inclusive
	category string
}

// ConditionTable holds condition categories (from ICD-10-CM ranges and
// SNOMED CT concepts) and SNOMED CT <-> ICD-10-CM equivalences. Read-only
// after loading; safe for concurrent use.
type ConditionTable struct {
	ranges  []icdRange
	snomed  map[string][]string // SNOMED CT code -> categories
	sctICD  map[string]string   // SNOMED CT -> ICD-10-CM
	icdSCT  map[string]string   // ICD-10-CM (dotted, upper case) -> SNOMED CT
	display map[string]string   // SNOMED CT -> display
}

func (t *ConditionTable) loadCategories(r io.Reader) error {
	tb, err := newCSVTable(r, ',', "category", "system", "from", "to")
	if err != nil {
		return err
	}
	t.snomed = map[string][]string{}
	for {
		ok, err := tb.next()
		if err != nil || !ok {
			return err
		}
		cat, from, to := tb.get("category"), tb.get("from"), tb.get("to")
		switch tb.get("system") {
		case systemICDShort:
			if len(from) != 3 || len(to) != 3 || from > to {
				return fmt.Errorf("line %d: ICD-10-CM range must be two 3-character categories in order", tb.line)
			}
			t.ranges = append(t.ranges, icdRange{from: strings.ToUpper(from), to: strings.ToUpper(to), category: cat})
		case systemSCTShort:
			t.snomed[from] = append(t.snomed[from], cat)
		default:
			return fmt.Errorf("line %d: unknown system (want icd-10-cm or snomed)", tb.line)
		}
	}
}

func (t *ConditionTable) loadEquivalences(r io.Reader) error {
	tb, err := newCSVTable(r, ',', "snomed", "icd10cm")
	if err != nil {
		return err
	}
	t.sctICD, t.icdSCT, t.display = map[string]string{}, map[string]string{}, map[string]string{}
	for {
		ok, err := tb.next()
		if err != nil || !ok {
			return err
		}
		sct, icd := tb.get("snomed"), strings.ToUpper(tb.get("icd10cm"))
		if _, dup := t.sctICD[sct]; dup {
			return fmt.Errorf("line %d: SNOMED CT code listed twice", tb.line)
		}
		t.sctICD[sct] = icd
		if _, dup := t.icdSCT[icd]; !dup {
			// Several SNOMED CT concepts can share a default ICD-10-CM
			// target; the first listed is the canonical one.
			t.icdSCT[icd] = sct
		}
		t.display[sct] = tb.get("display")
	}
}

// Categories returns the condition categories (hypertension, diabetes, ...)
// of a coding, sorted, or nil. system may be any known spelling.
func (t *ConditionTable) Categories(system, code string) []string {
	var out []string
	switch Canonical(system) {
	case SystemICD10CM:
		c := strings.ToUpper(code)
		if len(c) < 3 {
			return nil
		}
		cat := c[:3]
		for _, r := range t.ranges {
			if cat >= r.from && cat <= r.to && !contains(out, r.category) {
				out = append(out, r.category)
			}
		}
	case SystemSNOMED:
		for _, c := range t.snomed[code] {
			if !contains(out, c) {
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out
}

// EquivalenceKey returns a key shared by every coding of one concept in the
// equivalence table: "sct:<SNOMED CT code>" for a SNOMED CT code or an
// ICD-10-CM code listed in the table, else "<system>|<code>" (ICD-10-CM codes
// upper-cased). Conditions with equal keys are the same concept.
func (t *ConditionTable) EquivalenceKey(system, code string) string {
	sys := Canonical(system)
	switch sys {
	case SystemSNOMED:
		return "sct:" + code
	case SystemICD10CM:
		c := strings.ToUpper(code)
		if sct, ok := t.icdSCT[c]; ok {
			return "sct:" + sct
		}
		return sys + "|" + c
	}
	return sys + "|" + code
}

// ICD10CMFor returns the ICD-10-CM equivalent of a SNOMED CT code.
func (t *ConditionTable) ICD10CMFor(snomed string) (string, bool) {
	c, ok := t.sctICD[snomed]
	return c, ok
}

// SNOMEDFor returns the SNOMED CT equivalent of an ICD-10-CM code.
func (t *ConditionTable) SNOMEDFor(icd string) (string, bool) {
	c, ok := t.icdSCT[strings.ToUpper(icd)]
	return c, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ICD10CMCode is one entry of the ICD-10-CM order file.
type ICD10CMCode struct {
	Code     string // without the dot, as in the order file: "E119"
	Billable bool   // header flag 1: valid for HIPAA-covered transactions
	Short    string
	Long     string
}

// Dotted returns the code with its dot ("E11.9").
func (c ICD10CMCode) Dotted() string {
	if len(c.Code) <= 3 {
		return c.Code
	}
	return c.Code[:3] + "." + c.Code[3:]
}

// LoadICD10CMOrder reads the CMS/NCHS ICD-10-CM order file
// (icd10cm_order_YYYY.txt), fixed width: order number (columns 1-5), code
// (7-13, left-aligned, no dot), header flag 0/1 (15), short description
// (17-76), long description (78-end).
func LoadICD10CMOrder(r io.Reader) ([]ICD10CMCode, error) {
	var out []ICD10CMCode
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("loading ICD-10-CM order file: %w", err)
	}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) < 17 || (line[14] != '0' && line[14] != '1') {
			return nil, fmt.Errorf("loading ICD-10-CM order file: line %d: not in the order-file layout", n+1)
		}
		c := ICD10CMCode{Code: strings.TrimSpace(line[6:13]), Billable: line[14] == '1'}
		if len(line) > 77 {
			c.Short = strings.TrimSpace(line[16:76])
			c.Long = strings.TrimSpace(line[77:])
		} else {
			c.Short = strings.TrimSpace(line[16:])
			c.Long = c.Short
		}
		if c.Code == "" {
			return nil, fmt.Errorf("loading ICD-10-CM order file: line %d: empty code", n+1)
		}
		out = append(out, c)
	}
	return out, nil
}

// CVXCode is one vaccine from CDC's CVX table.
type CVXCode struct {
	Code        string
	Short       string
	Full        string
	Status      string // Active, Inactive, Non-US, Never Active, Pending
	NonVaccine  bool
	LastUpdated string
}

// LoadCVX reads CDC's cvx.txt (https://www2a.cdc.gov/vaccines/iis/iisstandards/vaccines.asp?rpt=cvx):
// pipe-delimited, no header, columns CVX code | short description | full
// vaccine name | note | status | internal id | nonvaccine | update date.
func LoadCVX(r io.Reader) ([]CVXCode, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("loading CVX: %w", err)
	}
	var out []CVXCode
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 5 {
			return nil, fmt.Errorf("loading CVX: line %d: %d fields, want at least 5", n+1, len(f))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		c := CVXCode{Code: f[0], Short: f[1], Full: f[2], Status: f[4]}
		if len(f) > 6 {
			c.NonVaccine = strings.EqualFold(f[6], "true")
		}
		if len(f) > 7 {
			c.LastUpdated = f[7]
		}
		if c.Code == "" {
			return nil, fmt.Errorf("loading CVX: line %d: empty code", n+1)
		}
		out = append(out, c)
	}
	return out, nil
}
