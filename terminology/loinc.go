package terminology

import (
	"fmt"
	"io"
	"strings"
)

// LOINCEntry is one LOINC term with the names a text matcher can use.
type LOINCEntry struct {
	Code      string   // LOINC_NUM, e.g. "2345-7"
	Component string   // COMPONENT, e.g. "Glucose"
	System    string   // SYSTEM (specimen), e.g. "Ser/Plas"
	Class     string   // CLASS, e.g. "CHEM"
	ShortName string   // SHORTNAME, e.g. "Glucose SerPl-mCnc"
	LongName  string   // LONG_COMMON_NAME
	Related   []string // RELATEDNAMES2 (semicolon-separated synonyms), and vendor names from LIVD
}

// Names returns every name of the entry a matcher may compare text with.
func (e *LOINCEntry) Names() []string {
	out := make([]string, 0, 3+len(e.Related))
	for _, s := range append([]string{e.Component, e.ShortName, e.LongName}, e.Related...) {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// LoadLOINC reads LOINC terms from the official LOINC table file (Loinc.csv
// from the LOINC release: comma-separated, double-quoted, header row). Columns
// are found by name: LOINC_NUM and LONG_COMMON_NAME are required; COMPONENT,
// SYSTEM, CLASS, SHORTNAME and RELATEDNAMES2 are used when present, others are
// ignored. Deprecated terms (STATUS DEPRECATED) are skipped. The bundled table
// data/loinc.csv is read by this same loader.
func LoadLOINC(r io.Reader) ([]LOINCEntry, error) {
	t, err := newCSVTable(r, ',', "LOINC_NUM", "LONG_COMMON_NAME")
	if err != nil {
		return nil, fmt.Errorf("loading LOINC: %w", err)
	}
	var out []LOINCEntry
	for {
		ok, err := t.next()
		if err != nil {
			return nil, fmt.Errorf("loading LOINC: %w", err)
		}
		if !ok {
			return out, nil
		}
		if strings.EqualFold(t.get("STATUS"), "DEPRECATED") {
			continue
		}
		code := t.get("LOINC_NUM")
		if !validLOINC(code) {
			return nil, fmt.Errorf("loading LOINC: line %d: LOINC_NUM is not a LOINC code", t.line)
		}
		out = append(out, LOINCEntry{
			Code:      code,
			Component: t.get("COMPONENT"),
			System:    t.get("SYSTEM"),
			Class:     t.get("CLASS"),
			ShortName: t.get("SHORTNAME"),
			LongName:  t.get("LONG_COMMON_NAME"),
			Related:   splitList(t.get("RELATEDNAMES2"), ';'),
		})
	}
}

// LoadLIVD reads the LOINC terms of a LIVD (LOINC In Vitro Diagnostic) test
// mapping file in the CSV form CDC publishes (for example
// LIVD-SARS-CoV-2.csv): "Test Performed LOINC Code", "Test Performed LOINC
// Long Name", "Component" and "Vendor Analyte Name", which becomes a related
// name. Rows with no LOINC code are skipped; rows for one code are merged.
func LoadLIVD(r io.Reader) ([]LOINCEntry, error) {
	t, err := newCSVTable(r, ',', "Test Performed LOINC Code", "Test Performed LOINC Long Name")
	if err != nil {
		return nil, fmt.Errorf("loading LIVD: %w", err)
	}
	index := map[string]int{}
	var out []LOINCEntry
	for {
		ok, err := t.next()
		if err != nil {
			return nil, fmt.Errorf("loading LIVD: %w", err)
		}
		if !ok {
			return out, nil
		}
		code := t.get("Test Performed LOINC Code")
		if !validLOINC(code) {
			continue
		}
		i, seen := index[code]
		if !seen {
			i = len(out)
			index[code] = i
			out = append(out, LOINCEntry{Code: code, LongName: t.get("Test Performed LOINC Long Name"), Component: t.get("Component"), System: t.get("System")})
		}
		if v := t.get("Vendor Analyte Name"); v != "" && !containsFold(out[i].Related, v) {
			out[i].Related = append(out[i].Related, v)
		}
	}
}

// validLOINC reports whether s has the form of a LOINC code: digits, a
// hyphen and one check digit.
func validLOINC(s string) bool {
	num, check, ok := strings.Cut(s, "-")
	if !ok || len(num) == 0 || len(num) > 7 || len(check) != 1 {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	return check[0] >= '0' && check[0] <= '9'
}

func splitList(s string, sep byte) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, string(sep)) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
