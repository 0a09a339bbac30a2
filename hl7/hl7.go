// Package hl7 parses, navigates, escapes and encodes HL7 version 2 messages
// (v2.3 through v2.8) and builds acknowledgements.
//
// Parsing is offset based: a Message keeps the bytes it was parsed from and
// each Segment is an (offset, end) pair into them. The first few fields read
// from a segment are found by scanning for delimiters; after that the segment
// is scanned once and the start of every field, repetition, component and
// sub-component recorded (offsets, no copies), so every later access to any
// of them is O(1). A parse costs one allocation for typical messages, an
// indexed segment two more, and accessors allocate only the strings they
// return. A Message is immutable after Parse (the index is built at most once
// per segment and published atomically, so concurrent readers are safe); the
// caller must not modify the parsed bytes afterwards.
//
// Message content is protected health information. Nothing in this package
// logs, and errors carry positions (segment index, field number), never data.
// Field, Repetition and Component deliberately have no String method so that
// they cannot end up in a log line by accident.
package hl7

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
)

// Sentinel errors. Parse wraps them in a *ParseError carrying the position.
var (
	// ErrEmpty reports an input with no segments.
	ErrEmpty = errors.New("hl7: empty message")
	// ErrNoMSH reports a message that does not start with an MSH segment
	// (or, in lenient mode, contains no MSH, FHS or BHS header at all).
	ErrNoMSH = errors.New("hl7: missing MSH segment")
	// ErrBadDelimiters reports unusable MSH-1/MSH-2 delimiters.
	ErrBadDelimiters = errors.New("hl7: bad delimiters")
	// ErrBadSegmentName reports a segment whose name is not three upper-case
	// letters or digits starting with a letter.
	ErrBadSegmentName = errors.New("hl7: invalid segment name")
	// ErrBadEscape reports an unterminated or unknown escape sequence.
	ErrBadEscape = errors.New("hl7: bad escape sequence")
	// ErrTooLarge reports an input of 4 GiB or more.
	ErrTooLarge = errors.New("hl7: message too large")
	// ErrBadPath reports a malformed field path such as "PID-x".
	ErrBadPath = errors.New("hl7: bad path")
)

// ParseError locates a parse failure without quoting message content.
type ParseError struct {
	// Segment is the 1-based index of the offending segment (0 when the
	// failure is not tied to a segment).
	Segment int
	// Field is the HL7 field number (MSH-1 is the field separator), 0 when
	// not applicable.
	Field int
	// Err is one of the package's sentinel errors.
	Err error
}

// Error implements error; it never includes message content.
func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("parsing hl7 message")
	if e.Segment > 0 {
		b.WriteString(": segment ")
		b.WriteString(strconv.Itoa(e.Segment))
	}
	if e.Field > 0 {
		b.WriteString(" field ")
		b.WriteString(strconv.Itoa(e.Field))
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Err }

// Delimiters are the separators a message declares in MSH-1 and MSH-2.
type Delimiters struct {
	Field        byte // MSH-1, usually '|'
	Component    byte // usually '^'
	Repetition   byte // usually '~'
	Escape       byte // usually '\'
	SubComponent byte // usually '&'
	// Truncation is the v2.7+ truncation character (usually '#'), or 0 when
	// MSH-2 has only four characters.
	Truncation byte
}

// DefaultDelimiters are the delimiters recommended by the standard, without
// a truncation character.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', SubComponent: '&'}

// EncodingCharacters returns the MSH-2 value for d ("^~\&" or "^~\&#").
func (d Delimiters) EncodingCharacters() string {
	b := []byte{d.Component, d.Repetition, d.Escape, d.SubComponent}
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return string(b)
}

// Validate reports whether d can be used to encode a message: all characters
// set (Truncation optional), distinct, and neither letters, digits nor
// segment terminators.
func (d Delimiters) Validate() error {
	buf := [6]byte{d.Field, d.Component, d.Repetition, d.Escape, d.SubComponent, d.Truncation}
	all := buf[:5]
	if d.Truncation != 0 {
		all = buf[:6]
	}
	for i, c := range all {
		if !validDelimiter(c) {
			return ErrBadDelimiters
		}
		for _, o := range all[:i] {
			if o == c {
				return ErrBadDelimiters
			}
		}
	}
	return nil
}

func validDelimiter(c byte) bool {
	switch {
	case c == 0, c == '\r', c == '\n', c == ' ':
		return false
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return false
	case c >= 0x80:
		return false
	}
	return true
}

