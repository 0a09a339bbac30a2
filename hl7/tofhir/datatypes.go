package tofhir

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	"ehrgate/hl7"
)

// obj is a JSON object under construction; encoding/json writes its keys
// sorted, so output is deterministic.
type obj = map[string]any

// set puts v under k unless v is empty.
func set(o obj, k string, v any) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return
		}
	case []any:
		if len(x) == 0 {
			return
		}
	case obj:
		if len(x) == 0 {
			return
		}
	case nil:
		return
	}
	o[k] = v
}

// id derives a deterministic, FHIR-id-safe id ([a-z0-9-], 1-64 chars) from
// parts: a prefix for readability and 32 hex digits of SHA-256.
func id(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0x1f})
	}
	return prefix + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Well-known systems.
const (
	sysLOINC    = "http://loinc.org"
	sysSNOMED   = "http://snomed.info/sct"
	sysCVX      = "http://hl7.org/fhir/sid/cvx"
	sysUCUM     = "http://unitsofmeasure.org"
	sysV2_0203  = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysActCode  = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysInterp   = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	sysObsCat   = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysMVX      = "http://hl7.org/fhir/sid/mvx"
	sysICD10    = "http://hl7.org/fhir/sid/icd-10"
	sysRxNorm   = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysNDC      = "http://hl7.org/fhir/sid/ndc"
	sysICD10CM  = "http://hl7.org/fhir/sid/icd-10-cm"
	sysLocalPfx = "urn:ehrgate:hl7v2:codesystem:"
)

// codingSystems maps HL7 table 0396 coding-system names to FHIR systems.
var codingSystems = map[string]string{
	"LN": sysLOINC, "LNC": sysLOINC, "SCT": sysSNOMED, "SNM": sysSNOMED, "SNOMED": sysSNOMED,
	"CVX": sysCVX, "UCUM": sysUCUM, "ANS+": sysUCUM, "MVX": sysMVX, "I10": sysICD10, "ICD10": sysICD10,
	"RXNORM": sysRxNorm, "RXN": sysRxNorm, "NDC": sysNDC, "I10C": sysICD10CM, "ICD10CM": sysICD10CM,
	"HL70063": "http://terminology.hl7.org/CodeSystem/v2-0063", "HL70064": "http://terminology.hl7.org/CodeSystem/v2-0064",
	"HL70443": "http://terminology.hl7.org/CodeSystem/v2-0443", "HL70487": "http://terminology.hl7.org/CodeSystem/v2-0487", "HL70488": "http://terminology.hl7.org/CodeSystem/v2-0488", "HL70131": "http://terminology.hl7.org/CodeSystem/v2-0131",
	"HL70086": "http://terminology.hl7.org/CodeSystem/v2-0086", "HL70276": "http://terminology.hl7.org/CodeSystem/v2-0276",
	"HL70001": "http://terminology.hl7.org/CodeSystem/v2-0001",
	"HL70005": "urn:oid:2.16.840.1.113883.6.238", "HL70162": "http://terminology.hl7.org/CodeSystem/v2-0162",
	"HL70163": "http://terminology.hl7.org/CodeSystem/v2-0163", "NCIT": "http://ncithesaurus-stage.nci.nih.gov",
}

// codingSystem returns the FHIR system for a v2 coding-system name; local
// and unknown names ("L", "99zzz", a lab's own name) become
// urn:ehrgate:hl7v2:codesystem:<name> so the original code is kept and the
// terminology layer can map it.
func codingSystem(name string) string {
	if name == "" {
		return ""
	}
	if s, ok := codingSystems[strings.ToUpper(name)]; ok {
		return s
	}
	return sysLocalPfx + url.PathEscape(name) // a valid URI even for names with spaces
}

