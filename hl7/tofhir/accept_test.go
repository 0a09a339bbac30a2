package tofhir

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDisambiguate(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string
		detail []string
		want   []string
	}{
		{"unique keys kept", []string{"a", "b"}, []string{"x", "y"}, []string{"a", "b"}},
		{"repeats told apart by detail", []string{"a", "a", "b"}, []string{"x", "y", "z"}, []string{"a|x", "a|y", "b"}},
		{"same detail: occurrence", []string{"a", "a", "a"}, []string{"x", "x", "y"}, []string{"a|x#1", "a|x#2", "a|y"}},
		{"no detail", []string{"a", "a"}, []string{"", ""}, []string{"a|#1", "a|#2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := disambiguate(tc.keys, func(i int) string { return tc.detail[i] })
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("disambiguate(%q) mismatch (-want +got):\n%s", tc.keys, d)
			}
		})
	}
}

func TestUsableIdentifier(t *testing.T) {
	c := &conv{o: Options{Placeholders: []string{"NOMRN"}}}
	for v, want := range map[string]bool{
		"100200": true, "A-17": true, "0000000001": true,
		"": false, "  ": false, `""`: false, "UNKNOWN": false, "unk": false, "000-000": false,
		"12\x0034": false, "\t12": false, "nomrn": false,
	} {
		if got := c.usableIdentifier(v) == ""; got != want {
			t.Errorf("usableIdentifier(%q) usable = %v, want %v", v, got, want)
		}
	}
}