// isDelim reports whether c is one of the structural delimiters.
func (d *Delimiters) isDelim(c byte) bool {
	return c == d.Field || c == d.Component || c == d.Repetition || c == d.SubComponent
}

// Message is a parsed HL7 v2 message. Create it with Parse.
type Message struct {
	raw    []byte
	delims Delimiters
	segs   []segEntry
	inline [16]segEntry // backing store for segs so small messages cost one allocation
}

// segEntry locates one segment and, once a field of it has been read, holds
// its boundary index.
type segEntry struct {
	off, end uint32 // raw[off:end] is the segment without terminator
	ix       atomic.Pointer[segIndex]
	reads    atomic.Uint32 // Field calls before the index was built
}

// scanReads is how many fields of a segment are read by scanning before
// the segment is indexed. A message of which a router or the ACK path reads
// a handful of fields never pays for an index (it costs about as much as
// scanning a segment a few times over); a reader that walks a segment gets
// O(1) access from its fifth field on.
const scanReads = 4

// Delimiters returns the delimiters declared by the message header.
func (m *Message) Delimiters() Delimiters { return m.delims }

// Bytes returns the bytes the message was parsed from (shared, do not modify).
func (m *Message) Bytes() []byte { return m.raw }

// Len returns the number of segments.
func (m *Message) Len() int { return len(m.segs) }

// SegmentAt returns the i-th segment (0-based) in message order.
func (m *Message) SegmentAt(i int) Segment {
	_ = &m.segs[i] // same panic as before for an index out of range
	return Segment{m: m, i: uint32(i)}
}

// Segments returns the segments named name (for example "OBX") in message
// order, Z-segments included.
func (m *Message) Segments(name string) []Segment {
	var out []Segment
	for i := range m.segs {
		if s := (Segment{m: m, i: uint32(i)}); string(s.nameBytes()) == name {
			out = append(out, s)
		}
	}
	return out
}

// Segment returns the n-th (1-based) segment named name.
func (m *Message) Segment(name string, n int) (Segment, bool) {
	for i := range m.segs {
		if s := (Segment{m: m, i: uint32(i)}); string(s.nameBytes()) == name {
			n--
			if n == 0 {
				return s, true
			}
		}
	}
	return Segment{}, false
}

// Segment is one segment of a message; it refers to the message's bytes.
// The zero Segment is empty.
type Segment struct {
	m *Message
	i uint32 // index into m.segs
}

func (s Segment) bytes() []byte {
	if s.m == nil {
		return nil
	}
	e := &s.m.segs[s.i]
	return s.m.raw[e.off:e.end]
}

// buildIndex builds and publishes the segment's boundary index.
// Concurrent first readers may both build it; one result is kept.
func (s Segment) buildIndex() *segIndex {
	e := &s.m.segs[s.i]
	ix := buildIndex(s.m.raw[e.off:e.end], &s.m.delims, s.isHeader())
	if !e.ix.CompareAndSwap(nil, ix) {
		ix = e.ix.Load() // a concurrent reader built it first
	}
	return ix
}

func (s Segment) delims() Delimiters {
	if s.m == nil {
		return Delimiters{}
	}
	return s.m.delims
}

// Raw returns the encoded segment without its terminator (shared, do not modify).
func (s Segment) Raw() []byte { return s.bytes() }

func (s Segment) nameBytes() []byte {
	raw := s.bytes()
	if i := bytes.IndexByte(raw, s.delims().Field); i >= 0 {
		return raw[:i]
	}
	return raw
}

// Name returns the segment ID, such as "PID" or "ZPI".
func (s Segment) Name() string { return string(s.nameBytes()) }

func (s Segment) isHeader() bool {
	raw := s.bytes()
	if len(raw) < 4 || raw[3] != s.delims().Field {
		return false
	}
	return isHeaderName(raw[:3])
}

// NumFields returns the number of the last field present (MSH counts MSH-1).
func (s Segment) NumFields() int {
	if s.m == nil {
		return 0
	}
	if ix := s.m.segs[s.i].ix.Load(); ix != nil {
		n := ix.elements() - 1
		if ix.header {
			n++
		}
		return n
	}
	n := bytes.Count(s.bytes(), []byte{s.m.delims.Field})
	if s.isHeader() {
		n++
	}
	return n
}