// cwe converts a CE/CWE/CNE repetition to a CodeableConcept: the primary
// triplet, the alternate triplet, text from component 9 or the first
// display.
func cwe(r hl7.Repetition) obj {
	var codings []any
	add := func(code, display, system string) {
		if code == "" && display == "" {
			return
		}
		c := obj{}
		set(c, "code", code)
		set(c, "display", display)
		set(c, "system", codingSystem(system))
		if code == "" {
			return // display alone goes to text
		}
		codings = append(codings, c)
	}
	add(r.Component(1).Value(), r.Component(2).Value(), r.Component(3).Value())
	add(r.Component(4).Value(), r.Component(5).Value(), r.Component(6).Value())
	cc := obj{}
	set(cc, "coding", codings)
	text := r.Component(9).Value()
	if text == "" && len(codings) == 0 {
		text = firstNonEmpty(r.Component(2).Value(), r.Component(5).Value())
	}
	set(cc, "text", text)
	return cc
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// hd is a hierarchic designator (assigning authority, facility).
type hd struct{ namespace, universal, typ string }

func hdOf(c hl7.Component) hd {
	return hd{c.SubComponent(1), c.SubComponent(2), c.SubComponent(3)}
}

func hdOfField(f hl7.Field) hd {
	return hd{f.Component(1).Value(), f.Component(2).Value(), f.Component(3).Value()}
}

func (h hd) String() string {
	if h.namespace != "" {
		return h.namespace
	}
	return h.universal
}

// dateTime converts a v2 DTM/TS ("YYYY[MM[DD[HHMM[SS[.S]]]]][+/-ZZZZ]") to
// a FHIR dateTime, keeping the precision; a time without an offset is read
// in loc. ok is false for anything else.
func dateTime(s string, loc *time.Location) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	tz := ""
	if i := strings.IndexAny(s, "+-"); i > 0 {
		s, tz = s[:i], s[i:]
	}
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i+1:]
	}
	for _, c := range s + frac {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	// An offset is +/-HHMM at any precision ("2019-03-12" is not a date
	// with offset "-03-12").
	if tz != "" && (len(tz) != 5 || atoi(tz[1:]) < 0) {
		return "", false
	}
	switch len(s) {
	case 4:
		return s, true
	case 6:
		if !validDate(s + "01") {
			return "", false
		}
		return s[:4] + "-" + s[4:6], true
	case 8:
		if !validDate(s) {
			return "", false
		}
		return s[:4] + "-" + s[4:6] + "-" + s[6:8], true
	case 10, 12, 14:
	default:
		return "", false
	}
	for len(s) < 14 {
		s += "0"
	}
	var off *time.Location = loc
	if tz != "" {
		if len(tz) != 5 {
			return "", false
		}
		hh, mm := atoi(tz[1:3]), atoi(tz[3:5])
		if hh < 0 || mm < 0 || hh > 14 || mm > 59 {
			return "", false
		}
		secs := hh*3600 + mm*60
		if tz[0] == '-' {
			secs = -secs
		}
		off = time.FixedZone("", secs)
	}
	if off == nil {
		off = time.UTC
	}
	t, err := time.ParseInLocation("20060102150405", s, off)
	if err != nil {
		return "", false
	}
	layout := "2006-01-02T15:04:05Z07:00"
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n := atoi(frac)
		for i := len(frac); i < 9; i++ {
			n *= 10
		}
		t = t.Add(time.Duration(n))
		layout = "2006-01-02T15:04:05." + strings.Repeat("0", len(frac)) + "Z07:00"
	}
	return t.Format(layout), true
}

