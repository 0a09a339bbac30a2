package identity

import "strings"

// Field is one compared attribute of a record pair.
type Field int

// The compared fields, in the order of a comparison pattern.
const (
	FieldGiven Field = iota
	FieldMiddle
	FieldFamily
	FieldBirthDate
	FieldGender
	FieldAddress
	FieldPhone
	FieldEmail
	FieldIdentifier
	numFields
)

// Level 0 of every field is "null": one side lacks the field, which says
// nothing either way and weighs 0. Higher levels are the named levels of
// each field, from disagreement to exact agreement.
const levelNull = 0

// fieldInfo names fields and their levels (index = level).
var fieldInfo = [numFields]struct {
	name   string
	levels []string
}{
	FieldGiven:      {"given", []string{"null", "disagree", "jaro-winkler>=0.80 or one edit or nickname of a near spelling", "jaro-winkler>=0.92 or transposition or given/middle swap", "nickname", "exact"}},
	FieldMiddle:     {"middle", []string{"null", "disagree", "initial", "exact"}},
	FieldFamily:     {"family", []string{"null", "disagree", "jaro-winkler>=0.80", "nysiis or jaro-winkler>=0.92 or transposition or shared part", "previous name", "exact"}},
	FieldBirthDate:  {"birthDate", []string{"null", "disagree", "same year", "one digit differs", "day/month swapped", "exact"}},
	FieldGender:     {"gender", []string{"null", "disagree", "exact"}},
	FieldAddress:    {"address", []string{"null", "disagree", "same zip", "same number and street", "exact"}},
	FieldPhone:      {"phone", []string{"null", "disagree", "exact"}},
	FieldEmail:      {"email", []string{"null", "disagree", "exact"}},
	FieldIdentifier: {"identifier", []string{"null", "conflict (same authority, different value)", "exact (same authority and value)"}},
}

// String returns the field's name.
func (f Field) String() string { return fieldInfo[f].name }

// Levels returns the names of the field's agreement levels, null first.
func (f Field) Levels() []string { return fieldInfo[f].levels }

// Guard levels: a pair is linked automatically only when each of these
// fields is null or at least at this level.
const (
	givenPartial = 2 // jaro-winkler>=0.80, similar, nickname, exact
	dobPartial   = 3 // one digit, swap, exact
	idConflict   = 1
	idAgree      = 2
	nameExact    = 5 // FieldGiven exact
	familyExact  = 5
)

// pattern packs the level of every field, 3 bits each.
type pattern uint32

func (p pattern) level(f Field) int { return int(p>>(3*uint(f))) & 7 }

func (p *pattern) set(f Field, l int) { *p |= pattern(l) << (3 * uint(f)) }

// comparison is the outcome of comparing two records: the pattern of
// levels, and bit 31 set when generational suffixes conflict (Jr. and
// Sr.), which is a guard, not a field of the model.
type comparison struct{ pat pattern }

const suffixBit = pattern(1) << 31

func (c comparison) suffixConflict() bool { return c.pat&suffixBit != 0 }

// levels returns the pattern without the suffix bit.
func (c comparison) levels() pattern { return c.pat &^ suffixBit }

// compare compares two prepared records field by field.
func compare(a, b *features) comparison {
	var c comparison
	c.pat.set(FieldGiven, compareGiven(a, b))
	c.pat.set(FieldMiddle, compareMiddle(a.middle, b.middle))
	fl := compareFamily(a.family, b.family, a.familyNY, b.familyNY)
	if fl != familyExact && fl != levelNull && sharesPrevious(a, b) {
		fl = 4
	}
	c.pat.set(FieldFamily, fl)
	c.pat.set(FieldBirthDate, compareDOB(a.dob, b.dob))
	switch {
	case a.gender == 0 || b.gender == 0:
	case a.gender == b.gender:
		c.pat.set(FieldGender, 2)
	default:
		c.pat.set(FieldGender, 1)
	}
	c.pat.set(FieldAddress, compareAddress(&a.addr, &b.addr))
	c.pat.set(FieldPhone, compareExact(a.phone, b.phone))
	c.pat.set(FieldEmail, compareExact(a.email, b.email))
	c.pat.set(FieldIdentifier, compareIdentifiers(a.ids, b.ids))
	if a.suffix != "" && b.suffix != "" && a.suffix != b.suffix {
		c.pat |= suffixBit
	}
	return c
}

func compareExact(a, b string) int {
	switch {
	case a == "" || b == "":
		return levelNull
	case a == b:
		return 2
	}
	return 1
}

func compareGiven(a, b *features) int {
	x, y := a.given, b.given
	if x == "" || y == "" {
		return levelNull
	}
	if x == y {
		return 5
	}
	if sharesGroup(a.nick, b.nick) {
		return 4
	}
	jw := JaroWinkler(x, y)
	if jw >= 0.92 || Transposed(x, y) || firstToken(a.middle) == y || firstToken(b.middle) == x {
		return 3
	}
	// one edit (Damerau-Levenshtein distance 1, as Splink's default name
	// comparison has) catches the typos of short names Jaro-Winkler
	// scores low ("JOE" and "JDE": 0.78; "ZOE" and "ZE")
	if jw >= 0.80 || OneEdit(x, y) || nearNickname(x, a.nick, y, b.nick) {
		return 2
	}
	return 1
}

