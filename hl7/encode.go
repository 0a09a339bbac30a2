package hl7

import (
	"io"
	"strings"
)

// Encode returns the message in canonical wire form: every segment followed
// by a CR, with any lenient-mode prefix (byte-order mark, blank lines) and
// whitespace-only lines dropped. Field content is copied byte for byte, so
// Parse(Encode(m)) has the same segments and values as m, and Encode of a
// message that already used CR terminators returns the same bytes.
func (m *Message) Encode() []byte { return m.AppendEncode(nil) }

// AppendEncode appends the encoded message to dst.
func (m *Message) AppendEncode(dst []byte) []byte {
	for i := range m.segs {
		dst = append(dst, m.raw[m.segs[i].off:m.segs[i].end]...)
		dst = append(dst, '\r')
	}
	return dst
}

// WriteTo writes the encoded message to w.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(m.Encode())
	return int64(n), err
}

// Builder writes a message segment by segment. Values passed to it are
// already encoded: use Escape for primitives and Delimiters.Join to build
// composites. The zero Builder is not usable; call NewBuilder.
type Builder struct {
	d   Delimiters
	buf []byte
}

// NewBuilder returns a Builder encoding with d.
func NewBuilder(d Delimiters) *Builder { return &Builder{d: d} }

// Segment appends a segment. fields[0] is field 1, except for MSH, FHS and
// BHS where the builder writes MSH-1 and MSH-2 itself and fields[0] is
// MSH-3. Trailing empty fields are dropped.
func (b *Builder) Segment(name string, fields ...string) *Builder {
	for len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	b.buf = append(b.buf, name...)
	if isHeaderName([]byte(name)) {
		b.buf = append(b.buf, b.d.Field)
		b.buf = append(b.buf, b.d.EncodingCharacters()...)
	}
	for _, f := range fields {
		b.buf = append(b.buf, b.d.Field)
		b.buf = append(b.buf, f...)
	}
	b.buf = append(b.buf, '\r')
	return b
}

// Bytes returns the message built so far.
func (b *Builder) Bytes() []byte { return b.buf }

// Join escapes each primitive value and joins them with the component
// separator, trimming trailing empty components: Join("ACK", "A01") is
// "ACK^A01".
func (d Delimiters) Join(components ...string) string {
	for len(components) > 0 && components[len(components)-1] == "" {
		components = components[:len(components)-1]
	}
	var sb strings.Builder
	for i, c := range components {
		if i > 0 {
			sb.WriteByte(d.Component)
		}
		sb.WriteString(Escape(c, d))
	}
	return sb.String()
}
