package dashboard

import (
	"bytes"
	"flag"
	"html"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/normalize"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi    float64
		d0, d1    float64
		wantTicks []float64
		name      string
		tickCount int
	}{
		{name: "heart rate", lo: 58, hi: 96, tickCount: 5, d0: 50, d1: 100, wantTicks: []float64{50, 60, 70, 80, 90, 100}},
		{name: "potassium", lo: 3.4, hi: 5.8, tickCount: 5, d0: 3, d1: 6, wantTicks: []float64{3, 4, 5, 6}},
		{name: "HbA1c", lo: 4.0, hi: 9.8, tickCount: 5, d0: 4, d1: 10, wantTicks: []float64{4, 6, 8, 10}},
		{name: "INR small step", lo: 0.9, hi: 1.3, tickCount: 5, d0: 0.9, d1: 1.3, wantTicks: []float64{0.9, 1, 1.1, 1.2, 1.3}},
		{name: "one value", lo: 72, hi: 72, tickCount: 5, d0: 60, d1: 80, wantTicks: []float64{60, 65, 70, 75, 80}},
		{name: "zero", lo: 0, hi: 0, tickCount: 5, d0: -1, d1: 1, wantTicks: []float64{-1, -0.5, 0, 0.5, 1}},
		{name: "creatinine umol/L", lo: 53.05, hi: 168, tickCount: 5, d0: 50, d1: 200, wantTicks: []float64{50, 100, 150, 200}},
		{name: "reversed", lo: 10, hi: 0, tickCount: 5, d0: 0, d1: 10, wantTicks: []float64{0, 2.5, 5, 7.5, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d0, d1, ticks := niceTicks(tt.lo, tt.hi, tt.tickCount)
			if d0 != tt.d0 || d1 != tt.d1 {
				t.Errorf("niceTicks(%v, %v) domain = [%v, %v], want [%v, %v]", tt.lo, tt.hi, d0, d1, tt.d0, tt.d1)
			}
			if diff := cmp.Diff(tt.wantTicks, ticks); diff != "" {
				t.Errorf("niceTicks(%v, %v) ticks (-want +got):\n%s", tt.lo, tt.hi, diff)
			}
		})
	}
}

func TestTimeTicks(t *testing.T) {
	day := func(s string) time.Time {
		v, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name     string
		from, to string
		want     []string
	}{
		{"five years: yearly", "2021-03-10", "2026-02-01", []string{"2022", "2023", "2024", "2025", "2026"}},
		{"twenty years: every five", "2004-06-01", "2026-01-01", []string{"2005", "2010", "2015", "2020", "2025"}},
		{"two years: quarterly", "2024-02-07", "2026-04-24", []string{"Jul 2024", "Jan 2025", "Jul", "Jan 2026"}},
		{"six months: monthly", "2026-01-15", "2026-06-20", []string{"Feb 2026", "Mar", "Apr", "May", "Jun"}},
		{"a month: weekly", "2026-03-01", "2026-03-31", []string{"2 Mar", "9 Mar", "16 Mar", "23 Mar", "30 Mar"}},
		{"empty span", "2026-03-01", "2026-03-01", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tk := range timeTicks(day(tt.from), day(tt.to)) {
				got = append(got, tk.Label)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("timeTicks(%s, %s) (-want +got):\n%s", tt.from, tt.to, diff)
			}
		})
	}
}

func TestBandRuns(t *testing.T) {
	a := &band{Low: 3.5, High: 5.1, HasLow: true, HasHigh: true}
	a2 := &band{Low: 3.5, High: 5.1, HasLow: true, HasHigh: true} // equal to a, another pointer
	b := &band{High: 99, HasHigh: true}
	pts := func(rs ...*band) []trendPoint {
		out := make([]trendPoint, len(rs))
		for i, r := range rs {
			out[i].Range = r
		}
		return out
	}
	xs := []float64{100, 200, 300, 400}
	tests := []struct {
		name string
		pts  []trendPoint
		want []bandRect
	}{
		{"one range for all: full width", pts(a, a2, a, a), []bandRect{{0, 600, *a}}},
		{"none", pts(nil, nil, nil, nil), nil},
		{"range changes: halfway between points", pts(a, a, b, b), []bandRect{{0, 250, *a}, {250, 600, *b}}},
		{"gap where a range is unknown", pts(a, nil, a, a), []bandRect{{0, 150, *a}, {250, 600, *a}}},
		{"only the last", pts(nil, nil, nil, b), []bandRect{{350, 600, *b}}},
		{"no points", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := bandRuns(tt.pts, xs[:len(tt.pts)], 0, 600)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("bandRuns (-want +got):\n%s", diff)
			}
		})
	}
}

