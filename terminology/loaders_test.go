package terminology

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openTestdata(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestLoadLOINC(t *testing.T) {
	got, err := LoadLOINC(openTestdata(t, "Loinc.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("LoadLOINC returned %d terms, want 2 (deprecated skipped)", len(got))
	}
	if got[1].Code != "718-7" || got[1].LongName != "Hemoglobin [Mass/volume] in Blood" || got[1].ShortName != "Hgb Bld-mCnc" || !containsFold(got[1].Related, "HGB") {
		t.Errorf("LoadLOINC()[1] = %+v", got[1])
	}
	// A matcher over the official file maps a vendor spelling.
	m := NewTextMatcher(got)
	if r, ok := m.Match("HGB"); !ok || r.Code != "718-7" || r.Confidence < DefaultThreshold {
		t.Errorf("matcher over Loinc.csv: Match(HGB) = %+v", r)
	}
	for _, bad := range []string{"X,Y\n1,2\n", "LOINC_NUM,LONG_COMMON_NAME\nnot-a-code,x\n"} {
		if _, err := LoadLOINC(strings.NewReader(bad)); err == nil {
			t.Errorf("LoadLOINC(%q) = nil error", bad)
		}
	}
}

func TestBundledLOINCIsValid(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range BundledLOINC() {
		if seen[e.Code] {
			t.Errorf("bundled LOINC %s listed twice", e.Code)
		}
		seen[e.Code] = true
		if !loincCheckDigitOK(e.Code) {
			t.Errorf("bundled LOINC %s fails the mod-10 check digit", e.Code)
		}
	}
}

// loincCheckDigitOK verifies a LOINC code's check digit (LOINC Users' Guide,
// appendix: Luhn-style mod 10 over the digits before the hyphen).
func loincCheckDigitOK(code string) bool {
	num, check, _ := strings.Cut(code, "-")
	sum := 0
	double := true
	for i := len(num) - 1; i >= 0; i-- {
		d := int(num[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10-sum%10)%10 == int(check[0]-'0')
}

func TestLoadRxNorm(t *testing.T) {
	tab := NewDrugTable()
	if err := tab.LoadRXNCONSO(openTestdata(t, "RXNCONSO.RRF")); err != nil {
		t.Fatal(err)
	}
	if err := tab.LoadRXNSAT(openTestdata(t, "RXNSAT.RRF")); err != nil {
		t.Fatal(err)
	}
	d, ok := tab.Drug("314076")
	if !ok || d.TTY != "SCD" || d.Name != "lisinopril 10 MG Oral Tablet" || d.Level() != "clinical-drug" {
		t.Errorf("Drug(314076) = %+v, %v", d, ok)
	}
	if d, _ := tab.Drug("206765"); d.Level() != "branded-drug" {
		t.Errorf("Drug(206765).Level() = %q, want branded-drug", d.Level())
	}
	if d, _ := tab.Drug("29046"); d.Level() != "ingredient" || d.IngredientCUI != "29046" {
		t.Errorf("Drug(29046) = %+v", d)
	}
	if _, ok := tab.Drug("999999"); ok {
		t.Errorf("suppressed concept loaded")
	}
	for _, ndc := range []string{"0093-1111-01", "00093111101", "00093-1111-01"} {
		if cui, ok := tab.RxCUIForNDC(ndc); !ok || cui != "314076" {
			t.Errorf("RxCUIForNDC(%q) = %q, %v, want 314076", ndc, cui, ok)
		}
	}
	if drugs, ndcs := tab.Len(); drugs != 3 || ndcs != 2 {
		t.Errorf("Len() = %d, %d, want 3 drugs, 2 NDCs (MTHSPL and other attributes ignored)", drugs, ndcs)
	}
	if err := tab.LoadRXNSAT(strings.NewReader("a|b|c\n")); err == nil {
		t.Errorf("LoadRXNSAT of a short line = nil error")
	}
}

func TestNormalizeNDC(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"0093-0058-01", "00093005801", true},
		{"12345-678-90", "12345067890", true},
		{"12345-6789-1", "12345678901", true},
		{"12345-6789-01", "12345678901", true},
		{"12345678901", "12345678901", true},
		{"1234567890", "", false},
		{"12a45-6789-01", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := NormalizeNDC(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeNDC(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLoadICD10CMOrder(t *testing.T) {
	got, err := LoadICD10CMOrder(openTestdata(t, "icd10cm_order_sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := ICD10CMCode{Code: "E119", Billable: true, Short: "Type 2 diabetes mellitus without complications", Long: "Type 2 diabetes mellitus without complications"}
	if len(got) != 5 || !cmp.Equal(got[3], want) || got[3].Dotted() != "E11.9" || got[0].Billable {
		t.Errorf("LoadICD10CMOrder() = %+v", got)
	}
	if _, err := LoadICD10CMOrder(strings.NewReader("garbage line\n")); err == nil {
		t.Errorf("LoadICD10CMOrder(garbage) = nil error")
	}
}

func TestLoadCVX(t *testing.T) {
	got, err := LoadCVX(openTestdata(t, "cvx.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[2].Code != "150" || got[2].Status != "Active" || !got[3].NonVaccine || got[0].LastUpdated != "2010/05/28" {
		t.Errorf("LoadCVX() = %+v", got)
	}
}

// TestLoadLIVD reads CDC's LIVD SARS-CoV-2 mapping file from the shared
// fixtures (conformance tier).
func TestLoadLIVD(t *testing.T) {
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures")
	}
	path := filepath.Join(dir, "terminology", "loinc", "LIVD-SARS-CoV-2.csv")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("LIVD fixture not found at %s (set EHRGATE_FIXTURES): %v", path, err)
	}
	defer f.Close()
	got, err := LoadLIVD(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 10 {
		t.Fatalf("LoadLIVD returned %d codes, want many", len(got))
	}
	byCode := map[string]LOINCEntry{}
	for _, e := range got {
		if !validLOINC(e.Code) || e.LongName == "" {
			t.Errorf("LIVD entry %+v lacks a code or name", e)
		}
		if !loincCheckDigitOK(e.Code) {
			t.Errorf("LIVD code %s fails the check digit", e.Code)
		}
		byCode[e.Code] = e
	}
	if e, ok := byCode["94500-6"]; !ok || !strings.Contains(e.LongName, "SARS coronavirus 2") {
		t.Errorf("LIVD lacks 94500-6 SARS-CoV-2 RNA: %+v", e)
	}
	// Vendor analyte names become related names a matcher can use.
	m := NewTextMatcher(got)
	if r, ok := m.Match(byCode["94500-6"].LongName); !ok || r.Code != "94500-6" {
		t.Errorf("matcher over LIVD: Match(long name of 94500-6) = %+v", r)
	}
	// The bundled table agrees with the official names where they overlap.
	for _, b := range BundledLOINC() {
		if e, ok := byCode[b.Code]; ok && e.LongName != b.LongName {
			t.Errorf("bundled %s long name %q, LIVD says %q", b.Code, b.LongName, e.LongName)
		}
	}
	t.Logf("LIVD: %d LOINC codes", len(got))
}

func TestConditionTables(t *testing.T) {
	ct := BundledConditions()
	tests := []struct {
		system, code string
		want         []string
	}{
		{SystemICD10CM, "I10", []string{"hypertension"}},
		{SystemICD10CM, "I16.0", []string{"hypertension"}},
		{SystemICD10CM, "I17", nil},
		{SystemICD10CM, "E08.65", []string{"diabetes"}},
		{SystemICD10CM, "e13.9", []string{"diabetes"}},
		{SystemICD10CM, "E14", nil},
		{SystemICD10CM, "I50.22", []string{"heart-failure"}},
		{SystemICD10CM, "N18.30", []string{"ckd"}},
		{SystemICD10CM, "J45.909", []string{"asthma"}},
		{SystemICD10CM, "J44.9", []string{"copd"}},
		{SystemICD10CM, "E78.5", []string{"hyperlipidemia"}},
		{SystemICD10CM, "E66.9", []string{"obesity"}},
		{SystemICD10CM, "F33.1", []string{"depression"}},
		{"urn:oid:2.16.840.1.113883.6.90", "F32.9", []string{"depression"}},
		{SystemSNOMED, "38341003", []string{"hypertension"}},
		{SystemSNOMED, "44054006", []string{"diabetes"}},
		{SystemSNOMED, "1", nil},
		{SystemLOINC, "I10", nil},
	}
	for _, tc := range tests {
		if got := ct.Categories(tc.system, tc.code); !cmp.Equal(got, tc.want) {
			t.Errorf("Categories(%q, %q) = %v, want %v", tc.system, tc.code, got, tc.want)
		}
	}
	pairs := map[string]string{"38341003": "I10", "44054006": "E11.9", "55822004": "E78.5", "195967001": "J45.909",
		"414916001": "E66.9", "84114007": "I50.9", "433144002": "N18.30"}
	for sct, icd := range pairs {
		if got, _ := ct.ICD10CMFor(sct); got != icd {
			t.Errorf("ICD10CMFor(%s) = %q, want %q", sct, got, icd)
		}
		if ct.EquivalenceKey(SystemSNOMED, sct) != ct.EquivalenceKey(SystemICD10CM, strings.ToLower(icd)) {
			t.Errorf("EquivalenceKey differs for %s and %s", sct, icd)
		}
	}
}

func TestUnits(t *testing.T) {
	u := BundledUnits()
	tests := []struct {
		loinc, code, unit string
		in                float64
		want              float64
		to                string
		ok                bool
	}{
		{"29463-7", "[lb_av]", "lb", 100, 45.359237, "kg", true},
		{"", "", "lbs", 1, 0.45359237, "kg", true},
		{"8310-5", "[degF]", "", 212, 100, "Cel", true},
		{"8310-5", "", "°F", 32, 0, "Cel", true},
		{"2345-7", "mg/dL", "", 18.0156, 1, "mmol/L", true},
		{"2093-3", "", "mg/dl", 38.67, 1, "mmol/L", true},
		{"2160-0", "mg/dL", "", 1, 88.42, "umol/L", true},
		{"2823-3", "mg/dL", "", 1, 0, "", false}, // potassium: no analyte row, mg/dL never generic
		{"", "", "furlong", 1, 0, "", false},
	}
	for _, tc := range tests {
		c, ok := u.Find(tc.loinc, tc.code, tc.unit)
		if ok != tc.ok {
			t.Errorf("Find(%q, %q, %q) ok = %v, want %v", tc.loinc, tc.code, tc.unit, ok, tc.ok)
			continue
		}
		if ok && (c.To != tc.to || abs(c.Apply(tc.in)-tc.want) > 1e-9) {
			t.Errorf("Find(%q, %q, %q).Apply(%v) = %v %s, want %v %s", tc.loinc, tc.code, tc.unit, tc.in, c.Apply(tc.in), c.To, tc.want, tc.to)
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func FuzzLoaders(f *testing.F) {
	for _, name := range []string{"Loinc.csv", "RXNSAT.RRF", "RXNCONSO.RRF", "icd10cm_order_sample.txt", "cvx.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := string(b)
		_, _ = LoadLOINC(strings.NewReader(s))
		_, _ = LoadLIVD(strings.NewReader(s))
		_, _ = LoadICD10CMOrder(strings.NewReader(s))
		_, _ = LoadCVX(strings.NewReader(s))
		_, _ = ParseLocalMap(strings.NewReader(s))
		tab := NewDrugTable()
		_ = tab.LoadRXNCONSO(strings.NewReader(s))
		_ = tab.LoadRXNSAT(strings.NewReader(s))
		_, _ = LoadUnits(strings.NewReader(s))
	})
}
