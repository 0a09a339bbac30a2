// Package hl7 parses, navigates, escapes and encodes HL7 version 2 messages
// (v2.3 through v2.8) and builds acknowledgements.
//
// Parsing is offset based: a Message keeps the bytes it was parsed from and
// each Segment is an (offset, end) pair into them. The first few fields read
// from a message are found by scanning for delimiters; after that the whole
// message is scanned once and the start of every field, repetition,
// component and sub-component of every segment recorded (offsets, no
// copies, one flat array), so every later access to any of them is O(1). A
// parse costs one allocation for typical messages, indexing three more (the
// index, its per-segment flags, and one immutable string copy of the
// message of which the values read afterwards are substrings), and
// accessors allocate only unescaped values and values read before
// indexing. A Message is immutable after Parse (the index is built at most
// once and published atomically, so concurrent readers are safe); the
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
	"sync"
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
	reads  atomic.Uint32 // fields read by scanning
	// idx is written once, under mu, before indexed is set; readers that
	// see indexed read it without locking.
	indexed atomic.Bool
	mu      sync.Mutex
	idx     msgIndex
	inline  [32]segEntry // backing store for segs so small messages cost one allocation
}

// segEntry locates one segment: raw[off:end], without terminator.
type segEntry struct{ off, end uint32 }

// scanReads is how many fields of a message are read by scanning before
// the whole message is indexed. A message of which a router or the ACK path
// reads a handful of fields never pays for an index (it costs about as much
// as scanning the message a few times over); a reader that walks the
// message gets O(1) access to every part from its ninth field on.
const scanReads = 8

// useIndex reports whether fields are read through the index, building it
// once the message has been read enough (scanReads). Concurrent first
// readers wait for one build.
func (m *Message) useIndex() bool {
	if m.indexed.Load() {
		return true
	}
	if m.reads.Add(1) <= scanReads {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.indexed.Load() {
		ix, ok := buildIndex(m)
		if !ok {
			return false // too large: keep scanning
		}
		m.idx = ix
		m.indexed.Store(true)
	}
	return true
}

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
	e := s.m.segs[s.i]
	return s.m.raw[e.off:e.end]
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
	m := s.m
	if m == nil {
		return 0
	}
	if m.indexed.Load() {
		return int(m.idx.g[s.i+1]-m.idx.g[s.i]) - 2 + int(m.idx.flags[s.i]&segHeader)
	}
	n := bytes.Count(s.bytes(), []byte{m.delims.Field})
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
	m := s.m
	if n < 1 || m == nil {
		if n == 0 {
			return Field{s.literal(0)}
		}
		return Field{}
	}
	if !m.useIndex() {
		return Field{s.scanField(n)}
	}
	ix := &m.idx
	k, fl := uint32(n), ix.flags[s.i]
	if fl&segHeader != 0 {
		switch n {
		case 1:
			e := m.segs[s.i]
			return Field{elem{m: m, off: e.off + 3, end: e.off + 4, nm: modeLiteral}}
		case 2:
			return Field{s.literal(1)}
		}
		k--
	}
	k += ix.g[s.i]
	if k >= ix.g[s.i+1]-1 {
		return Field{}
	}
	return Field{elem{m: m, off: ix.s[ix.c[ix.r[ix.f[k]]]], end: ix.s[ix.c[ix.r[ix.f[k+1]]]] - 1, nm: k<<3 | uint32(fl&segEscape)<<1 | modeIndex}}
}

// literal returns element i (0: the name, 1: MSH-2 of a header segment) of
// the segment split on the field separator, unsplit.
func (s Segment) literal(i int) elem {
	if s.m == nil {
		return elem{}
	}
	e := s.m.segs[s.i]
	off, end, ok := splitAt(s.m.raw, e.off, e.end, s.m.delims.Field, i+1)
	if !ok {
		return elem{}
	}
	return elem{m: s.m, off: off, end: end, nm: modeLiteral}
}

// scanField is Field(n), n ≥ 1, found by scanning the segment.
func (s Segment) scanField(n int) elem {
	if s.isHeader() {
		switch n {
		case 1:
			e := s.m.segs[s.i]
			return elem{m: s.m, off: e.off + 3, end: e.off + 4, nm: modeLiteral}
		case 2:
			return s.literal(1)
		}
		n--
	}
	e := s.literal(n)
	if e.m == nil {
		return elem{}
	}
	e.nm = modeScan
	return e
}