var parseRangeTests = []struct {
	in           string
	lo, hi       float64
	hasLo, hasHi bool
	unit         string
	ok           bool
}{
	{"3.5–5.1 mmol/L", 3.5, 5.1, true, true, "mmol/L", true},
	{"70-99 mg/dL", 70, 99, true, true, "mg/dL", true},
	{"0.6–1.3", 0.6, 1.3, true, true, "", true},
	{"≥40 mg/dL", 40, 0, true, false, "mg/dL", true},
	{"≤99 mg/dL", 0, 99, false, true, "mg/dL", true},
	{"<200", 0, 200, false, true, "", true},
	{">= 60 mL/min/{1.73_m2}", 60, 0, true, false, "mL/min/{1.73_m2}", true},
	{"-2–2 SD", -2, 2, true, true, "SD", true},
	{"negative", 0, 0, false, false, "", false},
	{"5.1–3.5 mmol/L", 0, 0, false, false, "", false},
	{"12", 0, 0, false, false, "", false},
	{"", 0, 0, false, false, "", false},
	{".–.", 0, 0, false, false, "", false},
}

func TestParseRange(t *testing.T) {
	for _, tt := range parseRangeTests {
		lo, hi, hasLo, hasHi, unit, ok := parseRange(tt.in)
		if lo != tt.lo || hi != tt.hi || hasLo != tt.hasLo || hasHi != tt.hasHi || unit != tt.unit || ok != tt.ok {
			t.Errorf("parseRange(%q) = %v, %v, %v, %v, %q, %v; want %v, %v, %v, %v, %q, %v", tt.in,
				lo, hi, hasLo, hasHi, unit, ok, tt.lo, tt.hi, tt.hasLo, tt.hasHi, tt.unit, tt.ok)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, tt := range parseRangeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, hasLo, hasHi, _, ok := parseRange(s)
		if ok && hasLo && hasHi && hi < lo {
			t.Errorf("parseRange(%q) = [%v, %v]: high below low", s, lo, hi)
		}
		if ok && !hasLo && !hasHi {
			t.Errorf("parseRange(%q) ok without a bound", s)
		}
	})
}

func TestRangeIn(t *testing.T) {
	tests := []struct {
		name, text, unit, loinc string
		keys                    [2]string
		want                    *band
	}{
		{"same unit", "3.5–5.1 mmol/L", "mmol/L", "2823-3", [2]string{"mmol/l", "mmol/l"}, &band{3.5, 5.1, true, true}},
		{"glucose mg/dL to mmol/L", "70–99 mg/dL", "mmol/L", "2345-7", [2]string{"mg/dl", "mg/dl"},
			&band{70 / 18.0156, 99 / 18.0156, true, true}},
		{"no unit: the value's unit", "0.6–1.3", "umol/L", "2160-0", [2]string{"mg/dl", "mg/dl"},
			&band{0.6 * 88.42, 1.3 * 88.42, true, true}},
		{"no unit, plotted as received", "4.0–5.6", "%", "4548-4", [2]string{"%", "%"}, &band{4, 5.6, true, true}},
		{"no conversion to the plotted unit", "70–99 mg/dL", "mmol/L", "", [2]string{"mg/dl", ""}, nil},
		{"free text", "see comment", "mmol/L", "2823-3", [2]string{}, nil},
		{"one-sided", "≤99 mg/dL", "mg/dL", "13457-7x", [2]string{"mg/dl", ""}, &band{0, 99, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rangeIn(tt.text, tt.unit, tt.loinc, tt.keys)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
				t.Errorf("rangeIn(%q, %q) (-want +got):\n%s", tt.text, tt.unit, diff)
			}
		})
	}
}