// Field returns field n (1-based). For MSH, FHS and BHS, field 1 is the
// field separator itself and field 2 the encoding characters, both returned
// verbatim and never split. Field(0) is the segment name. A missing field is
// empty.
func (s Segment) Field(n int) Field {
	if n < 1 || s.m == nil {
		if n == 0 {
			return s.literal(0)
		}
		return Field{}
	}
	e := &s.m.segs[s.i]
	ix := e.ix.Load()
	if ix == nil {
		if e.reads.Add(1) <= scanReads {
			return s.scanField(n)
		}
		ix = s.buildIndex()
	}
	k := n
	if ix.header {
		switch n {
		case 1:
			return Field{raw: s.bytes()[3:4], literal: true}
		case 2:
			return s.literal(1)
		}
		k = n - 1
	}
	if k >= ix.elements() {
		return Field{}
	}
	return Field{raw: ix.fieldBytes(uint32(k)), ix: ix, n: uint32(k)}
}

// literal returns element i (0: the name, 1: MSH-2 of a header segment) of
// the segment split on the field separator, unsplit.
func (s Segment) literal(i int) Field {
	fs := s.delims().Field
	p := s.bytes()
	for ; i > 0; i-- {
		j := bytes.IndexByte(p, fs)
		if j < 0 {
			return Field{}
		}
		p = p[j+1:]
	}
	if j := bytes.IndexByte(p, fs); j >= 0 {
		p = p[:j]
	}
	return Field{raw: p, literal: true}
}

// scanField is Field(n), n ≥ 1, found by scanning the segment.
func (s Segment) scanField(n int) Field {
	if s.isHeader() {
		switch n {
		case 1:
			return Field{raw: s.bytes()[3:4], literal: true}
		case 2:
			return s.literal(1)
		}
		n--
	}
	f := s.literal(n)
	if f.raw == nil {
		return Field{}
	}
	return Field{raw: f.raw, d: &s.m.delims}
}

// split returns the i-th (1-based) part of p split on sep; nil if absent.
func split(p []byte, sep byte, i int) []byte {
	if i < 1 {
		return nil
	}
	for ; i > 1; i-- {
		j := bytes.IndexByte(p, sep)
		if j < 0 {
			return nil
		}
		p = p[j+1:]
	}
	if j := bytes.IndexByte(p, sep); j >= 0 {
		p = p[:j]
	}
	return p
}

// count returns the number of parts of p split on sep (0 when p is empty).
func count(p []byte, sep byte) int {
	if len(p) == 0 {
		return 0
	}
	return bytes.Count(p, []byte{sep}) + 1
}

// Field is one field of a segment, possibly with repetitions.
//
// Field, Repetition and Component are small values: the encoded bytes, and
// the segment's boundary index with the element's number in it, so each
// accessor is a few array reads. Without an index (ix == nil) an element is
// found by scanning (d != nil: the first fields read of a segment, see
// scanReads), literal (MSH-1, MSH-2, the segment name: never split or
// unescaped) or absent.
type Field struct {
	raw     []byte
	ix      *segIndex
	d       *Delimiters // scanning (ix == nil, not literal)
	n       uint32      // element number in ix
	literal bool        // MSH-1, MSH-2 and segment names are never split or unescaped
}

// Raw returns the encoded field (shared, do not modify).
func (f Field) Raw() []byte { return f.raw }

// IsEmpty reports whether the field is absent or empty.
func (f Field) IsEmpty() bool { return len(f.raw) == 0 }

// IsNull reports whether the field holds the explicit HL7 null `""`.
func (f Field) IsNull() bool { return string(f.raw) == `""` }

// NumRepetitions returns the number of repetitions (0 for an empty field).
func (f Field) NumRepetitions() int {
	if f.d != nil {
		return count(f.raw, f.d.Repetition)
	}
	if f.ix == nil || len(f.raw) == 0 {
		return min(len(f.raw), 1) // literal, empty or absent
	}
	return int(f.ix.f[f.n+1] - f.ix.f[f.n])
}

// Repetition returns repetition i (1-based).
func (f Field) Repetition(i int) Repetition {
	if f.ix == nil {
		if f.d != nil {
			return Repetition{raw: split(f.raw, f.d.Repetition, i), d: f.d}
		}
		if f.literal && i == 1 {
			return Repetition{raw: f.raw, literal: true}
		}
		return Repetition{}
	}
	k := f.ix.f[f.n] + uint32(i) - 1
	if i < 1 || k >= f.ix.f[f.n+1] {
		return Repetition{}
	}
	return Repetition{raw: f.ix.repBytes(k), ix: f.ix, n: k}
}

// Component returns component i (1-based) of the first repetition.
func (f Field) Component(i int) Component { return f.Repetition(1).Component(i) }

