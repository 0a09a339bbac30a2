package identity

import (
	"math"
	"testing"
)

func TestJaroWinklerKnownValues(t *testing.T) {
	// Values from Winkler (1990) and the usual worked examples.
	tests := []struct {
		a, b string
		want float64
	}{
		{"MARTHA", "MARHTA", 0.961},
		{"DWAYNE", "DUANE", 0.840},
		{"DIXON", "DICKSONX", 0.813},
		{"JONES", "JOHNSON", 0.832},
		{"ABC", "ABC", 1},
		{"", "", 0},
		{"A", "", 0},
		{"ABC", "XYZ", 0},
	}
	for _, tt := range tests {
		if got := JaroWinkler(tt.a, tt.b); math.Abs(got-tt.want) > 0.001 {
			t.Errorf("JaroWinkler(%q, %q) = %.4f, want %.3f", tt.a, tt.b, got, tt.want)
		}
		if got, rev := JaroWinkler(tt.a, tt.b), JaroWinkler(tt.b, tt.a); got != rev {
			t.Errorf("JaroWinkler(%q, %q) = %v but reversed %v", tt.a, tt.b, got, rev)
		}
	}
}

func TestNYSIIS(t *testing.T) {
	tests := []struct{ in, want string }{
		{"KNIGHT", "NAGT"},      // KN → NN, GH → G
		{"NIGHT", "NAGT"},       // sounds alike, same code
		{"MACDONALD", "MCDANA"}, // MAC → MCC, truncated to six
		{"PHILLIPS", "FALAP"},   // PH → FF, trailing S dropped
		{"", ""},
	}
	for _, tt := range tests {
		if got := NYSIIS(tt.in); got != tt.want {
			t.Errorf("NYSIIS(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, p := range [][2]string{{"BROWN", "BRAUN"}, {"KARL", "CARL"}, {"JOHNSON", "JONSON"}} {
		if a, b := NYSIIS(p[0]), NYSIIS(p[1]); a != b {
			t.Errorf("NYSIIS(%q) = %q, NYSIIS(%q) = %q; want one code", p[0], a, p[1], b)
		}
	}
}

func TestOneEditAndTransposed(t *testing.T) {
	tests := []struct {
		a, b            string
		oneEdit, transp bool
	}{
		{"WEI", "WIE", true, true},
		{"MARTHA", "MARHTA", true, true},
		{"KAYLA", "KAHLA", true, false}, // substitution
		{"JAMES", "JMES", true, false},  // deletion
		{"JOHN", "JOOHN", true, false},  // insertion
		{"JOHN", "JOHN", false, false},  // equal: no edit
		{"JOHN", "JOAN", true, false},
		{"ABCD", "BADC", false, false}, // two transpositions
		{"ABC", "CBA", false, false},
		{"", "A", true, false},
		{"JAMES", "JAMESON", false, false},
	}
	for _, tt := range tests {
		if got := OneEdit(tt.a, tt.b); got != tt.oneEdit {
			t.Errorf("OneEdit(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.oneEdit)
		}
		if got := OneEdit(tt.b, tt.a); got != tt.oneEdit {
			t.Errorf("OneEdit(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.oneEdit)
		}
		if got := Transposed(tt.a, tt.b); got != tt.transp {
			t.Errorf("Transposed(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.transp)
		}
	}
}
