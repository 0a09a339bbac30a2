package identity

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalizers feeds names and addresses to the normalizers, seeded from
// the table tests: they never panic, NormalizeName is idempotent and gives
// upper-case words separated by single spaces, ParseAddress gives a ZIP of
// five digits or none, and Jaro–Winkler stays in [0, 1] and symmetric.
func FuzzNormalizers(f *testing.F) {
	for _, s := range []string{
		"O'Brien", "García-López", "  anne   marie ", "St. John", "Smith Jr.",
		"12 Oak Street, Apt 3, Springfield, IL 62701, US", "12 OAK ST. #3, Springfield, IL 62701-1234",
		"0012 North Main Avenue, Suite 200, Columbus, OH 43215", "#", "# #,#", ",,,", "Apt", "\xff\xfe",
	} {
		f.Add(s, "MARTHA")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		n := NormalizeName(s)
		if NormalizeName(n) != n {
			t.Errorf("NormalizeName not idempotent on %q: %q then %q", s, n, NormalizeName(n))
		}
		if strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") || strings.Contains(n, "  ") {
			t.Errorf("NormalizeName(%q) = %q has stray spaces", s, n)
		}
		if !utf8.ValidString(n) {
			t.Errorf("NormalizeName(%q) = %q is not UTF-8", s, n)
		}
		a := ParseAddress(s)
		if a.Zip != "" && (len(a.Zip) != 5 || !isDigits(a.Zip)) {
			t.Errorf("ParseAddress(%q).Zip = %q", s, a.Zip)
		}
		_ = a.Key()
		o := NormalizeName(other)
		jw := JaroWinkler(n, o)
		if jw < 0 || jw > 1 || jw != JaroWinkler(o, n) {
			t.Errorf("JaroWinkler(%q, %q) = %v (reversed %v)", n, o, jw, JaroWinkler(o, n))
		}
		_ = NYSIIS(n)
		_ = NormalizePhone(s)
		_ = NormalizeBirthDate(s)
	})
}