// splitAt returns the bounds of the i-th (1-based) part of raw[off:end]
// split on sep; ok is false when there is no such part.
func splitAt(raw []byte, off, end uint32, sep byte, i int) (uint32, uint32, bool) {
	if i < 1 {
		return 0, 0, false
	}
	p := raw[off:end]
	for ; i > 1; i-- {
		j := bytes.IndexByte(p, sep)
		if j < 0 {
			return 0, 0, false
		}
		off += uint32(j) + 1
		p = p[j+1:]
	}
	if j := bytes.IndexByte(p, sep); j >= 0 {
		end = off + uint32(j)
	}
	return off, end, true
}

// split returns the i-th (1-based) part of p split on sep; nil if absent.
func split(p []byte, sep byte, i int) []byte {
	off, end, ok := splitAt(p, 0, uint32(len(p)), sep, i)
	if !ok {
		return nil
	}
	return p[off:end]
}

// count returns the number of parts of p split on sep (0 when p is empty).
func count(p []byte, sep byte) int {
	if len(p) == 0 {
		return 0
	}
	return bytes.Count(p, []byte{sep}) + 1
}

// elem is a field, repetition or component: its bounds in the message and,
// when the message is indexed, its number in the index level (f, r or c).
// Four words at most, so the compiler keeps it in registers and each
// accessor is a few array reads.
//
// Elements read before the message was indexed are found by scanning
// (modeScan) and so are their parts; MSH-1, MSH-2 and segment names are
// literal (never split or unescaped); the zero elem is absent.
type elem struct {
	m        *Message
	off, end uint32 // m.raw[off:end]
	nm       uint32 // element number in the index level << 3 | escBit | mode
}

const (
	modeAbsent = iota
	modeIndex
	modeScan
	modeLiteral
	modeMask = 3
	// escBit marks an indexed element of a segment that holds escape
	// characters: only its values are checked for escapes.
	escBit = 4
)

func (e elem) raw() []byte {
	if e.m == nil {
		return nil
	}
	return e.m.raw[e.off:e.end:e.end]
}

// part is part i of a scanned or literal element split on sep.
func (e elem) part(sep byte, i int) elem {
	switch e.nm {
	case modeLiteral:
		if i == 1 {
			return e
		}
		return elem{}
	case modeAbsent:
		return elem{}
	}
	off, end, ok := splitAt(e.m.raw, e.off, e.end, sep, i)
	if !ok {
		return elem{}
	}
	return elem{m: e.m, off: off, end: end, nm: modeScan}
}

// parts is the number of parts of a scanned or literal element (0 when empty).
func (e elem) parts(sep byte) int {
	if e.off == e.end {
		return 0
	}
	if e.nm == modeLiteral {
		return 1
	}
	return count(e.raw(), sep)
}

// Field is one field of a segment, possibly with repetitions.
//
// Field, Repetition and Component are small values (the message, bounds and
// the element's number in the message's boundary index) so each accessor is
// a few array reads.
type Field struct{ e elem }

// Raw returns the encoded field (shared, do not modify).
func (f Field) Raw() []byte { return f.e.raw() }

// IsEmpty reports whether the field is absent or empty.
func (f Field) IsEmpty() bool { return f.e.off == f.e.end }

// IsNull reports whether the field holds the explicit HL7 null `""`.
func (f Field) IsNull() bool { return string(f.e.raw()) == `""` }

// NumRepetitions returns the number of repetitions (0 for an empty field).
func (f Field) NumRepetitions() int {
	if f.e.nm&modeMask != modeIndex {
		return f.e.parts(f.e.m.delimsOrDefault().Repetition)
	}
	if f.e.off == f.e.end {
		return 0
	}
	ix, n := &f.e.m.idx, f.e.nm>>3
	return int(ix.f[n+1] - ix.f[n])
}

// Repetition returns repetition i (1-based).
func (f Field) Repetition(i int) Repetition {
	if f.e.nm&modeMask != modeIndex {
		return Repetition{f.e.part(f.e.m.delimsOrDefault().Repetition, i)}
	}
	ix, n := &f.e.m.idx, f.e.nm>>3
	k := ix.f[n] + uint32(i) - 1
	if i < 1 || k >= ix.f[n+1] {
		return Repetition{}
	}
	return Repetition{elem{m: f.e.m, off: ix.s[ix.c[ix.r[k]]], end: ix.s[ix.c[ix.r[k+1]]] - 1, nm: k<<3 | f.e.nm&escBit | modeIndex}}
}

// delimsOrDefault returns the message's delimiters (nil: the defaults, for
// absent elements, which have no parts anyway).
func (m *Message) delimsOrDefault() *Delimiters {
	if m == nil {
		return &DefaultDelimiters
	}
	return &m.delims
}