// quantity is a numeric value as normalize makes it.
func quantity(n float64, unit string, canon *normalize.Canonical) *normalize.Value {
	return &normalize.Value{Kind: normalize.KindQuantity, Number: &n, Unit: unit, UnitCode: unit, Canonical: canon}
}

// lab is a lab observation of a fixed patient.
func lab(id, loinc, date string, v *normalize.Value, interp, ref string) obsRec {
	return obsRec{ID: id, Connection: "sim-epic", Fetched: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC),
		Observation: normalize.Observation{Category: []string{"laboratory"}, Status: "final",
			Code:      normalize.Concept{System: "http://loinc.org", Code: loinc, Display: map[string]string{"4548-4": "Hemoglobin A1c", "2345-7": "Glucose", "2823-3": "Potassium"}[loinc]},
			Effective: date, Value: v, Interpretation: interp, ReferenceRange: ref}}
}

func TestBuildTrendsUnits(t *testing.T) {
	obs := []obsRec{
		// HbA1c: no canonical unit; the IFCC mmol/mol result is apart.
		lab("a1", "4548-4", "2024-01-10", quantity(6.1, "%", nil), "", "4.0–5.6 %"),
		lab("a2", "4548-4", "2025-01-10", quantity(7.4, "%", nil), "H", "4.0–5.6 %"),
		lab("a3", "4548-4", "2025-06-10", quantity(57, "mmol/mol", nil), "", ""),
		lab("a4", "4548-4", "", quantity(6.0, "%", nil), "", ""), // no date: apart
		// Glucose: canonical mmol/L; the mg/L result has no conversion.
		lab("g1", "2345-7", "2024-01-10", quantity(99, "mg/dL", &normalize.Canonical{Number: 5.4952, Unit: "mmol/L"}), "", "70–99 mg/dL"),
		lab("g2", "2345-7", "2025-01-10", quantity(6.2, "mmol/L", &normalize.Canonical{Number: 6.2, Unit: "mmol/L"}), "", ""),
		lab("g3", "2345-7", "2025-02-10", quantity(1200, "mg/L", nil), "", ""),
		// Potassium: one result only, not plotted.
		lab("k1", "2823-3", "2025-01-10", quantity(4.1, "mmol/L", nil), "", "3.5–5.1 mmol/L"),
		// Text result: not numeric.
		lab("t1", "2345-7", "2025-03-10", &normalize.Value{Kind: normalize.KindString, Text: "hemolysed"}, "", ""),
	}
	v := buildTrends(obs, nil, nil, time.Time{}, time.Time{})
	if len(v.Vitals) != 0 {
		t.Errorf("vitals = %d charts, want none", len(v.Vitals))
	}
	type panelSum struct {
		Title, Unit string
		Plotted     map[string]float64
		Flags       map[string]string
		Apart       map[string]string
	}
	var got []panelSum
	for _, c := range v.Labs {
		for _, p := range c.Panels {
			s := panelSum{Title: p.Title, Unit: p.Unit, Plotted: map[string]float64{}, Flags: map[string]string{}, Apart: map[string]string{}}
			for _, sr := range p.Series {
				for _, pt := range sr.Points {
					s.Plotted[pt.ID] = pt.Value
					if pt.Flag != "" {
						s.Flags[pt.ID] = pt.Flag
					}
				}
			}
			for _, pt := range p.Apart {
				s.Apart[pt.ID] = pt.Reason
			}
			got = append(got, s)
		}
	}
	want := []panelSum{
		{Title: "Hemoglobin A1c", Unit: "%", Plotted: map[string]float64{"a1": 6.1, "a2": 7.4},
			Flags: map[string]string{"a1": "Above reference range", "a2": "High"},
			Apart: map[string]string{"a3": "its unit (mmol/mol) differs from % and no conversion is known", "a4": "it has no usable date"}},
		{Title: "Glucose", Unit: "mmol/L", Plotted: map[string]float64{"g1": 5.4952, "g2": 6.2},
			Flags: map[string]string{},
			Apart: map[string]string{"g3": "its unit (mg/L) could not be converted to mmol/L"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lab panels (-want +got):\n%s", diff)
	}
}

// goldenView is a small fixed chart: a blood pressure with an abnormal
// reading, a potassium series with a shaded range, a medication and an
// encounter.
func goldenView() *trendsView {
	bp := func(id, date string, sys, dia float64) obsRec {
		return obsRec{ID: id, Connection: "sim-epic", Fetched: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
			Observation: normalize.Observation{Category: []string{"vital-signs"}, Status: "final", Effective: date,
				Code: normalize.Concept{System: "http://loinc.org", Code: "85354-9"},
				BloodPressure: &normalize.BP{From: "components",
					Systolic:  quantity(sys, "mm[Hg]", nil),
					Diastolic: quantity(dia, "mm[Hg]", nil)}}}
	}
	obs := []obsRec{
		bp("bp1", "2025-01-10T09:00:00Z", 128, 82),
		bp("bp2", "2025-07-10T09:00:00Z", 151, 96),
		bp("bp3", "2026-01-10T09:00:00Z", 134, 85),
		lab("k1", "2823-3", "2025-01-10T08:00:00Z", quantity(4.2, "mmol/L", &normalize.Canonical{Number: 4.2, Unit: "mmol/L"}), "", "3.5–5.1 mmol/L"),
		lab("k2", "2823-3", "2025-07-10T08:00:00Z", quantity(5.6, "mmol/L", &normalize.Canonical{Number: 5.6, Unit: "mmol/L"}), "H", "3.5–5.1 mmol/L"),
		lab("k3", "2823-3", "2026-01-10T08:00:00Z", quantity(4.9, "mmol/L", &normalize.Canonical{Number: 4.9, Unit: "mmol/L"}), "", "3.5–5.1 mmol/L"),
	}
	meds := []normalize.MedicationRequest{
		{Medication: normalize.Concept{Text: "Lisinopril 10 mg tablet"}, Status: "active", Active: true, AuthoredOn: "2025-01-10"},
		{Medication: normalize.Concept{Text: "Amlodipine 5 mg tablet"}, Status: "stopped", AuthoredOn: "2025-03-01"},
		{Medication: normalize.Concept{Text: "Amoxicillin 500 mg capsule"}, Status: "completed", AuthoredOn: "2025-07-08",
			Start: "2025-07-08", End: "2025-07-18", PeriodFrom: normalize.PeriodDosageBounds},
		{Medication: normalize.Concept{Text: "Metformin 500 mg tablet"}, Status: "active", Active: true, AuthoredOn: "2025-02-01",
			Start: "2025-02-01", End: "2026-02-01", PeriodFrom: normalize.PeriodValidity, Stale: true,
			StaleReason: "status active but its prescription's validity period ended on 2026-02-01"},
	}
	encs := []normalize.Encounter{
		{Status: "finished", Class: "AMB", Type: normalize.Concept{Text: "Office visit"}, Start: "2025-01-10T08:30:00Z", End: "2025-01-10T09:10:00Z"},
		{Status: "finished", Class: "IMP", Type: normalize.Concept{Text: "Admission"}, Start: "2025-07-08T20:00:00Z", End: "2025-07-12T11:00:00Z"},
	}
	v := buildTrends(obs, meds, encs, time.Time{}, time.Time{})
	v.render(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	return v
}

// TestTrendsGolden compares the markup of a small fixed chart with
// testdata/trends.golden.html; go test -run TestTrendsGolden -update
// rewrites it.
func TestTrendsGolden(t *testing.T) {
	v := goldenView()
	var b bytes.Buffer
	for _, c := range append(v.Vitals, v.Labs...) {
		for _, p := range c.Panels {
			b.WriteString(string(p.HTML))
			b.WriteString("\n")
		}
	}
	b.WriteString(string(v.Timelines))
	b.WriteString("\n")
	got := strings.ReplaceAll(b.String(), "><", ">\n<") // one element a line: readable diffs
	path := filepath.Join("testdata", "trends.golden.html")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("trends markup differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestTrendsEscape: text from the source never becomes markup.
func TestTrendsEscape(t *testing.T) {
	evil := `<script>alert(1)</script>"'&`
	obs := []obsRec{
		lab("x1", "", "2025-01-10", quantity(1, evil, nil), evil, evil),
		lab("x2", "", "2025-02-10", quantity(2, evil, nil), "", ""),
	}
	for i := range obs {
		obs[i].Code = normalize.Concept{Text: evil}
		obs[i].Connection = evil
	}
	v := buildTrends(obs, []normalize.MedicationRequest{{Medication: normalize.Concept{Text: evil}, Status: evil, AuthoredOn: "2025-01-01"}},
		[]normalize.Encounter{{Class: evil, Type: normalize.Concept{Text: evil}, Status: evil, Start: "2025-01-01"}}, time.Time{}, time.Time{})
	v.render(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var all strings.Builder
	for _, c := range v.Labs {
		for _, p := range c.Panels {
			all.WriteString(string(p.HTML))
		}
	}
	all.WriteString(string(v.Timelines))
	if len(v.Labs) == 0 || all.Len() == 0 {
		t.Fatal("nothing rendered")
	}
	if s := all.String(); strings.Contains(s, "<script") || strings.Contains(s, `"'&`) {
		t.Errorf("unescaped source text in the trends markup")
	}
}

func TestSVGWriterEscapesLikeHTML(t *testing.T) {
	for _, s := range []string{"", "plain", `<a href="x">'&'</a>`, "µmol/L ≥ 5 & < 7", "&amp;"} {
		var w svgWriter
		w.esc(s)
		if got, want := string(w.b), html.EscapeString(s); got != want {
			t.Errorf("esc(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestSignificant(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{77.1107, "77.1"}, {5.4952, "5.5"}, {167.998, "168"}, {0.01234, "0.0123"}, {1234.5, "1235"}, {0, "0"}, {-3.14159, "-3.14"},
	} {
		if got := significant(tt.v, 3); got != tt.want {
			t.Errorf("significant(%v, 3) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestScales(t *testing.T) {
	ys := linear{d0: 50, d1: 100, r0: 170, r1: 30}
	for _, tt := range []struct{ v, want float64 }{{50, 170}, {100, 30}, {75, 100}, {60, 142}} {
		if got := ys.at(tt.v); got != tt.want {
			t.Errorf("linear.at(%v) = %v, want %v", tt.v, got, tt.want)
		}
	}
	if got := (linear{d0: 5, d1: 5, r0: 170, r1: 30}).at(5); got != 100 {
		t.Errorf("linear.at on an empty domain = %v, want the middle, 100", got)
	}
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	xs := timeScale{from: from, to: from.AddDate(0, 0, 10), r0: 54, r1: 586}
	for _, tt := range []struct {
		at   time.Time
		want float64
	}{{from, 54}, {from.AddDate(0, 0, 10), 586}, {from.AddDate(0, 0, 5), 320}} {
		if got := xs.at(tt.at); got != tt.want {
			t.Errorf("timeScale.at(%v) = %v, want %v", tt.at, got, tt.want)
		}
	}
}

// BenchmarkTrends builds and draws the trends alone (no store, no page) of
// five years of one patient: 130 visits with six vital signs, fifteen labs
// a month, ten drugs renewed monthly and the encounters.
func BenchmarkTrends(b *testing.B) {
	start := time.Date(2021, 11, 1, 9, 0, 0, 0, time.UTC)
	var obs []obsRec
	vital := func(id, loinc string, at time.Time, v float64, unit string) obsRec {
		return obsRec{ID: id, Connection: "sim-epic", Fetched: start,
			Observation: normalize.Observation{Category: []string{"vital-signs"}, Status: "final", Effective: at.Format(time.RFC3339),
				Code: normalize.Concept{System: "http://loinc.org", Code: loinc}, Value: quantity(v, unit, &normalize.Canonical{Number: v, Unit: unit})}}
	}
	var encs []normalize.Encounter
	for i := range 130 {
		at := start.Add(time.Duration(i) * 14 * 24 * time.Hour)
		w := float64(i % 7)
		id := "v" + strconv.Itoa(i)
		bp := vital(id+"bp", "85354-9", at, 0, "")
		bp.Value = nil
		bp.BloodPressure = &normalize.BP{Systolic: quantity(120+w, "mm[Hg]", nil), Diastolic: quantity(80+w, "mm[Hg]", nil)}
		obs = append(obs, bp, vital(id+"hr", "8867-4", at, 60+w, "/min"), vital(id+"rr", "9279-1", at, 14+w, "/min"),
			vital(id+"t", "8310-5", at, 36.6+w/10, "Cel"), vital(id+"s", "59408-5", at, 95+w/2, "%"), vital(id+"w", "29463-7", at, 80+w, "kg"))
		encs = append(encs, normalize.Encounter{Status: "finished", Class: "AMB", Start: at.Format(time.RFC3339), End: at.Add(time.Hour).Format(time.RFC3339)})
	}
	var meds []normalize.MedicationRequest
	for m := range 60 {
		at := start.AddDate(0, m, 3)
		for j := range 15 {
			o := lab("l"+strconv.Itoa(m)+"-"+strconv.Itoa(j), "L"+strconv.Itoa(j), at.Format(time.RFC3339),
				quantity(4+float64((m+j)%5)/2, "mmol/L", &normalize.Canonical{Number: 4 + float64((m+j)%5)/2, Unit: "mmol/L"}), "", "3.5–5.1 mmol/L")
			obs = append(obs, o)
		}
		for d := range 10 {
			meds = append(meds, normalize.MedicationRequest{Medication: normalize.Concept{Text: "Drug " + strconv.Itoa(d)},
				Status: "active", Active: m == 59, AuthoredOn: at.Format("2006-01-02")})
		}
	}
	now := start.AddDate(5, 0, 0)
	for b.Loop() {
		v := buildTrends(obs, meds, encs, time.Time{}, time.Time{})
		v.render(now)
	}
}

// TestTrendsOnlyUndated: a vital sign with no usable date is listed apart,
// nothing is drawn and the time axis stays unset.
func TestTrendsOnlyUndated(t *testing.T) {
	o := lab("hr", "8867-4", "yesterday", quantity(72, "/min", nil), "", "")
	o.Category = []string{"vital-signs"}
	v := buildTrends([]obsRec{o}, nil, nil, time.Time{}, time.Time{})
	v.render(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if len(v.Vitals) != 1 || len(v.Vitals[0].Panels[0].Apart) != 1 || !v.From.IsZero() {
		t.Fatalf("undated heart rate: vitals %d, from %v; want one chart with the value apart and no axis", len(v.Vitals), v.From)
	}
	html := string(v.Vitals[0].Panels[0].HTML)
	if strings.Contains(html, "<svg") || !strings.Contains(html, "it has no usable date") {
		t.Errorf("undated heart rate markup:\n%s", html)
	}
}

// TestMedicationStopDates: a stop date the source gave (dosage bounds or
// validity period) ends the order's bar with a mark at that date and is
// named with its source; an order without one says so, never a guessed date.
func TestMedicationStopDates(t *testing.T) {
	v := goldenView()
	html := string(v.Timelines)
	for _, want := range []string{
		`data-stop="2025-07-18"`,
		`Amoxicillin 500 mg capsule · Completed · 1 order from 2025-07-08 · stop date 2025-07-18 (dosage period)`,
		`data-stop="2026-02-01"`,
		`Metformin 500 mg tablet · Active, possibly stale · 1 order from 2025-02-01 · stop date 2026-02-01 (prescription validity period)`,
		`Amlodipine 5 mg tablet · Stopped · 1 order from 2025-03-01 (no stop date given by the source)`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("medication timeline lacks %s", want)
		}
	}
	if n := strings.Count(html, `data-stop=`); n != 2 {
		t.Errorf("%d stop marks, want 2 (only where the source gave a stop date)", n)
	}
}
