package identity

import (
	"fmt"
	"math"
	"math/bits"
	"strings"
)

// GenOptions configures Generate.
type GenOptions struct {
	// People is the number of people; each appears in one or more sources.
	People int
	// Seed selects the population: the same options give the same records.
	Seed int64
	// Sources are the connection names records come from; default four.
	Sources []string
}

// Hard-negative kinds (Population.Hard).
const (
	HardTwins     = "twins"    // same surname, birth date, address and phone; different given names
	HardJrSr      = "jr-sr"    // father and son: same given name, surname, address, phone; suffixes differ
	HardNamesake  = "namesake" // same given name, surname and birth date; otherwise unrelated
	HardHousehold = "spouses"  // same surname, address and phone
)

// HardPair is two different people who look alike on purpose.
type HardPair struct {
	Kind string
	A, B int32 // person numbers
}

// Population is synthetic ground truth: records and the person each
// belongs to.
type Population struct {
	Records []Record
	// Person is the true person number of each record.
	Person []int32
	// Hard lists the hard-negative pairs of people.
	Hard []HardPair
	// People is the number of people.
	People int
}

// SSNSystem is the assigning authority of the US Social Security number
// (the identifier system FHIR US Core uses).
const SSNSystem = "http://hl7.org/fhir/sid/us-ssn"

// MRNSystem returns the assigning authority of a source's MRNs in
// generated records.
func MRNSystem(source string) string { return "urn:ehrgate:mrn:" + source }

type genRNG struct{ s uint64 }

func (r *genRNG) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
func (r *genRNG) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}
func (r *genRNG) float() float64        { return float64(r.next()>>11) / (1 << 53) }
func (r *genRNG) chance(p float64) bool { return r.float() < p }

// zipfS is the exponent of the name-frequency curve: with 0.7 the most
// common given name is about 7% of a sex and the most common surname about
// 2.5% of people, near the shares in the United States (James 3.3% of men
// by the 1990 Census; Smith 0.8% of people by the 2010 Census, the top 200
// surnames 30%), a little more concentrated on purpose: shared names make
// matching harder.
const zipfS = 0.7

// zipf picks an index of n items with weight 1/(rank+1)^zipfS.
func (r *genRNG) zipf(n int) int {
	// inverse of the continuous approximation of the cumulative weight
	const s = zipfS
	hmax := (math.Pow(float64(n)+1, 1-s) - 1) / (1 - s)
	u := r.float() * hmax
	k := int(math.Pow(u*(1-s)+1, 1/(1-s))) - 1
	if k < 0 {
		k = 0
	}
	if k >= n {
		k = n - 1
	}
	return k
}

type genAddr struct {
	num                    int
	street, stype, unit    string
	city, state, zip, area string
}

type genPerson struct {
	given, middle, family, maiden, suffix string
	y, m, d                               int
	female                                bool
	addr, oldAddr                         genAddr
	phone, oldPhone                       string
	email, oldEmail                       string
	ssn                                   string
}

type generator struct {
	r       *genRNG
	opts    GenOptions
	pop     *Population
	mrn     []int
	persons []genPerson
}

// Generate builds a synthetic population across several sources with
// realistic noise and hard negatives, deterministic by seed.
//
// Each person appears in one to four sources (45%, 30%, 17%, 8%), at most
// once per source, with that source's MRN. Every record is independently
// noisy: given-name typos (4%), nicknames from the bundled table (7%), the
// middle name used as given name (2%), surname typos (3%), a maiden name in
// some sources for a quarter of adult women (and as an old name in some
// others), birth dates with day and
// month swapped (1.5%) or one digit wrong (1.5%) or missing (0.3%),
// addresses from before a move (12%) or missing (8%) and written in any
// USPS or long form, old or missing phone numbers, emails mostly missing,
// an SSN on a quarter of records. Hard negatives: 1% of units are twins, 1%
// a Jr./Sr. pair at one address, 0.5% namesakes (a common given name and
// surname, the same birth date),
// 6% spouses.
func Generate(opts GenOptions) *Population {
	if len(opts.Sources) == 0 {
		opts.Sources = []string{"hospital-a", "clinic-b", "hospital-c", "health-d"}
	}
	g := &generator{
		r:    &genRNG{s: uint64(opts.Seed)*0x2545f4914f6cdd1d + 0x9e3779b97f4a7c15},
		opts: opts,
		pop:  &Population{},
		mrn:  make([]int, len(opts.Sources)),
	}
	g.persons = make([]genPerson, 0, opts.People+1)
	g.pop.Records = make([]Record, 0, opts.People*2)
	g.pop.Person = make([]int32, 0, opts.People*2)
	for len(g.persons) < opts.People {
		g.unit()
	}
	g.persons = g.persons[:opts.People]
	for p := range g.persons {
		g.emit(int32(p))
	}
	g.persons = nil
	kept := g.pop.Hard[:0]
	for _, h := range g.pop.Hard {
		if int(h.A) < opts.People && int(h.B) < opts.People {
			kept = append(kept, h)
		}
	}
	g.pop.Hard = kept
	g.pop.People = opts.People
	return g.pop
}

