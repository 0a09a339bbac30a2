package fhirdate

import "testing"

// FuzzParseDateQuery checks that any date search value either fails to parse
// or gives a non-empty range, and never panics.
func FuzzParseDateQuery(f *testing.F) {
	for _, s := range []string{"2024", "ge2024-01", "eq2024-01-15T10:00:00Z", "2024-01-15T23:30:00+02:00", "ap2024-01-15T10:00", "2024-02-01T10:00:00.123Z", "xx2024", "le", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		if !q.Span.Hi.After(q.Span.Lo) {
			t.Errorf("ParseQuery(%q) = empty range %v", s, q.Span)
		}
	})
}
