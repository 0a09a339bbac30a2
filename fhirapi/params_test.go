package fhirapi

import (
	"net/url"
	"testing"
	"time"
)

func TestDatePrefixes(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := func(s string) span { sp, _ := parseSpan(s); return sp }
	tests := []struct {
		search, target string
		want           bool
	}{
		{"2024", "2024-05-06", true},
		{"eq2024-05", "2024-05-06T10:00:00Z", true},
		{"eq2024-05-06", "2024-05", false}, // the month is wider than the day
		{"ne2024-05-06", "2024-05-07", true},
		{"gt2024-05-06", "2024-05-07", true},
		{"gt2024-05-06", "2024-05-06", false},
		{"ge2024-05-06", "2024-05-06", true},
		{"lt2024-05-06", "2024-05-05T23:59:59Z", true},
		{"lt2024-05-06", "2024-05-06T00:00:00Z", false},
		{"le2024-05-06", "2024-05-06T12:00:00Z", true},
		{"sa2024-05-06", "2024-05-07", true},
		{"sa2024-05-06", "2024-05-06T12:00:00Z", false},
		{"eb2024-05-06", "2024-05-05", true},
		{"ap2024-05-06", "2024-05-20", true},
		{"ap2024-05-06", "2025-05-20", false},
		{"2024-05-06T10:00:00+02:00", "2024-05-06T08:00:00Z", true},
		{"2024-05-06T10:00", "2024-05-06T10:00:30Z", true},
	}
	for _, tc := range tests {
		d, err := parseDateTest(tc.search)
		if err != nil {
			t.Fatalf("parseDateTest(%q): %v", tc.search, err)
		}
		if got := d.matches(day(tc.target), now); got != tc.want {
			t.Errorf("%s matches %s = %v, want %v", tc.search, tc.target, got, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2024-13", "2024-05-06T25:00:00Z", "2024-05-06T10:00:00+99"} {
		if _, err := parseDateTest(bad); err == nil {
			t.Errorf("parseDateTest(%q) = nil error, want one", bad)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("Observation", "patient=c.p1&code=http://loinc.org|1-8,2-6&date=ge2020&_sort=-date&_count=5&_include=Observation:patient")
	f.Add("Patient", "name:exact=Ann&birthdate=eb2000-01&_revinclude=Condition:patient&_cursor=e30&_elements=name")
	f.Add("Condition", "clinical-status:not=resolved&subject:missing=true&_summary=count")
	ns, _ := NewNamespace("c", "d_e")
	a := &API{o: Options{DefaultCount: 10, MaxCount: 100}, ns: ns}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := a.parseQuery(typ, vals, false)
		if err != nil {
			return
		}
		if q.count < 0 || q.count > 100 {
			t.Fatalf("parseQuery(%q) count = %d, outside 0..100", raw, q.count)
		}
	})
}