func (g *generator) unit() {
	r := g.r
	p := g.newPerson()
	a := int32(len(g.persons))
	g.persons = append(g.persons, p)
	switch x := r.float(); {
	case x < 0.01: // twins
		q := p
		q.female = r.chance(0.5)
		for range 20 {
			q.given = g.givenName(q.female)
			if q.given != p.given && !Nicknames(NormalizeName(q.given), NormalizeName(p.given)) && JaroWinkler(NormalizeName(q.given), NormalizeName(p.given)) < 0.8 {
				break
			}
		}
		q.middle = g.middleName(q.female)
		q.email, q.ssn, q.maiden = g.email(q), g.ssn(), ""
		g.hard(HardTwins, a, q)
	case x < 0.02 && !p.female && p.y < 1990: // Jr./Sr.
		q := p
		p.suffix = "Sr"
		g.persons[a] = p
		q.suffix = "Jr"
		q.y = p.y + 18 + r.intn(28)
		q.m, q.d = 1+r.intn(12), 1+r.intn(28)
		q.email, q.ssn, q.oldEmail = g.email(q), g.ssn(), ""
		g.hard(HardJrSr, a, q)
	case x < 0.025: // namesakes: a common name and one birth date, nothing else
		if p.female {
			p.given = femaleNames[r.intn(20)]
		} else {
			p.given = maleNames[r.intn(20)]
		}
		p.family = commonSurnames[r.intn(30)]
		p.maiden = ""
		p.email, p.oldEmail = g.email(p), g.email(p)
		g.persons[a] = p
		q := g.newPerson()
		q.given, q.family, q.y, q.m, q.d, q.female, q.maiden = p.given, p.family, p.y, p.m, p.d, p.female, ""
		q.email, q.oldEmail = g.email(q), g.email(q)
		g.hard(HardNamesake, a, q)
	case x < 0.085: // spouses
		q := g.newPerson()
		q.female = !p.female
		q.given, q.middle = g.givenName(q.female), g.middleName(q.female)
		q.family, q.addr, q.oldAddr, q.phone = p.family, p.addr, p.oldAddr, p.phone
		q.email = g.email(q)
		g.hard(HardHousehold, a, q)
	}
}

func (g *generator) hard(kind string, a int32, q genPerson) {
	b := int32(len(g.persons))
	g.persons = append(g.persons, q)
	g.pop.Hard = append(g.pop.Hard, HardPair{Kind: kind, A: a, B: b})
}

func (g *generator) givenName(female bool) string {
	if female {
		return femaleNames[g.r.zipf(len(femaleNames))]
	}
	return maleNames[g.r.zipf(len(maleNames))]
}

func (g *generator) middleName(female bool) string {
	if g.r.chance(0.35) {
		return ""
	}
	return g.givenName(female)
}

func (g *generator) surname() string {
	if g.r.chance(0.35) { // the rest is the long tail real surnames have
		return commonSurnames[g.r.zipf(len(commonSurnames))]
	}
	s := surnameStarts[g.r.intn(len(surnameStarts))]
	if g.r.chance(0.5) {
		s += strings.ToLower(surnameStarts[g.r.intn(len(surnameStarts))])
	}
	return s + surnameEnds[g.r.intn(len(surnameEnds))]
}

