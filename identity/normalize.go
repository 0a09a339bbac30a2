package identity

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NormalizeName folds a name part to upper-case ASCII letters separated by
// single spaces: accents are removed (é → E), apostrophes and periods are
// dropped (O'Brien → OBRIEN), hyphens and other separators become spaces.
func NormalizeName(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	if !isASCII(s) {
		s = norm.NFD.String(s)
	}
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r), r == '\'', r == '.', r == '’':
			continue
		case r < 128 && unicode.IsLetter(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToUpper(r))
		case unicode.IsLetter(r):
			// a letter outside ASCII without decomposition (ß, ø): keep it.
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToUpper(r))
		default:
			space = true
		}
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// suffixes maps generational suffixes to one spelling.
var suffixes = map[string]string{
	"JR": "JR", "JUNIOR": "JR", "SR": "SR", "SENIOR": "SR",
	"II": "II", "2ND": "II", "III": "III", "3RD": "III", "IV": "IV", "4TH": "IV",
}

// SplitSuffix removes a trailing generational suffix (Jr., Sr., II, III,
// IV) from a normalized family name and returns both; the suffix is ""
// when there is none.
func SplitSuffix(family string) (string, string) {
	i := strings.LastIndexByte(family, ' ')
	if i < 0 {
		return family, ""
	}
	if s, ok := suffixes[family[i+1:]]; ok {
		return family[:i], s
	}
	return family, ""
}

// NormalizeSuffix returns the canonical spelling of a generational suffix,
// or "" when s is not one.
func NormalizeSuffix(s string) string { return suffixes[NormalizeName(s)] }

// NormalizePhone keeps the last ten digits of a telephone number (a North
// American number without its country code); it returns "" when there are
// fewer than seven digits.
func NormalizePhone(s string) string {
	var d []byte
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			d = append(d, s[i])
		}
	}
	if len(d) < 7 {
		return ""
	}
	if len(d) > 10 {
		d = d[len(d)-10:]
	}
	return string(d)
}

// NormalizeEmail lower-cases an address and trims spaces; it returns ""
// when s has no "@".
func NormalizeEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.Contains(s, "@") {
		return ""
	}
	return s
}

// NormalizeBirthDate returns YYYYMMDD as a number for a YYYY-MM-DD date (a
// longer dateTime is cut to its date), or 0 when s is not such a date.
func NormalizeBirthDate(s string) int32 {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0
	}
	var v int32
	for i, c := range []byte(s[:10]) {
		if i == 4 || i == 7 {
			continue
		}
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + int32(c-'0')
	}
	m, d := v/100%100, v%100
	if m < 1 || m > 12 || d < 1 || d > 31 {
		return 0
	}
	return v
}

// NormalizeGender reduces an administrative gender to "M", "F", or "" for
// other, unknown and absent (which say nothing for matching).
func NormalizeGender(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "male", "m":
		return "M"
	case "female", "f":
		return "F"
	}
	return ""
}
