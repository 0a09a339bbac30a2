package normalize

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// fastDecoder is a hand-written, allocation-lean JSON reader for the hot
// resource types (Observation, MedicationRequest). It fills the same wire
// structs encoding/json would, but it only handles the common, clean shape
// of a resource: on anything unusual (a wrong JSON type, invalid JSON, a
// duplicate or case-folded key, escapes in keys, null array elements, deep
// nesting) it gives up and the caller decodes with encoding/json, which then
// produces the canonical result or the canonical *MalformedError. So the fast
// path never decides what is malformed; TestFastDecoderAgrees and
// FuzzFastDecoderAgrees check it matches encoding/json.
type fastDecoder struct {
	data []byte
	// src is data as one string: decoded strings without escapes are
	// substrings of it, one allocation per resource instead of one per
	// string (the outputs then share, and keep alive, this copy of the
	// resource).
	src string
	i   int
	ok  bool // false once the decoder has given up
}

func newFastDecoder(raw []byte) fastDecoder {
	return fastDecoder{data: raw, src: string(raw), ok: true}
}

const maxFastDepth = 256

func (d *fastDecoder) fail() { d.ok = false }

func (d *fastDecoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (d *fastDecoder) peek() byte {
	d.ws()
	if d.i >= len(d.data) {
		return 0
	}
	return d.data[d.i]
}

// null consumes a null literal if one is next.
func (d *fastDecoder) null() bool {
	if d.peek() == 'n' && bytes.HasPrefix(d.data[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

// end checks that only whitespace follows the top-level value.
func (d *fastDecoder) end() {
	d.ws()
	if d.i != len(d.data) {
		d.fail()
	}
}

// openObject consumes '{' and reports true, or consumes null and reports
// false, or gives up.
func (d *fastDecoder) openObject() bool {
	if !d.ok {
		return false
	}
	if d.peek() == '{' {
		d.i++
		return true
	}
	if !d.null() {
		d.fail()
	}
	return false
}

// nextKey returns the next key of the current object and consumes the colon
// after it, or returns nil after consuming the closing brace. Keys with
// escapes or non-ASCII bytes make the decoder give up (encoding/json would
// unescape and case-fold them).
func (d *fastDecoder) nextKey(first *bool) []byte {
	if !d.ok {
		return nil
	}
	c := d.peek()
	if c == '}' {
		d.i++
		return nil
	}
	if !*first {
		if c != ',' {
			d.fail()
			return nil
		}
		d.i++
		c = d.peek()
	}
	*first = false
	if c != '"' {
		d.fail()
		return nil
	}
	start := d.i + 1
	j := start
	for ; j < len(d.data); j++ {
		b := d.data[j]
		if b == '"' {
			break
		}
		if b == '\\' || b < 0x20 || b >= 0x80 {
			d.fail()
			return nil
		}
	}
	if j >= len(d.data) {
		d.fail()
		return nil
	}
	key := d.data[start:j]
	d.i = j + 1
	if d.peek() != ':' {
		d.fail()
		return nil
	}
	d.i++
	return key
}

// unknownKey skips the value of a key the struct does not have, giving up
// if encoding/json would match the key case-insensitively to one it has.
func (d *fastDecoder) unknownKey(key []byte, known []string) {
	for _, k := range known {
		if len(k) == len(key) && bytes.EqualFold(key, []byte(k)) {
			d.fail()
			return
		}
	}
	d.skip(0)
}

// once marks bit in seen, giving up on a duplicate key.
func (d *fastDecoder) once(seen *uint64, bit uint) {
	if *seen&(1<<bit) != 0 {
		d.fail()
	}
	*seen |= 1 << bit
}

// openArray consumes '[' and reports true, or consumes null and reports
// false, or gives up.
func (d *fastDecoder) openArray() bool {
	if !d.ok {
		return false
	}
	if d.peek() == '[' {
		d.i++
		return true
	}
	if !d.null() {
		d.fail()
	}
	return false
}

// nextElem reports whether the current array has another element,
// consuming the separating comma or the closing bracket. A null element
// makes the decoder give up.
func (d *fastDecoder) nextElem(first *bool) bool {
	if !d.ok {
		return false
	}
	c := d.peek()
	if c == ']' {
		d.i++
		return false
	}
	if !*first {
		if c != ',' {
			d.fail()
			return false
		}
		d.i++
		c = d.peek()
	}
	*first = false
	if c == 'n' || c == 0 {
		d.fail()
		return false
	}
	return true
}

// stringLit scans a string literal and returns its contents; escaped or
// non-ASCII strings are decoded by encoding/json for identical results.
func (d *fastDecoder) stringLit() (string, bool) {
	if d.peek() != '"' {
		return "", false
	}
	start := d.i
	simple := true
	j := start + 1
	for ; j < len(d.data); j++ {
		b := d.data[j]
		if b == '"' {
			break
		}
		if b == '\\' {
			simple = false
			j++
			continue
		}
		if b < 0x20 {
			return "", false
		}
		if b >= 0x80 {
			simple = false
		}
	}
	if j >= len(d.data) {
		return "", false
	}
	d.i = j + 1
	if simple {
		return d.src[start+1 : j], true
	}
	var s string
	if json.Unmarshal(d.data[start:j+1], &s) != nil {
		return "", false
	}
	return s, true
}

// str decodes a string or null into dst.
func (d *fastDecoder) str(dst *string) {
	if !d.ok || d.null() {
		return
	}
	s, ok := d.stringLit()
	if !ok {
		d.fail()
		return
	}
	*dst = s
}

// strPtr decodes a string or null into dst.
func (d *fastDecoder) strPtr(dst **string) {
	if !d.ok || d.null() {
		return
	}
	s, ok := d.stringLit()
	if !ok {
		d.fail()
		return
	}
	*dst = &s
}

// boolPtr decodes a boolean or null into dst.
func (d *fastDecoder) boolPtr(dst **bool) {
	if !d.ok || d.null() {
		return
	}
	var b bool
	switch {
	case bytes.HasPrefix(d.data[d.i:], []byte("true")):
		b = true
		d.i += 4
	case bytes.HasPrefix(d.data[d.i:], []byte("false")):
		d.i += 5
	default:
		d.fail()
		return
	}
	if !d.delimited() {
		d.fail()
		return
	}
	*dst = &b
}

// delimited reports whether the byte after a literal ends it.
func (d *fastDecoder) delimited() bool {
	if d.i >= len(d.data) {
		return true
	}
	switch d.data[d.i] {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return true
	}
	return false
}

// number scans a JSON number literal.
func (d *fastDecoder) number() ([]byte, bool) {
	start := d.i
	j := start
	n := len(d.data)
	if j < n && d.data[j] == '-' {
		j++
	}
	switch {
	case j < n && d.data[j] == '0':
		j++
	case j < n && d.data[j] >= '1' && d.data[j] <= '9':
		for j < n && d.data[j] >= '0' && d.data[j] <= '9' {
			j++
		}
	default:
		return nil, false
	}
	if j < n && d.data[j] == '.' {
		j++
		if j >= n || d.data[j] < '0' || d.data[j] > '9' {
			return nil, false
		}
		for j < n && d.data[j] >= '0' && d.data[j] <= '9' {
			j++
		}
	}
	if j < n && (d.data[j] == 'e' || d.data[j] == 'E') {
		j++
		if j < n && (d.data[j] == '+' || d.data[j] == '-') {
			j++
		}
		if j >= n || d.data[j] < '0' || d.data[j] > '9' {
			return nil, false
		}
		for j < n && d.data[j] >= '0' && d.data[j] <= '9' {
			j++
		}
	}
	d.i = j
	if !d.delimited() {
		return nil, false
	}
	return d.data[start:j], true
}

// decimal decodes a number or null into dst.
func (d *fastDecoder) decimal(dst *decimal) {
	if !d.ok || d.null() {
		return
	}
	d.ws()
	lit, ok := d.number()
	if !ok {
		d.fail()
		return
	}
	*dst = decimal(lit)
}

// int64Ptr decodes an integer or null into dst.
func (d *fastDecoder) int64Ptr(dst **int64) {
	if !d.ok || d.null() {
		return
	}
	d.ws()
	lit, ok := d.number()
	if !ok {
		d.fail()
		return
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil {
		d.fail()
		return
	}
	*dst = &n
}

// skip validates and skips any value.
func (d *fastDecoder) skip(depth int) {
	if !d.ok {
		return
	}
	if depth > maxFastDepth {
		d.fail()
		return
	}
	switch c := d.peek(); {
	case c == '{':
		d.i++
		first := true
		for key := d.nextKey(&first); key != nil; key = d.nextKey(&first) {
			d.skip(depth + 1)
		}
	case c == '[':
		d.i++
		first := true
		for {
			if !d.ok {
				return
			}
			c := d.peek()
			if c == ']' {
				d.i++
				return
			}
			if !first {
				if c != ',' {
					d.fail()
					return
				}
				d.i++
			}
			first = false
			d.skip(depth + 1)
		}
	case c == '"':
		// Validate escapes as encoding/json does, without decoding.
		j := d.i + 1
		for ; j < len(d.data); j++ {
			b := d.data[j]
			if b == '"' {
				break
			}
			if b < 0x20 {
				d.fail()
				return
			}
			if b == '\\' {
				j++
				if j >= len(d.data) {
					break
				}
				switch d.data[j] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				case 'u':
					if j+4 >= len(d.data) || !isHex4(d.data[j+1:j+5]) {
						d.fail()
						return
					}
					j += 4
				default:
					d.fail()
					return
				}
			}
		}
		if j >= len(d.data) {
			d.fail()
			return
		}
		d.i = j + 1
	case c == 't' && bytes.HasPrefix(d.data[d.i:], []byte("true")):
		d.i += 4
		if !d.delimited() {
			d.fail()
		}
	case c == 'f' && bytes.HasPrefix(d.data[d.i:], []byte("false")):
		d.i += 5
		if !d.delimited() {
			d.fail()
		}
	case c == 'n' && bytes.HasPrefix(d.data[d.i:], []byte("null")):
		d.i += 4
		if !d.delimited() {
			d.fail()
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if _, ok := d.number(); !ok {
			d.fail()
		}
	default:
		d.fail()
	}
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f') {
			return false
		}
	}
	return true
}

// Wire-type readers.

var headerKeys = []string{"resourceType", "id", "meta", "extension"}

// extensionBit is the seen-bit of the extension key, above every type's own
// bits.
const extensionBit = 63

// headerKey decodes key into h if it is an envelope key.
func (d *fastDecoder) headerKey(key []byte, h *header, seen *uint64, base uint) bool {
	switch string(key) {
	case "resourceType":
		d.once(seen, base)
		d.str(&h.ResourceType)
	case "id":
		d.once(seen, base+1)
		d.str(&h.ID)
	case "extension":
		d.once(seen, extensionBit)
		d.ws()
		start := d.i
		d.skip(0)
		if d.ok {
			h.Extension = json.RawMessage(d.data[start:d.i])
		}
	case "meta":
		d.once(seen, base+2)
		if d.openObject() {
			h.Meta = &struct {
				VersionID string `json:"versionId"`
			}{}
			first, seenMeta := true, uint64(0)
			for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
				if string(k) == "versionId" {
					d.once(&seenMeta, 0)
					d.str(&h.Meta.VersionID)
				} else {
					d.unknownKey(k, []string{"versionId"})
				}
			}
		}
	default:
		return false
	}
	return true
}

var codingKeys = []string{"system", "code", "display"}

func (d *fastDecoder) coding(c *coding) {
	if !d.openObject() {
		return
	}
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		switch string(k) {
		case "system":
			d.once(&seen, 0)
			d.str(&c.System)
		case "code":
			d.once(&seen, 1)
			d.str(&c.Code)
		case "display":
			d.once(&seen, 2)
			d.str(&c.Display)
		default:
			d.unknownKey(k, codingKeys)
		}
	}
}

var conceptKeys = []string{"coding", "text"}

func (d *fastDecoder) concept(c *codeableConcept) {
	if !d.openObject() {
		return
	}
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		switch string(k) {
		case "coding":
			d.once(&seen, 0)
			if d.openArray() {
				c.Coding = make([]coding, 0, 2)
				for f := true; d.nextElem(&f); {
					c.Coding = append(c.Coding, coding{})
					d.coding(&c.Coding[len(c.Coding)-1])
				}
			}
		case "text":
			d.once(&seen, 1)
			d.str(&c.Text)
		default:
			d.unknownKey(k, conceptKeys)
		}
	}
}