func (g *generator) address() genAddr {
	r := g.r
	c := genCities[r.intn(len(genCities))]
	st := streetTypes[r.intn(len(streetTypes))]
	a := genAddr{
		num: 1 + r.intn(9999), street: streetNames[r.intn(len(streetNames))], stype: st[0],
		city: c.city, state: c.state, zip: fmt.Sprintf("%s%02d", c.zip3, r.intn(100)), area: c.area,
	}
	if r.chance(0.25) {
		a.unit = fmt.Sprint(1 + r.intn(400))
	}
	return a
}

func (g *generator) phoneNumber(area string) string {
	return fmt.Sprintf("%s%03d%04d", area, 200+g.r.intn(800), g.r.intn(10000))
}

func (g *generator) email(p genPerson) string {
	if g.r.chance(0.3) {
		return ""
	}
	doms := []string{"example.com", "example.org", "example.net", "mail.example"}
	return fmt.Sprintf("%s.%s%d@%s", strings.ToLower(NormalizeName(p.given)), strings.ToLower(strings.ReplaceAll(NormalizeName(p.family), " ", "")), g.r.intn(1000), doms[g.r.intn(len(doms))])
}

func (g *generator) ssn() string {
	return fmt.Sprintf("%03d-%02d-%04d", 1+g.r.intn(899), 1+g.r.intn(99), 1+g.r.intn(9999))
}

func (g *generator) newPerson() genPerson {
	r := g.r
	var p genPerson
	p.female = r.chance(0.51)
	p.given, p.middle = g.givenName(p.female), g.middleName(p.female)
	p.family = g.surname()
	age := r.intn(96)
	p.y, p.m, p.d = 2026-age, 1+r.intn(12), 1+r.intn(28)
	if p.female && age >= 22 && r.chance(0.25) {
		p.maiden = g.surname()
	}
	p.addr, p.oldAddr = g.address(), g.address()
	p.phone, p.oldPhone = g.phoneNumber(p.addr.area), g.phoneNumber(p.oldAddr.area)
	p.email = g.email(p)
	p.oldEmail = g.email(p)
	p.ssn = g.ssn()
	return p
}

// emit writes the records of person p.
func (g *generator) emit(p int32) {
	r := g.r
	k := 1
	switch x := r.float(); {
	case x < 0.08:
		k = 4
	case x < 0.25:
		k = 3
	case x < 0.55:
		k = 2
	}
	k = min(k, len(g.opts.Sources))
	srcs := make([]int, len(g.opts.Sources))
	for i := range srcs {
		srcs[i] = i
	}
	for i := 0; i < k; i++ { // partial Fisher–Yates
		j := i + r.intn(len(srcs)-i)
		srcs[i], srcs[j] = srcs[j], srcs[i]
	}
	for _, s := range srcs[:k] {
		g.pop.Records = append(g.pop.Records, g.record(&g.persons[p], s))
		g.pop.Person = append(g.pop.Person, p)
	}
}