func validDate(s string) bool {
	_, err := time.Parse("20060102", s)
	return err == nil
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// date is dateTime cut to its date part (for birthDate).
func date(s string, loc *time.Location) string {
	v, ok := dateTime(s, loc)
	if !ok {
		return ""
	}
	if len(v) > 10 {
		v = v[:10]
	}
	return v
}

// xpn converts a person name repetition.
func xpn(r hl7.Repetition) obj {
	n := obj{}
	set(n, "family", r.Component(1).SubComponent(1))
	var given []any
	for _, g := range []string{r.Component(2).Value(), r.Component(3).Value()} {
		if g != "" {
			given = append(given, g)
		}
	}
	set(n, "given", given)
	if p := r.Component(5).Value(); p != "" {
		n["prefix"] = []any{p}
	}
	var suffix []any
	for _, sfx := range []string{r.Component(4).Value(), r.Component(6).Value()} {
		if sfx != "" {
			suffix = append(suffix, sfx)
		}
	}
	set(n, "suffix", suffix)
	set(n, "use", nameUse[r.Component(7).Value()])
	return n
}

var nameUse = map[string]string{"L": "official", "D": "usual", "M": "maiden", "A": "nickname", "N": "nickname",
	"C": "old", "B": "official", "S": "anonymous", "T": "temp", "U": "usual", "P": "official"}

// xcnDisplay renders a practitioner (XCN) as "Given Family (id)".
func xcnDisplay(r hl7.Repetition) string {
	name := strings.TrimSpace(strings.Join(nonEmpty(r.Component(3).Value(), r.Component(4).Value(), r.Component(2).SubComponent(1)), " "))
	if pre := r.Component(6).Value(); pre != "" && name != "" {
		name = pre + " " + name
	}
	return name
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// xad converts an address repetition.
func xad(r hl7.Repetition) obj {
	a := obj{}
	var lines []any
	for _, l := range []string{streetLine(r.Component(1)), r.Component(2).Value()} {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	set(a, "line", lines)
	set(a, "city", strings.TrimSpace(r.Component(3).Value()))
	set(a, "state", r.Component(4).Value())
	set(a, "postalCode", r.Component(5).Value())
	set(a, "country", r.Component(6).Value())
	set(a, "use", addressUse[r.Component(7).Value()])
	return a
}

var addressUse = map[string]string{"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "billing", "M": "home", "P": "home"}

// xtn converts a telecom repetition: the v2.3 string in component 1, or
// the v2.5+ parts (area code, local number, extension; email in 4).
func xtn(r hl7.Repetition, defaultUse string) obj {
	t := obj{}
	equip := r.Component(3).Value()
	switch equip {
	case "Internet", "X.400":
		set(t, "system", "email")
		set(t, "value", firstNonEmpty(r.Component(4).Value(), r.Component(1).Value()))
	default:
		sys := map[string]string{"PH": "phone", "CP": "phone", "FX": "fax", "BP": "pager"}[equip]
		if sys == "" {
			sys = "phone"
		}
		set(t, "system", sys)
		v := r.Component(1).Value()
		if area, local := r.Component(6).Value(), r.Component(7).Value(); local != "" {
			v = strings.TrimSpace("(" + area + ") " + local)
			if area == "" {
				v = local
			}
			if ext := r.Component(8).Value(); ext != "" {
				v += " x" + ext
			}
		}
		set(t, "value", v)
	}
	if t["value"] == nil {
		return nil
	}
	use := map[string]string{"PRN": "home", "ORN": "home", "WPN": "work", "VHN": "home", "NET": "home", "EMR": "home"}[r.Component(2).Value()]
	if equip == "CP" {
		use = "mobile"
	}
	set(t, "use", firstNonEmpty(use, defaultUse))
	return t
}

// streetLine renders XAD-1, an SAD (street or mailing address & street
// name & dwelling number; Data Type SAD to Address map): SAD.1 when it
// already holds the line (it contains the street name, or there are no
// parts), else the dwelling number and street name after it
// ("&Main St&123" → "123 Main St").
func streetLine(c hl7.Component) string {
	full, street, number := strings.TrimSpace(c.SubComponent(1)), strings.TrimSpace(c.SubComponent(2)), strings.TrimSpace(c.SubComponent(3))
	if street == "" && number == "" || street != "" && strings.Contains(full, street) {
		return full
	}
	return strings.Join(nonEmpty(full, number, street), " ")
}

// xads converts each repetition of an XAD field that holds an address.
func xads(f hl7.Field) []any {
	var out []any
	for j := 1; j <= f.NumRepetitions(); j++ {
		if a := xad(f.Repetition(j)); len(a) > 0 {
			out = append(out, a)
		}
	}
	return out
}

// xtns converts each repetition of XTN fields, the n-th field's numbers
// taking uses[n] as their default use (a segment's home and work phones).
func xtns(fields []hl7.Field, uses []string) []any {
	var out []any
	for i, f := range fields {
		for j := 1; j <= f.NumRepetitions(); j++ {
			if t := xtn(f.Repetition(j), uses[i]); t != nil {
				out = append(out, t)
			}
		}
	}
	return out
}