// conceptPtr decodes an object or null into *dst.
func (d *fastDecoder) conceptPtr(dst **codeableConcept) {
	if !d.ok || d.null() {
		return
	}
	c := new(codeableConcept)
	d.concept(c)
	*dst = c
}

func (d *fastDecoder) concepts(dst *[]codeableConcept) {
	if !d.openArray() {
		return
	}
	*dst = make([]codeableConcept, 0, 1)
	for f := true; d.nextElem(&f); {
		*dst = append(*dst, codeableConcept{})
		d.concept(&(*dst)[len(*dst)-1])
	}
}

var referenceKeys = []string{"reference", "type", "display"}

func (d *fastDecoder) referencePtr(dst **reference) {
	if !d.ok || d.null() {
		return
	}
	if !d.openObject() {
		return
	}
	r := new(reference)
	*dst = r
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		switch string(k) {
		case "reference":
			d.once(&seen, 0)
			d.str(&r.Reference)
		case "type":
			d.once(&seen, 1)
			d.str(&r.Type)
		case "display":
			d.once(&seen, 2)
			d.str(&r.Display)
		default:
			d.unknownKey(k, referenceKeys)
		}
	}
}

var quantityKeys = []string{"value", "comparator", "unit", "system", "code"}

func (d *fastDecoder) quantityPtr(dst **quantity) {
	if !d.ok || d.null() {
		return
	}
	if !d.openObject() {
		return
	}
	q := new(quantity)
	*dst = q
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		switch string(k) {
		case "value":
			d.once(&seen, 0)
			d.decimal(&q.Value)
		case "comparator":
			d.once(&seen, 1)
			d.str(&q.Comparator)
		case "unit":
			d.once(&seen, 2)
			d.str(&q.Unit)
		case "system":
			d.once(&seen, 3)
			d.str(&q.System)
		case "code":
			d.once(&seen, 4)
			d.str(&q.Code)
		default:
			d.unknownKey(k, quantityKeys)
		}
	}
}

