package identity

import (
	"strings"

	"ehrgate/normalize"
)

// Key identifies a record: the connection (or feed) it came from and its id
// there.
type Key struct {
	Source string `json:"source"`
	ID     string `json:"id"`
}

// String returns "source/id".
func (k Key) String() string { return k.Source + "/" + k.ID }

// Less orders keys by source, then id.
func (k Key) Less(o Key) bool {
	if k.Source != o.Source {
		return k.Source < o.Source
	}
	return k.ID < o.ID
}

// Identifier is a business identifier with its assigning authority (the
// FHIR Identifier.system URI).
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Record is the demographics of one Patient record, as received. Any field
// may be empty.
type Record struct {
	Key    Key
	Given  string // first given name
	Middle string // further given names
	Family string // may end in a suffix ("Smith Jr.")
	Suffix string // generational suffix when the source gave it apart
	// Previous are earlier surnames (a maiden name): FHIR names with use
	// "old" or "maiden".
	Previous    []string
	BirthDate   string // YYYY-MM-DD
	Gender      string // FHIR administrative gender
	Address     string // one line, as normalize.Patient holds it
	Phone       string
	Email       string
	Identifiers []Identifier
	// Order says how old the record is (when ehrgate first stored it, as
	// any increasing number); lower is older. New person ids derive from
	// a cluster's oldest record.
	Order int64
}

// FromPatient returns the record of a normalized Patient from source.
func FromPatient(source string, p normalize.Patient) Record {
	r := Record{
		Key:       Key{Source: source, ID: p.Source.ID},
		Family:    p.Family,
		BirthDate: p.BirthDate,
		Gender:    p.Gender,
		Address:   p.Address,
		Phone:     p.Phone,
		Email:     p.Email,
	}
	if len(p.Given) > 0 {
		r.Given = p.Given[0]
		r.Middle = strings.Join(p.Given[1:], " ")
	}
	for _, id := range p.Identifiers {
		r.Identifiers = append(r.Identifiers, Identifier{System: id.System, Value: id.Value})
	}
	return r
}

// features is a record prepared for comparison.
type features struct {
	given, middle, family, suffix string
	givenNY, familyNY             string
	dob                           int32 // YYYYMMDD, 0 unknown
	gender                        byte  // 'M', 'F', 0
	addr                          Address
	phone, email                  string
	ids                           []Identifier // system and value trimmed; system lower-cased
	previous                      []string     // normalized earlier surnames
	nick                          []int32      // nickname groups of given (shared with the table)
}

// interner shares equal strings (names repeat a lot).
type interner map[string]string

func (in interner) s(v string) string {
	if v == "" {
		return ""
	}
	if x, ok := in[v]; ok {
		return x
	}
	in[v] = v
	return v
}

func prepare(r *Record, in interner) features {
	var f features
	f.given = in.s(firstToken(NormalizeName(r.Given)))
	mid := NormalizeName(r.Middle)
	if rest := restTokens(NormalizeName(r.Given)); rest != "" {
		mid = strings.TrimSpace(rest + " " + mid)
	}
	f.middle = in.s(mid)
	fam, sfx := SplitSuffix(NormalizeName(r.Family))
	if s := NormalizeSuffix(r.Suffix); s != "" {
		sfx = s
	}
	f.family, f.suffix = in.s(fam), sfx
	f.givenNY, f.familyNY = in.s(NYSIIS(f.given)), in.s(NYSIIS(fam))
	f.nick = nickGroupsOf(f.given)
	for _, p := range r.Previous {
		if n, _ := SplitSuffix(NormalizeName(p)); n != "" && n != fam {
			f.previous = append(f.previous, in.s(n))
		}
	}
	f.dob = NormalizeBirthDate(r.BirthDate)
	if g := NormalizeGender(r.Gender); g != "" {
		f.gender = g[0]
	}
	if r.Address != "" {
		f.addr = ParseAddress(r.Address)
		f.addr.Street = in.s(f.addr.Street)
		f.addr.Zip = in.s(f.addr.Zip)
	}
	f.phone = NormalizePhone(r.Phone)
	f.email = NormalizeEmail(r.Email)
	for _, id := range r.Identifiers {
		s, v := strings.ToLower(strings.TrimSpace(id.System)), strings.TrimSpace(id.Value)
		if s == "" || v == "" {
			continue // an identifier without its authority says nothing across sources
		}
		f.ids = append(f.ids, Identifier{System: in.s(s), Value: v})
	}
	return f
}

func firstToken(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i]
	}
	return s
}

func restTokens(s string) string {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[i+1:]
	}
	return ""
}