func (g *generator) record(p *genPerson, src int) Record {
	r := g.r
	source := g.opts.Sources[src]
	g.mrn[src]++
	rec := Record{
		Key:   Key{Source: source, ID: fmt.Sprintf("%s-%07d", source[:1], g.mrn[src])},
		Order: int64(len(g.pop.Records)),
	}
	rec.Identifiers = []Identifier{{System: MRNSystem(source), Value: fmt.Sprintf("M%08d", g.mrn[src]*7+src)}}
	if r.chance(0.25) {
		rec.Identifiers = append(rec.Identifiers, Identifier{System: SSNSystem, Value: p.ssn})
	}
	// given and middle names
	given, middle := p.given, p.middle
	switch x := r.float(); {
	case x < 0.04:
		given = typo(r, given)
	case x < 0.11:
		if nn := NicknamesOf(NormalizeName(given)); len(nn) > 0 {
			given = titleCase(nn[r.intn(len(nn))])
		}
	case x < 0.115 && middle != "":
		given, middle = middle, ""
	}
	if r.chance(0.4) {
		middle = ""
	}
	rec.Given, rec.Middle = given, middle
	// family name and suffix
	family := p.family
	if p.maiden != "" {
		switch x := r.float(); {
		case x < 0.35: // this source knew her before the change
			family = p.maiden
		case x < 0.6: // this source records the maiden name as an old name
			rec.Previous = []string{p.maiden}
		}
	}
	if r.chance(0.03) {
		family = typo(r, family)
	}
	switch sfx := p.suffix; {
	case sfx == "":
	case r.chance(0.5):
		family += " " + sfx + "."
	case r.chance(0.6):
		rec.Suffix = sfx
	}
	rec.Family = family
	// birth date
	y, m, d := p.y, p.m, p.d
	switch x := r.float(); {
	case x < 0.015 && d <= 12 && d != m:
		m, d = d, m
	case x < 0.03:
		y, m, d = dateTypo(r, y, m, d)
	}
	if !r.chance(0.003) {
		rec.BirthDate = fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	}
	if !r.chance(0.01) {
		rec.Gender = "male"
		if p.female {
			rec.Gender = "female"
		}
	}
	// address
	a := p.addr
	if r.chance(0.12) {
		a = p.oldAddr
	}
	if !r.chance(0.08) {
		rec.Address = formatAddress(r, a)
	}
	ph := p.phone
	if r.chance(0.08) {
		ph = p.oldPhone
	}
	if !r.chance(0.15) {
		rec.Phone = formatPhone(r, ph)
	}
	em := p.email
	if r.chance(0.05) {
		em = p.oldEmail
	}
	if r.chance(0.45) {
		rec.Email = em
		if r.chance(0.2) {
			rec.Email = strings.ToUpper(em)
		}
	}
	return rec
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return s[:1] + strings.ToLower(s[1:])
}

// typo substitutes, deletes, transposes or doubles one letter.
func typo(r *genRNG, s string) string {
	b := []byte(s)
	if len(b) < 3 {
		return s
	}
	i := 1 + r.intn(len(b)-2)
	switch r.intn(4) {
	case 0:
		b[i] = byte('a' + r.intn(26))
	case 1:
		b = append(b[:i], b[i+1:]...)
	case 2:
		b[i], b[i+1] = b[i+1], b[i]
	default:
		b = append(b[:i+1], b[i:]...)
	}
	return string(b)
}

// dateTypo changes one digit of a date, keeping it a valid date.
func dateTypo(r *genRNG, y, m, d int) (int, int, int) {
	for range 10 {
		yy, mm, dd := y, m, d
		switch r.intn(3) {
		case 0:
			yy = y - y%10 + r.intn(10)
		case 1:
			dd = d - d%10 + r.intn(10)
		default:
			mm = m - m%10 + r.intn(10)
		}
		if (yy != y || mm != m || dd != d) && mm >= 1 && mm <= 12 && dd >= 1 && dd <= 28 && yy <= 2026 {
			return yy, mm, dd
		}
	}
	return y, m, d
}

func formatAddress(r *genRNG, a genAddr) string {
	st := a.stype
	for _, t := range streetTypes {
		if t[0] == a.stype && r.chance(0.5) {
			st = t[1]
			if r.chance(0.3) {
				st += "."
			}
		}
	}
	line := fmt.Sprintf("%d %s %s", a.num, a.street, st)
	if r.chance(0.2) {
		line = strings.ToUpper(line)
	}
	parts := []string{line}
	if a.unit != "" {
		switch r.intn(3) {
		case 0:
			parts = append(parts, "Apt "+a.unit)
		case 1:
			parts[0] += " Unit " + a.unit
		default:
			parts[0] += " #" + a.unit
		}
	}
	zip := a.zip
	if r.chance(0.2) {
		zip += fmt.Sprintf("-%04d", r.intn(10000))
	}
	parts = append(parts, a.city, a.state+" "+zip)
	if r.chance(0.5) {
		parts = append(parts, "US")
	}
	return strings.Join(parts, ", ")
}

func formatPhone(r *genRNG, p string) string {
	switch r.intn(4) {
	case 0:
		return p
	case 1:
		return fmt.Sprintf("(%s) %s-%s", p[:3], p[3:6], p[6:])
	case 2:
		return fmt.Sprintf("%s-%s-%s", p[:3], p[3:6], p[6:])
	}
	return fmt.Sprintf("+1 %s %s %s", p[:3], p[3:6], p[6:])
}