var periodKeys = []string{"start", "end"}

func (d *fastDecoder) periodPtr(dst **period) {
	if !d.ok || d.null() {
		return
	}
	if !d.openObject() {
		return
	}
	p := new(period)
	*dst = p
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		switch string(k) {
		case "start":
			d.once(&seen, 0)
			d.str(&p.Start)
		case "end":
			d.once(&seen, 1)
			d.str(&p.End)
		default:
			d.unknownKey(k, periodKeys)
		}
	}
}

// lowHigh decodes the low/high pair of a Range, Ratio (numerator and
// denominator named by lowKey and highKey) or referenceRange, with an
// optional text.
func (d *fastDecoder) lowHigh(lowKey, highKey string, low, high **quantity, text *string) {
	first, seen := true, uint64(0)
	known := []string{lowKey, highKey, "text"}
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		switch {
		case string(k) == lowKey:
			d.once(&seen, 0)
			d.quantityPtr(low)
		case string(k) == highKey:
			d.once(&seen, 1)
			d.quantityPtr(high)
		case text != nil && string(k) == "text":
			d.once(&seen, 2)
			d.str(text)
		default:
			if text == nil {
				known = known[:2]
			}
			d.unknownKey(k, known)
		}
	}
}

// Observation.

var valueXKeys = []string{"valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
	"valueRange", "valueRatio", "valuePeriod", "valueTime", "valueDateTime", "valueSampledData", "dataAbsentReason"}

