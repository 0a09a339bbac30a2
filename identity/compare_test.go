package identity

import (
	"testing"
)

func TestCompareGiven(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"William", "William", "exact"},
		{"William", "Bill", "nickname"},
		{"Bill", "Will", "nickname"}, // both nicknames of William
		{"Robert", "Bob", "nickname"},
		{"Katherine", "Kate", "nickname"},
		{"Elizabeth", "Liz", "nickname"},
		{"Michael", "Micheal", "jaro-winkler>=0.92 or transposition or given/middle swap"},
		{"Wei", "Wie", "jaro-winkler>=0.92 or transposition or given/middle swap"},         // too short for Jaro's window
		{"Kay", "Kahla", "jaro-winkler>=0.80 or one edit or nickname of a near spelling"},  // Kay for Kayla, Kayla misspelt
		{"Jimmy", "Jmes", "jaro-winkler>=0.80 or one edit or nickname of a near spelling"}, // Jimmy for James, James misspelt
		{"Joe", "Jde", "jaro-winkler>=0.80 or one edit or nickname of a near spelling"},    // a typo in a short name
		{"John", "Mary", "disagree"},
		{"Wei", "Iwe", "disagree"},
		{"John", "Mary", "disagree"},
		{"José", "JOSE", "exact"},
		{"", "John", "null"},
	}
	for _, tt := range tests {
		if got := CompareGiven(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareGiven(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCompareBirthDates(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"1980-03-05", "1980-03-05", "exact"},
		{"1980-03-05", "1980-05-03", "day/month swapped"},
		{"1980-03-05", "1981-03-05", "one digit differs"},
		{"1980-03-05", "1980-03-15", "one digit differs"},
		{"1958-03-05", "1988-03-05", "disagree"}, // Jr. and Sr., not a typo
		{"1980-03-05", "1980-11-21", "same year"},
		{"1980-03-05", "1955-07-19", "disagree"},
		{"1980-03-05", "", "null"},
		{"1980-03-05", "not a date", "null"},
	}
	for _, tt := range tests {
		if got := CompareBirthDates(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareBirthDates(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want Address
	}{
		{"12 Oak Street, Apt 3, Springfield, IL 62701, US", Address{"12", "OAK ST", "3", "62701"}},
		{"12 OAK ST. #3, Springfield, IL 62701-1234", Address{"12", "OAK ST", "3", "62701"}},
		{"12 Oak St Unit 3, Springfield, IL 62701", Address{"12", "OAK ST", "3", "62701"}},
		{"0012 North Main Avenue, Suite 200, Columbus, OH 43215", Address{"12", "N MAIN AVE", "200", "43215"}},
		{"400 Lake Boulevard, Madison, WI 53703", Address{"400", "LAKE BLVD", "", "53703"}},
		{"", Address{}},
	}
	for _, tt := range tests {
		if got := ParseAddress(tt.in); got != tt.want {
			t.Errorf("ParseAddress(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	a, b := ParseAddress("12 Oak Street, Apt 3, Springfield, IL 62701"), ParseAddress("12 OAK ST #3, SPRINGFIELD, IL 62701-0001, US")
	if a.Key() != b.Key() {
		t.Errorf("one address written two ways: keys %q and %q, want equal", a.Key(), b.Key())
	}
}

func TestNormalizers(t *testing.T) {
	names := []struct{ in, want string }{
		{"O'Brien", "OBRIEN"},
		{"García-López", "GARCIA LOPEZ"},
		{"  anne   marie ", "ANNE MARIE"},
		{"St. John", "ST JOHN"},
	}
	for _, tt := range names {
		if got := NormalizeName(tt.in); got != tt.want {
			t.Errorf("NormalizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if fam, sfx := SplitSuffix(NormalizeName("Smith Jr.")); fam != "SMITH" || sfx != "JR" {
		t.Errorf("SplitSuffix(SMITH JR) = %q, %q, want SMITH, JR", fam, sfx)
	}
	phones := []struct{ in, want string }{
		{"(217) 555-0134", "2175550134"},
		{"+1 217 555 0134", "2175550134"},
		{"555-01", ""},
	}
	for _, tt := range phones {
		if got := NormalizePhone(tt.in); got != tt.want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCompareIdentifiers(t *testing.T) {
	ssn := func(v string) Identifier { return Identifier{System: SSNSystem, Value: v} }
	mrn := func(src, v string) Identifier { return Identifier{System: MRNSystem(src), Value: v} }
	tests := []struct {
		name string
		a, b []Identifier
		want int
	}{
		{"same authority and value", []Identifier{ssn("1")}, []Identifier{ssn("1")}, idAgree},
		{"same authority, other value", []Identifier{ssn("1")}, []Identifier{ssn("2")}, idConflict},
		{"different authorities say nothing", []Identifier{mrn("a", "1")}, []Identifier{mrn("b", "1")}, levelNull},
		{"an old value of one authority still agrees", []Identifier{mrn("a", "1"), mrn("a", "9")}, []Identifier{mrn("a", "9")}, idAgree},
		{"agreement elsewhere does not hide a conflict", []Identifier{ssn("1"), mrn("a", "1")}, []Identifier{ssn("1"), mrn("a", "2")}, idConflict},
	}
	for _, tt := range tests {
		if got := compareIdentifiers(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: compareIdentifiers = %s, want %s", tt.name, FieldIdentifier.Levels()[got], FieldIdentifier.Levels()[tt.want])
		}
	}
}

func TestPreviousSurname(t *testing.T) {
	married := Record{Family: "Okafor", Previous: []string{"Lindqvist"}}
	before := Record{Family: "Lindqvist"}
	stranger := Record{Family: "Brown"}
	in := interner{}
	a, b, c := prepare(&married, in), prepare(&before, in), prepare(&stranger, in)
	if got := FieldFamily.Levels()[compare(&a, &b).pat.level(FieldFamily)]; got != "previous name" {
		t.Errorf("married name against the maiden name = %q, want previous name", got)
	}
	if got := FieldFamily.Levels()[compare(&a, &c).pat.level(FieldFamily)]; got != "disagree" {
		t.Errorf("married name against another = %q, want disagree", got)
	}
	var r Record
	ExtraNames(&r, []byte(`{"resourceType":"Patient","name":[{"use":"official","family":"Okafor","suffix":["Jr."]},{"use":"maiden","family":"Lindqvist"}]}`))
	if r.Suffix != "Jr." || len(r.Previous) != 1 || r.Previous[0] != "Lindqvist" {
		t.Errorf("ExtraNames = suffix %q, previous %q; want Jr., [Lindqvist]", r.Suffix, r.Previous)
	}
}