// Value returns the unescaped first primitive value of the field: its first
// repetition's first component's first sub-component (HAPI Terser semantics).
func (f Field) Value() string { return f.Repetition(1).Component(1).SubComponent(1) }

// Repetition is one repetition of a field.
type Repetition struct {
	raw     []byte
	ix      *segIndex
	d       *Delimiters
	n       uint32 // repetition number in ix
	literal bool
}

// Raw returns the encoded repetition (shared, do not modify).
func (r Repetition) Raw() []byte { return r.raw }

// IsEmpty reports whether the repetition is absent or empty.
func (r Repetition) IsEmpty() bool { return len(r.raw) == 0 }

// NumComponents returns the number of components (0 when empty).
func (r Repetition) NumComponents() int {
	if r.d != nil {
		return count(r.raw, r.d.Component)
	}
	if r.ix == nil || len(r.raw) == 0 {
		return min(len(r.raw), 1)
	}
	return int(r.ix.r[r.n+1] - r.ix.r[r.n])
}

// Component returns component i (1-based).
func (r Repetition) Component(i int) Component {
	if r.ix == nil {
		if r.d != nil {
			return Component{raw: split(r.raw, r.d.Component, i), d: r.d}
		}
		if r.literal && i == 1 {
			return Component{raw: r.raw, literal: true}
		}
		return Component{}
	}
	k := r.ix.r[r.n] + uint32(i) - 1
	if i < 1 || k >= r.ix.r[r.n+1] {
		return Component{}
	}
	return Component{raw: r.ix.compBytes(k), ix: r.ix, n: k}
}

// Value returns the unescaped first sub-component of the first component.
func (r Repetition) Value() string { return r.Component(1).SubComponent(1) }

// Component is one component of a repetition.
type Component struct {
	raw     []byte
	ix      *segIndex
	d       *Delimiters
	n       uint32 // component number in ix
	literal bool
}

// Raw returns the encoded component (shared, do not modify).
func (c Component) Raw() []byte { return c.raw }

// IsEmpty reports whether the component is absent or empty.
func (c Component) IsEmpty() bool { return len(c.raw) == 0 }

// NumSubComponents returns the number of sub-components (0 when empty).
func (c Component) NumSubComponents() int {
	if c.d != nil {
		return count(c.raw, c.d.SubComponent)
	}
	if c.ix == nil || len(c.raw) == 0 {
		return min(len(c.raw), 1)
	}
	return int(c.ix.c[c.n+1] - c.ix.c[c.n])
}

// SubComponent returns sub-component i (1-based), unescaped.
func (c Component) SubComponent(i int) string {
	var v []byte
	var d *Delimiters
	switch {
	case c.ix != nil:
		k := c.ix.c[c.n] + uint32(i) - 1
		if i < 1 || k >= c.ix.c[c.n+1] {
			return ""
		}
		v, d = c.ix.subBytes(k), &c.ix.d
	case c.d != nil:
		v, d = split(c.raw, c.d.SubComponent, i), c.d
	case c.literal && i == 1:
		return string(c.raw)
	default:
		return ""
	}
	if d.Escape == 0 || bytes.IndexByte(v, d.Escape) < 0 {
		return string(v)
	}
	return string(unescape(make([]byte, 0, len(v)), v, d))
}

// Value returns the unescaped first sub-component.
func (c Component) Value() string { return c.SubComponent(1) }

// MessageType is MSH-9.
type MessageType struct {
	Code      string // MSH-9.1, e.g. "ADT"
	Trigger   string // MSH-9.2, e.g. "A01"
	Structure string // MSH-9.3, e.g. "ADT_A01" (v2.3.1+)
}

// Header returns the first MSH segment.
func (m *Message) Header() Segment {
	s, _ := m.Segment("MSH", 1)
	return s
}

// MessageType returns MSH-9.
func (m *Message) MessageType() MessageType {
	r := m.Header().Field(9).Repetition(1)
	return MessageType{Code: r.Component(1).Value(), Trigger: r.Component(2).Value(), Structure: r.Component(3).Value()}
}

// ControlID returns the message control ID, MSH-10.
func (m *Message) ControlID() string { return m.Header().Field(10).Value() }

// ProcessingID returns MSH-11.1 ("P", "T" or "D").
func (m *Message) ProcessingID() string { return m.Header().Field(11).Value() }

// Version returns the version ID, MSH-12.1 (e.g. "2.5.1").
func (m *Message) Version() string { return m.Header().Field(12).Value() }