// valueXKey decodes key into v if it is a value[x] or dataAbsentReason key,
// using bits base..base+11 of seen.
func (d *fastDecoder) valueXKey(key []byte, v *valueX, seen *uint64, base uint) bool {
	switch string(key) {
	case "valueQuantity":
		d.once(seen, base)
		d.quantityPtr(&v.ValueQuantity)
	case "valueCodeableConcept":
		d.once(seen, base+1)
		d.conceptPtr(&v.ValueCodeableConcept)
	case "valueString":
		d.once(seen, base+2)
		d.strPtr(&v.ValueString)
	case "valueBoolean":
		d.once(seen, base+3)
		d.boolPtr(&v.ValueBoolean)
	case "valueInteger":
		d.once(seen, base+4)
		d.int64Ptr(&v.ValueInteger)
	case "valueRange":
		d.once(seen, base+5)
		if d.openObject() {
			v.ValueRange = new(valueRange)
			d.lowHigh("low", "high", &v.ValueRange.Low, &v.ValueRange.High, nil)
		}
	case "valueRatio":
		d.once(seen, base+6)
		if d.openObject() {
			v.ValueRatio = &struct {
				Numerator   *quantity `json:"numerator"`
				Denominator *quantity `json:"denominator"`
			}{}
			d.lowHigh("numerator", "denominator", &v.ValueRatio.Numerator, &v.ValueRatio.Denominator, nil)
		}
	case "valuePeriod":
		d.once(seen, base+7)
		d.periodPtr(&v.ValuePeriod)
	case "valueTime":
		d.once(seen, base+8)
		d.strPtr(&v.ValueTime)
	case "valueDateTime":
		d.once(seen, base+9)
		d.strPtr(&v.ValueDateTime)
	case "valueSampledData":
		d.once(seen, base+10)
		if d.openObject() {
			sd := new(sampledData)
			v.ValueSampledData = sd
			first, s := true, uint64(0)
			for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
				switch string(k) {
				case "origin":
					d.once(&s, 0)
					d.quantityPtr(&sd.Origin)
				case "data":
					d.once(&s, 1)
					d.str(&sd.Data)
				default:
					d.unknownKey(k, []string{"origin", "data"})
				}
			}
		}
	case "dataAbsentReason":
		d.once(seen, base+11)
		d.conceptPtr(&v.DataAbsentReason)
	default:
		return false
	}
	return true
}

