package identity

// JaroWinkler returns the Jaro–Winkler similarity of a and b in [0, 1]
// (W. E. Winkler, "String Comparator Metrics and Enhanced Decision Rules in
// the Fellegi-Sunter Model of Record Linkage", 1990): the Jaro similarity
// raised for a common prefix of up to four characters with the scaling
// factor 0.1, applied when the Jaro similarity is above 0.7. It compares
// bytes, which is exact for the upper-case ASCII that NormalizeName gives.
func JaroWinkler(a, b string) float64 {
	j := jaro(a, b)
	if j <= 0.7 {
		return j
	}
	l := 0
	for l < 4 && l < len(a) && l < len(b) && a[l] == b[l] {
		l++
	}
	return j + float64(l)*0.1*(1-j)
}

// jaro returns the Jaro similarity of a and b.
func jaro(a, b string) float64 {
	if a == b {
		if a == "" {
			return 0
		}
		return 1
	}
	la, lb := len(a), len(b)
	if la == 0 || lb == 0 {
		return 0
	}
	if la > lb {
		a, b, la, lb = b, a, lb, la
	}
	window := lb/2 - 1
	if window < 0 {
		window = 0
	}
	var bufA, bufB [64]bool
	var ma, mb []bool
	if la <= 64 && lb <= 64 {
		ma, mb = bufA[:la], bufB[:lb]
	} else {
		ma, mb = make([]bool, la), make([]bool, lb)
	}
	matches := 0
	for i := 0; i < la; i++ {
		lo, hi := i-window, i+window+1
		if lo < 0 {
			lo = 0
		}
		if hi > lb {
			hi = lb
		}
		for k := lo; k < hi; k++ {
			if !mb[k] && a[i] == b[k] {
				ma[i], mb[k] = true, true
				matches++
				break
			}
		}
	}
	if matches == 0 {
		return 0
	}
	t, k := 0, 0
	for i := 0; i < la; i++ {
		if !ma[i] {
			continue
		}
		for !mb[k] {
			k++
		}
		if a[i] != b[k] {
			t++
		}
		k++
	}
	m := float64(matches)
	return (m/float64(la) + m/float64(lb) + (m-float64(t/2))/m) / 3
}

// NYSIIS returns the New York State Identification and Intelligence System
// phonetic code of a name (R. L. Taft, "Name Search Techniques", New York
// State Identification and Intelligence System, 1970), truncated to six
// characters as in the original. The input is a NormalizeName result;
// spaces are ignored.
func NYSIIS(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			b = append(b, c)
		}
	}
	if len(b) == 0 {
		return ""
	}
	// 1. first letters
	switch {
	case hasPrefix(b, "MAC"):
		copy(b, "MCC")
	case hasPrefix(b, "KN"):
		copy(b, "NN")
	case b[0] == 'K':
		b[0] = 'C'
	case hasPrefix(b, "PH"), hasPrefix(b, "PF"):
		copy(b, "FF")
	case hasPrefix(b, "SCH"):
		copy(b, "SSS")
	}
	// 2. last letters
	if n := len(b); n >= 2 {
		switch string(b[n-2:]) {
		case "EE", "IE":
			b = append(b[:n-2], 'Y')
		case "DT", "RT", "RD", "NT", "ND":
			b = append(b[:n-2], 'D')
		}
	}
	key := []byte{b[0]}
	vowel := func(c byte) bool { return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U' }
	for i := 1; i < len(b); i++ {
		c := b[i]
		var add []byte
		switch {
		case c == 'E' && i+1 < len(b) && b[i+1] == 'V':
			add = []byte("AF")
			i++
		case vowel(c):
			add = []byte{'A'}
		case c == 'Q':
			add = []byte{'G'}
		case c == 'Z':
			add = []byte{'S'}
		case c == 'M':
			add = []byte{'N'}
		case c == 'K' && i+1 < len(b) && b[i+1] == 'N':
			add = []byte{'N'}
			i++
		case c == 'K':
			add = []byte{'C'}
		case c == 'S' && i+2 < len(b) && b[i+1] == 'C' && b[i+2] == 'H':
			add = []byte("SSS")
			i += 2
		case c == 'P' && i+1 < len(b) && b[i+1] == 'H':
			add = []byte("FF")
			i++
		case c == 'H' && (!vowel(b[i-1]) || i+1 >= len(b) || !vowel(b[i+1])):
			add = []byte{b[i-1]}
			if vowel(add[0]) {
				add[0] = 'A'
			}
		case c == 'W' && vowel(b[i-1]):
			add = []byte{'A'}
		default:
			add = []byte{c}
		}
		for _, x := range add {
			if key[len(key)-1] != x {
				key = append(key, x)
			}
		}
	}
	if n := len(key); n > 1 && key[n-1] == 'S' {
		key = key[:n-1]
	}
	if n := len(key); n > 1 && key[n-2] == 'A' && key[n-1] == 'Y' {
		key = append(key[:n-2], 'Y')
	}
	if n := len(key); n > 1 && key[n-1] == 'A' {
		key = key[:n-1]
	}
	if len(key) > 6 {
		key = key[:6]
	}
	return string(key)
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// OneEdit reports whether a and b differ by exactly one edit of the
// Damerau–Levenshtein kind: one letter substituted, inserted or deleted,
// or two adjacent letters transposed (F. J. Damerau, "A technique for
// computer detection and correction of spelling errors", 1964: the four
// kinds cover most single typing errors). Equal strings are not one edit
// apart.
func OneEdit(a, b string) bool {
	la, lb := len(a), len(b)
	if la > lb {
		a, b, la, lb = b, a, lb, la
	}
	if lb-la > 1 || a == b {
		return false
	}
	i := 0
	for i < la && a[i] == b[i] {
		i++
	}
	if la == lb {
		if a[i+1:] == b[i+1:] { // substitution
			return true
		}
		return i+1 < la && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:] // transposition
	}
	return a[i:] == b[i+1:] // insertion
}

// Transposed reports whether a and b differ only by two adjacent letters
// swapped ("WEI" and "WIE"), a typing error Jaro–Winkler scores low in
// short names (its matching window is empty under four letters).
func Transposed(a, b string) bool {
	if len(a) != len(b) || a == b {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	return i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}
