package dashboard

import (
	"testing"
	"time"

	"ehrgate/normalize"
)

func f64(v float64) *float64 { return &v }

func TestRelative(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(-10 * time.Second), "just now"},
		{now.Add(10 * time.Second), "just now"},
		{now.Add(time.Hour), "in the future"},
		{now.Add(-time.Minute), "1 minute ago"},
		{now.Add(-59 * time.Minute), "59 minutes ago"},
		{now.Add(-2 * time.Hour), "2 hours ago"},
		{now.Add(-47 * time.Hour), "47 hours ago"},
		{now.Add(-3 * 24 * time.Hour), "3 days ago"},
		{now.Add(-90 * 24 * time.Hour), "3 months ago"},
		{now.Add(-3 * 365 * 24 * time.Hour), "3 years ago"},
	}
	for _, tt := range tests {
		if got := relative(tt.t, now); got != tt.want {
			t.Errorf("relative(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct{ birth, want string }{
		{"1980-12-10", "45 years"},
		{"1980-11-23", "46 years"},
		{"2026-05-01", "6 months"},
		{"2025-01-15", "22 months"},
		{"2024-11-23", "2 years"},
		{"", ""},
		{"1980", ""},
		{"2030-01-01", ""},
	}
	for _, tt := range tests {
		if got := age(tt.birth, now); got != tt.want {
			t.Errorf("age(%q) = %q, want %q", tt.birth, got, tt.want)
		}
	}
}

func TestObservationValue(t *testing.T) {
	comp := func(code string, v float64, unit string) normalize.Component {
		return normalize.Component{Code: normalize.Concept{Code: code, Text: code}, Value: normalize.Value{Kind: "quantity", Number: f64(v), UnitCode: unit}}
	}
	tests := []struct {
		name string
		o    normalize.Observation
		want string
	}{
		{"blood pressure", normalize.Observation{Components: []normalize.Component{comp("8462-4", 80, "mm[Hg]"), comp("8480-6", 120, "mm[Hg]")}}, "120/80 mm[Hg]"},
		{"bp with absent value", normalize.Observation{Value: &normalize.Value{Kind: "absent"}, Components: []normalize.Component{comp("8480-6", 118.5, "mm[Hg]"), comp("8462-4", 76, "mm[Hg]")}}, "118.5/76 mm[Hg]"},
		{"other components", normalize.Observation{Components: []normalize.Component{comp("a", 1, "g"), comp("b", 2, "")}}, "a: 1 g; b: 2"},
		{"quantity", normalize.Observation{Value: &normalize.Value{Kind: "quantity", Number: f64(7.10), Unit: "%"}}, "7.1 %"},
		{"comparator", normalize.Observation{Value: &normalize.Value{Kind: "quantity", Number: f64(60), Comparator: ">", UnitCode: "mL/min"}}, ">60 mL/min"},
		{"concept", normalize.Observation{Value: &normalize.Value{Kind: "concept", Concept: &normalize.Concept{Display: "Positive"}}}, "Positive"},
		{"string", normalize.Observation{Value: &normalize.Value{Kind: "string", Text: "clear"}}, "clear"},
		{"boolean", normalize.Observation{Value: &normalize.Value{Kind: "boolean", Bool: new(bool)}}, "No"},
		{"range", normalize.Observation{Value: &normalize.Value{Kind: "range", Low: f64(1), High: f64(3), Unit: "mg"}}, "1–3 mg"},
		{"absent", normalize.Observation{Value: &normalize.Value{Kind: "absent", Text: "asked but unknown"}}, "Not recorded (asked but unknown)"},
		{"nothing", normalize.Observation{}, "—"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := observationValue(tt.o); got != tt.want {
				t.Errorf("observationValue(%+v) = %q, want %q", tt.o, got, tt.want)
			}
		})
	}
}

func TestSourceMatches(t *testing.T) {
	vitals := source{Type: "Observation", Category: "vital-signs"}
	cond := source{Type: "Condition"}
	tests := []struct {
		src  source
		typ  string
		want bool
	}{
		{vitals, "Observation", true},
		{vitals, "Observation?category=vital-signs", true},
		{vitals, "Observation:vital-signs", true},
		{vitals, "Observation?category=laboratory", false},
		{vitals, "ObservationDefinition", false},
		{cond, "Condition", true},
		{cond, "Condition?category=problem-list-item", true},
		{cond, "Observation", false},
	}
	for _, tt := range tests {
		if got := tt.src.matches(tt.typ); got != tt.want {
			t.Errorf("%+v.matches(%q) = %v, want %v", tt.src, tt.typ, got, tt.want)
		}
	}
}

func TestDisplayDateAndOrder(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "—",
		"2024":                      "2024",
		"2024-03-01":                "2024-03-01",
		"2024-03-01T10:20:30+02:00": "2024-03-01 10:20",
		"not a date at all really":  "not a date at all really",
	} {
		if got := displayDate(in); got != want {
			t.Errorf("displayDate(%q) = %q, want %q", in, got, want)
		}
	}
	if !newer("2024-03-01T10:00:00Z", "2024-03-01T11:00:00+02:00") {
		t.Errorf("newer: 10:00Z should be after 11:00+02:00")
	}
	if !newer("2024-01-01", "garbage") || newer("garbage", "2024-01-01") {
		t.Errorf("newer: unparseable times must sort last")
	}
}

func TestInterpretationFlag(t *testing.T) {
	tests := []struct {
		in       string
		label    string
		abnormal bool
	}{
		{"", "", false}, {"N", "", false}, {"H", "High", true}, {"LL", "Critical low", true},
		{"Negative", "Negative", false}, {"Resistant", "Resistant", true},
	}
	for _, tt := range tests {
		if l, a := interpretationFlag(tt.in); l != tt.label || a != tt.abnormal {
			t.Errorf("interpretationFlag(%q) = %q, %v, want %q, %v", tt.in, l, a, tt.label, tt.abnormal)
		}
	}
}
