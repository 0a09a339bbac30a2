package terminology

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// csvTable reads a comma-separated table with a header row, skipping lines
// that start with '#'. Columns are addressed by header name; want lists the
// columns that must be present.
type csvTable struct {
	r    *csv.Reader
	cols map[string]int
	rec  []string
	line int
}

func newCSVTable(r io.Reader, comma rune, want ...string) (*csvTable, error) {
	cr := csv.NewReader(r)
	cr.Comma = comma
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	t := &csvTable{r: cr, cols: map[string]int{}}
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		t.cols[strings.ToLower(h)] = i
	}
	var missing []string
	for _, w := range want {
		if _, ok := t.cols[strings.ToLower(w)]; !ok {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("header lacks column(s) %s", strings.Join(missing, ", "))
	}
	return t, nil
}

// next advances to the next row; it returns false at the end or on error.
func (t *csvTable) next() (bool, error) {
	rec, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading row: %w", err)
	}
	t.rec = rec
	t.line, _ = t.r.FieldPos(0)
	return true, nil
}

// get returns the named column of the current row, trimmed, or "".
func (t *csvTable) get(col string) string {
	i, ok := t.cols[strings.ToLower(col)]
	if !ok || i >= len(t.rec) {
		return ""
	}
	return strings.TrimSpace(t.rec[i])
}

func (t *csvTable) has(col string) bool {
	_, ok := t.cols[strings.ToLower(col)]
	return ok
}

// parseNumber parses a decimal or a fraction "a/b".
func parseNumber(s string) (float64, error) {
	if a, b, ok := strings.Cut(s, "/"); ok {
		x, err := strconv.ParseFloat(a, 64)
		if err != nil {
			return 0, err
		}
		y, err := strconv.ParseFloat(b, 64)
		if err != nil || y == 0 {
			return 0, fmt.Errorf("bad fraction %q", s)
		}
		return x / y, nil
	}
	return strconv.ParseFloat(s, 64)
}

// bundled holds the embedded CSV tables, parsed once on first use.
type bundled struct {
	loinc      []LOINCEntry
	loincByNum map[string]*LOINCEntry
	drugs      *DrugTable
	conds      *ConditionTable
	units      *UnitTable
	matcher    *TextMatcher
}

var loadBundled = sync.OnceValue(func() *bundled {
	b, err := parseBundled()
	if err != nil {
		// Embedded and covered by tests: a failure is a build defect.
		panic(err)
	}
	return b
})

func parseBundled() (*bundled, error) {
	b := &bundled{loincByNum: map[string]*LOINCEntry{}}
	open := func(name string) (io.ReadCloser, error) {
		f, err := dataFS.Open(name)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", name, err)
		}
		return f, nil
	}
	f, err := open("data/loinc.csv")
	if err != nil {
		return nil, err
	}
	b.loinc, err = LoadLOINC(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("data/loinc.csv: %w", err)
	}
	for i := range b.loinc {
		b.loincByNum[b.loinc[i].Code] = &b.loinc[i]
	}
	b.matcher = NewTextMatcher(b.loinc)

	b.drugs = NewDrugTable()
	if f, err = open("data/rxnorm.csv"); err != nil {
		return nil, err
	}
	err = b.drugs.loadBundledDrugs(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("data/rxnorm.csv: %w", err)
	}
	if f, err = open("data/ndc_rxnorm.csv"); err != nil {
		return nil, err
	}
	err = b.drugs.loadBundledNDC(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("data/ndc_rxnorm.csv: %w", err)
	}

	b.conds = &ConditionTable{}
	if f, err = open("data/condition_categories.csv"); err != nil {
		return nil, err
	}
	err = b.conds.loadCategories(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("data/condition_categories.csv: %w", err)
	}
	if f, err = open("data/snomed_icd10cm.csv"); err != nil {
		return nil, err
	}
	err = b.conds.loadEquivalences(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("data/snomed_icd10cm.csv: %w", err)
	}

	if f, err = open("data/units.csv"); err != nil {
		return nil, err
	}
	b.units, err = LoadUnits(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("data/units.csv: %w", err)
	}
	return b, nil
}

// BundledLOINC returns the bundled LOINC entries (a curated subset of common
// laboratory tests and vital signs). The slice is shared; do not modify it.
func BundledLOINC() []LOINCEntry { return loadBundled().loinc }

// LOINCName returns the long common name of a bundled LOINC code.
func LOINCName(code string) (string, bool) {
	e, ok := loadBundled().loincByNum[code]
	if !ok {
		return "", false
	}
	return e.LongName, true
}

// BundledMatcher returns the text matcher built from the bundled LOINC table.
func BundledMatcher() *TextMatcher { return loadBundled().matcher }

// BundledDrugs returns the bundled RxNorm and NDC tables.
func BundledDrugs() *DrugTable { return loadBundled().drugs }

// BundledConditions returns the bundled condition categories and SNOMED CT
// to ICD-10-CM equivalences.
func BundledConditions() *ConditionTable { return loadBundled().conds }

// BundledUnits returns the bundled unit conversions.
func BundledUnits() *UnitTable { return loadBundled().units }
