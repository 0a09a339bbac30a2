package synth

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"
)

// FHIR date and dateTime layouts used on the wire. Every instant is UTC with
// a literal Z so that output never depends on the local zone.
const (
	layoutDate    = "2006-01-02"
	layoutInstant = "2006-01-02T15:04:05Z"
)

// jw is a small append-only JSON writer. It exists because building a
// million resources through reflection-based encoding/json is several times
// slower; it also fixes key order, which keeps output byte-identical.
//
// Commas are tracked with a single flag: a value or a closing bracket sets
// it, an opening bracket or a key clears it.
type jw struct {
	b     []byte
	comma bool
}

func (w *jw) sep() {
	if w.comma {
		w.b = append(w.b, ',')
	}
}

// open starts an object in value position.
func (w *jw) open() { w.sep(); w.b = append(w.b, '{'); w.comma = false }

// close ends an object.
func (w *jw) close() { w.b = append(w.b, '}'); w.comma = true }

// openArr starts an array in value position.
func (w *jw) openArr() { w.sep(); w.b = append(w.b, '['); w.comma = false }

// closeArr ends an array.
func (w *jw) closeArr() { w.b = append(w.b, ']'); w.comma = true }

// key writes an object key; keys are constants and never need escaping.
func (w *jw) key(k string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	w.comma = false
}

// str writes a string value.
func (w *jw) str(s string) { w.sep(); w.b = appendQuoted(w.b, s); w.comma = true }

// str2 writes the concatenation a+b as one string value without allocating.
func (w *jw) str2(a, b string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = appendEscaped(w.b, a)
	w.b = appendEscaped(w.b, b)
	w.b = append(w.b, '"')
	w.comma = true
}

// num writes a number with prec decimals.
func (w *jw) num(f float64, prec int) {
	w.sep()
	w.b = strconv.AppendFloat(w.b, f, 'f', prec, 64)
	w.comma = true
}

// boolean writes true or false.
func (w *jw) boolean(v bool) { w.sep(); w.b = strconv.AppendBool(w.b, v); w.comma = true }

// tm writes a time in the given layout as a string value.
func (w *jw) tm(t time.Time, layout string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, layout)
	w.b = append(w.b, '"')
	w.comma = true
}

// b64 writes s base64-encoded as a string value.
func (w *jw) b64(s string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = base64.StdEncoding.AppendEncode(w.b, []byte(s))
	w.b = append(w.b, '"')
	w.comma = true
}

func (w *jw) ks(k, v string)                { w.key(k); w.str(v) }
func (w *jw) kb(k string, v bool)           { w.key(k); w.boolean(v) }
func (w *jw) kt(k string, t time.Time)      { w.key(k); w.tm(t, layoutInstant) }
func (w *jw) kd(k string, t time.Time)      { w.key(k); w.tm(t, layoutDate) }
func (w *jw) kn(k string, f float64, p int) { w.key(k); w.num(f, p) }
func (w *jw) ko(k string)                   { w.key(k); w.open() }
func (w *jw) ka(k string)                   { w.key(k); w.openArr() }
func (w *jw) kref(k, typ, id string)        { w.ko(k); w.key("reference"); w.str2(typ+"/", id); w.close() }
func (w *jw) refDisplay(k, display string)  { w.ko(k); w.ks("display", display); w.close() }
func (w *jw) kstrs(k string, vs ...string) {
	w.ka(k)
	for _, v := range vs {
		w.str(v)
	}
	w.closeArr()
}
func (w *jw) period(k string, s, e time.Time) {
	w.ko(k)
	w.kt("start", s)
	if !e.IsZero() {
		w.kt("end", e)
	}
	w.close()
}

// coding writes one Coding object in value position.
func (w *jw) coding(c code) {
	w.open()
	w.ks("system", c.sys)
	w.ks("code", c.code)
	if c.display != "" {
		w.ks("display", c.display)
	}
	w.close()
}

// concept writes a CodeableConcept under key k; text may be empty.
func (w *jw) concept(k, text string, cs ...code) {
	w.ko(k)
	w.conceptBody(text, cs...)
	w.close()
}

// conceptV writes a CodeableConcept in value position (inside an array).
func (w *jw) conceptV(text string, cs ...code) {
	w.open()
	w.conceptBody(text, cs...)
	w.close()
}

func (w *jw) conceptBody(text string, cs ...code) {
	if len(cs) > 0 {
		w.ka("coding")
		for _, c := range cs {
			w.coding(c)
		}
		w.closeArr()
	}
	if text != "" {
		w.ks("text", text)
	}
}

// category writes a one-element array of CodeableConcept under k.
func (w *jw) category(k string, c code) {
	w.ka(k)
	w.conceptV("", c)
	w.closeArr()
}

// quantity writes a UCUM Quantity under k.
func (w *jw) quantity(k string, v float64, prec int, u unit) {
	w.ko(k)
	w.kn("value", v, prec)
	w.ks("unit", u.display)
	w.ks("system", systemUCUM)
	w.ks("code", u.ucum)
	w.close()
}

// begin opens a resource with its type, id and meta. lastUpdated is written
// as an instant with Z.
func (w *jw) begin(resourceType, id string, lastUpdated time.Time) {
	w.open()
	w.ks("resourceType", resourceType)
	w.ks("id", id)
	w.ko("meta")
	w.ks("versionId", "1")
	w.kt("lastUpdated", lastUpdated)
	w.close()
}

func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s with JSON string escaping; invalid UTF-8 becomes
// U+FFFD so output is always valid JSON.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