var observationKeys = append(append([]string{"status", "category", "code", "subject", "effectiveDateTime",
	"effectivePeriod", "effectiveInstant", "interpretation", "referenceRange", "hasMember", "component"},
	headerKeys...), valueXKeys...)

var componentKeys = append([]string{"code"}, valueXKeys...)

// fastObservation decodes raw into in, reporting false when the caller
// must decode with encoding/json instead (in is then partly filled).
func fastObservation(raw []byte, in *observationJSON) bool {
	d := newFastDecoder(raw)
	if !d.openObject() {
		return false
	}
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		if d.headerKey(k, &in.header, &seen, 0) || d.valueXKey(k, &in.valueX, &seen, 3) {
			continue
		}
		switch string(k) {
		case "status":
			d.once(&seen, 20)
			d.str(&in.Status)
		case "category":
			d.once(&seen, 21)
			d.concepts(&in.Category)
		case "code":
			d.once(&seen, 22)
			d.conceptPtr(&in.Code)
		case "subject":
			d.once(&seen, 23)
			d.referencePtr(&in.Subject)
		case "effectiveDateTime":
			d.once(&seen, 24)
			d.str(&in.EffectiveDateTime)
		case "effectivePeriod":
			d.once(&seen, 25)
			d.periodPtr(&in.EffectivePeriod)
		case "effectiveInstant":
			d.once(&seen, 26)
			d.str(&in.EffectiveInstant)
		case "interpretation":
			d.once(&seen, 27)
			d.concepts(&in.Interpretation)
		case "referenceRange":
			d.once(&seen, 28)
			if d.openArray() {
				in.ReferenceRange = make([]referenceRange, 0, 1)
				for f := true; d.nextElem(&f); {
					in.ReferenceRange = append(in.ReferenceRange, referenceRange{})
					r := &in.ReferenceRange[len(in.ReferenceRange)-1]
					if d.openObject() {
						d.lowHigh("low", "high", &r.Low, &r.High, &r.Text)
					}
				}
			}
		case "hasMember":
			d.once(&seen, 29)
			if d.openArray() {
				in.HasMember = []struct{}{}
				for f := true; d.nextElem(&f); {
					if d.peek() != '{' {
						d.fail()
						break
					}
					d.skip(0)
					in.HasMember = append(in.HasMember, struct{}{})
				}
			}
		case "component":
			d.once(&seen, 30)
			if d.openArray() {
				in.Component = in.Component[:0]
				for f := true; d.nextElem(&f); {
					in.Component = append(in.Component, struct {
						Code *codeableConcept `json:"code"`
						valueX
					}{})
					c := &in.Component[len(in.Component)-1]
					if !d.openObject() {
						break
					}
					cf, cs := true, uint64(0)
					for ck := d.nextKey(&cf); ck != nil; ck = d.nextKey(&cf) {
						if string(ck) == "code" {
							d.once(&cs, 0)
							d.conceptPtr(&c.Code)
						} else if !d.valueXKey(ck, &c.valueX, &cs, 1) {
							d.unknownKey(ck, componentKeys)
						}
					}
				}
			}
		default:
			d.unknownKey(k, observationKeys)
		}
		if !d.ok {
			return false
		}
	}
	d.end()
	return d.ok
}