// CompareGiven returns the agreement level name of two given names (for
// tests and explanations).
func CompareGiven(a, b string) string {
	fa := features{given: firstToken(NormalizeName(a))}
	fb := features{given: firstToken(NormalizeName(b))}
	fa.nick, fb.nick = nickGroupsOf(fa.given), nickGroupsOf(fb.given)
	return fieldInfo[FieldGiven].levels[compareGiven(&fa, &fb)]
}

// compareMiddle compares the first middle names; an initial agrees with a
// name that starts with it.
func compareMiddle(a, b string) int {
	a, b = firstToken(a), firstToken(b)
	switch {
	case a == "" || b == "":
		return levelNull
	case a == b && len(a) > 1:
		return 3
	case a[0] == b[0] && (len(a) == 1 || len(b) == 1 || Nicknames(a, b)):
		return 2
	case Nicknames(a, b):
		return 2
	}
	return 1
}

func compareFamily(x, y, nx, ny string) int {
	if x == "" || y == "" {
		return levelNull
	}
	if x == y {
		return familyExact
	}
	jw := JaroWinkler(x, y)
	if jw >= 0.92 || nx == ny || Transposed(x, y) || sharesPart(x, y) {
		return 3
	}
	if jw >= 0.80 {
		return 2
	}
	return 1
}

// sharesPrevious reports whether one record's surname or previous surnames
// (a maiden name) equal the other's.
func sharesPrevious(a, b *features) bool {
	if len(a.previous) == 0 && len(b.previous) == 0 {
		return false
	}
	for _, x := range append([]string{a.family}, a.previous...) {
		for _, y := range append([]string{b.family}, b.previous...) {
			if x != "" && x == y {
				return true
			}
		}
	}
	return false
}

// sharesPart reports whether two multi-part surnames share a part ("GARCIA
// LOPEZ" and "GARCIA").
func sharesPart(x, y string) bool {
	if !strings.Contains(x, " ") && !strings.Contains(y, " ") {
		return false
	}
	for _, p := range strings.Fields(x) {
		for _, q := range strings.Fields(y) {
			if p == q && len(p) > 2 {
				return true
			}
		}
	}
	return false
}

// compareDOB compares two YYYYMMDD dates.
func compareDOB(a, b int32) int {
	switch {
	case a == 0 || b == 0:
		return levelNull
	case a == b:
		return 5
	}
	ya, ma, da := a/10000, a/100%100, a%100
	yb, mb, db := b/10000, b/100%100, b%100
	if ya == yb && ma == db && da == mb {
		return 4
	}
	// one digit wrong, unless it moves the year by ten or more: the same
	// day and month decades apart is the Jr./Sr. pattern, not a typo
	if digitsDiffer(a, b) == 1 && abs(ya-yb) < 10 {
		return 3
	}
	if ya == yb {
		return 2
	}
	return 1
}

// CompareBirthDates returns the agreement level name of two YYYY-MM-DD
// birth dates (for tests and explanations).
func CompareBirthDates(a, b string) string {
	return fieldInfo[FieldBirthDate].levels[compareDOB(NormalizeBirthDate(a), NormalizeBirthDate(b))]
}

func abs(x int32) int32 {
	if x < 0 {
		return -x
	}
	return x
}

// digitsDiffer counts the decimal digits (of eight) in which a and b differ.
func digitsDiffer(a, b int32) int {
	n := 0
	for i := 0; i < 8; i++ {
		if a%10 != b%10 {
			n++
		}
		a, b = a/10, b/10
	}
	return n
}

func compareAddress(a, b *Address) int {
	if a.Street == "" || b.Street == "" {
		return levelNull
	}
	if *a == *b {
		return 4
	}
	if a.Number == b.Number && a.Number != "" && (a.Zip == b.Zip || a.Zip == "" || b.Zip == "") && JaroWinkler(a.Street, b.Street) >= 0.9 {
		return 3
	}
	if a.Zip != "" && a.Zip == b.Zip {
		return 2
	}
	return 1
}

// compareIdentifiers: conflict when the records share an assigning
// authority and, for some shared authority, no value of one equals a value
// of the other (a record may carry several values of one authority, such as
// an old MRN); exact when they share one and every shared authority has a
// common value; null when they share no authority.
func compareIdentifiers(a, b []Identifier) int {
	level := levelNull
	for i, x := range a {
		if seenSystem(a[:i], x.System) {
			continue
		}
		shared, common := false, false
		for _, y := range b {
			if y.System != x.System {
				continue
			}
			shared = true
			for _, z := range a[i:] {
				if z.System == x.System && z.Value == y.Value {
					common = true
				}
			}
		}
		switch {
		case shared && !common:
			return idConflict
		case shared:
			level = idAgree
		}
	}
	return level
}

func seenSystem(ids []Identifier, system string) bool {
	for _, id := range ids {
		if id.System == system {
			return true
		}
	}
	return false
}