// Component returns component i (1-based) of the first repetition.
func (f Field) Component(i int) Component { return f.Repetition(1).Component(i) }

// Value returns the unescaped first primitive value of the field: its first
// repetition's first component's first sub-component (HAPI Terser semantics).
func (f Field) Value() string { return f.Repetition(1).Component(1).SubComponent(1) }

// Repetition is one repetition of a field.
type Repetition struct{ e elem }

// Raw returns the encoded repetition (shared, do not modify).
func (r Repetition) Raw() []byte { return r.e.raw() }

// IsEmpty reports whether the repetition is absent or empty.
func (r Repetition) IsEmpty() bool { return r.e.off == r.e.end }

// NumComponents returns the number of components (0 when empty).
func (r Repetition) NumComponents() int {
	if r.e.nm&modeMask != modeIndex {
		return r.e.parts(r.e.m.delimsOrDefault().Component)
	}
	if r.e.off == r.e.end {
		return 0
	}
	ix, n := &r.e.m.idx, r.e.nm>>3
	return int(ix.r[n+1] - ix.r[n])
}

// Component returns component i (1-based).
func (r Repetition) Component(i int) Component {
	if r.e.nm&modeMask != modeIndex {
		return Component{r.e.part(r.e.m.delimsOrDefault().Component, i)}
	}
	ix, n := &r.e.m.idx, r.e.nm>>3
	k := ix.r[n] + uint32(i) - 1
	if i < 1 || k >= ix.r[n+1] {
		return Component{}
	}
	return Component{elem{m: r.e.m, off: ix.s[ix.c[k]], end: ix.s[ix.c[k+1]] - 1, nm: k<<3 | r.e.nm&escBit | modeIndex}}
}

// Value returns the unescaped first sub-component of the first component.
func (r Repetition) Value() string { return r.Component(1).SubComponent(1) }

// Component is one component of a repetition.
type Component struct{ e elem }

// Raw returns the encoded component (shared, do not modify).
func (c Component) Raw() []byte { return c.e.raw() }

// IsEmpty reports whether the component is absent or empty.
func (c Component) IsEmpty() bool { return c.e.off == c.e.end }

// NumSubComponents returns the number of sub-components (0 when empty).
func (c Component) NumSubComponents() int {
	if c.e.nm&modeMask != modeIndex {
		return c.e.parts(c.e.m.delimsOrDefault().SubComponent)
	}
	if c.e.off == c.e.end {
		return 0
	}
	ix, n := &c.e.m.idx, c.e.nm>>3
	return int(ix.c[n+1] - ix.c[n])
}

// SubComponent returns sub-component i (1-based), unescaped.
//
// Once the message is indexed (see scanReads), a value without escape
// sequences is a substring of one immutable copy of the message made when
// indexing, so reading it allocates nothing; a value kept after the
// message is dropped keeps that copy alive (strings.Clone it to keep it
// long). Values read before indexing and unescaped values are copies.
func (c Component) SubComponent(i int) string {
	if c.e.nm&modeMask != modeIndex {
		return c.e.scanSub(i)
	}
	m := c.e.m
	ix, n := &m.idx, c.e.nm>>3
	k := ix.c[n] + uint32(i) - 1
	if i < 1 || k >= ix.c[n+1] {
		return ""
	}
	off, end := ix.s[k], ix.s[k+1]-1
	if c.e.nm&escBit != 0 {
		return m.unescapeAt(off, end)
	}
	return ix.str[off:end]
}

// unescapeAt returns the value at raw[off:end] of an indexed message with
// escape characters, unescaped.
func (m *Message) unescapeAt(off, end uint32) string {
	v := m.raw[off:end]
	if bytes.IndexByte(v, m.delims.Escape) < 0 {
		return m.idx.str[off:end]
	}
	return string(unescape(make([]byte, 0, len(v)), v, &m.delims))
}

// scanSub is SubComponent(i) of a scanned, literal or absent component.
func (e elem) scanSub(i int) string {
	switch e.nm {
	case modeAbsent:
		return ""
	case modeLiteral:
		if i == 1 {
			return string(e.raw())
		}
		return ""
	}
	d := &e.m.delims
	v := e.part(d.SubComponent, i).raw()
	if d.Escape != 0 && bytes.IndexByte(v, d.Escape) >= 0 {
		return string(unescape(make([]byte, 0, len(v)), v, d))
	}
	return string(v)
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