// MedicationRequest.

var medicationRequestKeys = append([]string{"status", "intent", "medicationCodeableConcept", "medicationReference",
	"subject", "authoredOn", "dosageInstruction", "dispenseRequest", "contained"}, headerKeys...)

// fastMedicationRequest decodes raw into in, reporting false when the
// caller must decode with encoding/json instead. Resources with contained
// resources always take the encoding/json path.
func fastMedicationRequest(raw []byte, in *medicationRequestJSON) bool {
	d := newFastDecoder(raw)
	if !d.openObject() {
		return false
	}
	first, seen := true, uint64(0)
	for k := d.nextKey(&first); k != nil; k = d.nextKey(&first) {
		if d.headerKey(k, &in.header, &seen, 0) {
			continue
		}
		switch string(k) {
		case "status":
			d.once(&seen, 3)
			d.str(&in.Status)
		case "intent":
			d.once(&seen, 4)
			d.str(&in.Intent)
		case "medicationCodeableConcept":
			d.once(&seen, 5)
			d.conceptPtr(&in.MedicationCodeableConcept)
		case "medicationReference":
			d.once(&seen, 6)
			d.referencePtr(&in.MedicationReference)
		case "subject":
			d.once(&seen, 7)
			d.referencePtr(&in.Subject)
		case "authoredOn":
			d.once(&seen, 8)
			d.str(&in.AuthoredOn)
		case "dosageInstruction":
			d.once(&seen, 9)
			if d.openArray() {
				in.DosageInstruction = in.DosageInstruction[:0]
				for f := true; d.nextElem(&f); {
					in.DosageInstruction = append(in.DosageInstruction, dosageJSON{})
					d.dosage(&in.DosageInstruction[len(in.DosageInstruction)-1])
				}
			}
		case "dispenseRequest":
			d.once(&seen, 10)
			if d.null() {
				break
			}
			if d.openObject() {
				df, ds := true, uint64(0)
				for dk := d.nextKey(&df); dk != nil; dk = d.nextKey(&df) {
					if string(dk) == "validityPeriod" {
						d.once(&ds, 0)
						d.periodPtr(&in.DispenseRequest.ValidityPeriod)
					} else {
						d.unknownKey(dk, []string{"validityPeriod"})
					}
				}
			}
		case "contained":
			d.fail()
		default:
			d.unknownKey(k, medicationRequestKeys)
		}
		if !d.ok {
			return false
		}
	}
	d.end()
	return d.ok
}

// dosage decodes the text and timing.repeat.boundsPeriod of a Dosage.
func (d *fastDecoder) dosage(di *dosageJSON) {
	if !d.openObject() {
		return
	}
	df, ds := true, uint64(0)
	for dk := d.nextKey(&df); dk != nil; dk = d.nextKey(&df) {
		switch string(dk) {
		case "text":
			d.once(&ds, 0)
			d.str(&di.Text)
		case "timing":
			d.once(&ds, 1)
			if d.null() {
				break
			}
			if !d.openObject() {
				return
			}
			tf, ts := true, uint64(0)
			for tk := d.nextKey(&tf); tk != nil; tk = d.nextKey(&tf) {
				if string(tk) != "repeat" {
					d.unknownKey(tk, []string{"repeat"})
					continue
				}
				d.once(&ts, 0)
				if d.null() {
					continue
				}
				if !d.openObject() {
					return
				}
				rf, rs := true, uint64(0)
				for rk := d.nextKey(&rf); rk != nil; rk = d.nextKey(&rf) {
					if string(rk) == "boundsPeriod" {
						d.once(&rs, 0)
						d.periodPtr(&di.Timing.Repeat.BoundsPeriod)
					} else {
						d.unknownKey(rk, []string{"boundsPeriod"})
					}
				}
			}
		default:
			d.unknownKey(dk, []string{"text", "timing"})
		}
	}
}
