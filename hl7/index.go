package hl7

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// msgIndex records where every field, repetition, component and
// sub-component of every segment of a message starts, so that any of them
// is found in O(1) after a single O(n) scan of the message. It holds offsets
// into the message's bytes, never copies of parts of them, in one flat
// allocation.
//
// The levels nest, so two consecutive elements of the same level of one
// segment are always separated by exactly one delimiter (of that level or a
// higher one): the element after sub-component j starts at s[j+1], and
// sub-component j ends one byte before it. Each level therefore stores only
// where its children start in the level below; the segments are laid end to
// end, each closed by one sentinel entry per level:
//
//	g[i]  element 0 (the name) of segment i, an index into f; g[i+1]-1 is
//	      the segment's sentinel
//	f[k]  first repetition of field element k
//	r[i]  first component of repetition i
//	c[i]  first sub-component of component i
//	s[i]  byte offset (in the message) where sub-component i starts; a
//	      segment's sentinel holds its end + 1
//
// Element k starts at s[c[r[f[k]]]] and ends at s[c[r[f[k+1]]]]-1; its
// repetitions are r[f[k]:f[k+1]], and so on down. The segment name and, in
// MSH/FHS/BHS, the encoding characters (MSH-2) are one literal element
// each: only the field separator ends them.
type msgIndex struct {
	// str is an immutable copy of the message: values without escapes are
	// substrings of it, so reading a value allocates nothing. One retained
	// value keeps the copy alive (see Component.SubComponent).
	str           string
	g, f, r, c, s []uint32
	flags         []uint8 // per segment: segHeader, segEscape
}

const (
	segHeader = 1 << iota // MSH, FHS or BHS: field n is element n-1
	segEscape             // an escape character occurs outside the literal prefix
)

// maxIndexed bounds the number of delimiters of an indexed message, so that
// an element number fits in elem.nm beside the mode. Larger messages
// (hundreds of megabytes) are read by scanning.
const maxIndexed = 1<<28 - 1

// buildIndex scans the message once. Four bytes.Count passes (vectorised)
// size one exact backing array for the levels; the scan then tests eight
// bytes at a time for the four delimiters (SWAR) and records each
// delimiter without branching on its kind: a branch per delimiter
// mispredicts about once in five bytes of typical HL7. ok is false when the
// message is too large to index (maxIndexed).
func buildIndex(m *Message) (ix msgIndex, ok bool) {
	raw, d, segs := m.raw, &m.delims, m.segs
	ns := len(segs)
	var span []byte
	if ns > 0 {
		span = raw[segs[0].off:segs[ns-1].end]
	}
	// Elements = delimiters + 1 per segment, plus one sentinel per segment.
	// Bytes between segments and the literal MSH-2 only make these counts
	// too large, never too small.
	nf := bytes.Count(span, []byte{d.Field}) + 2*ns
	nr := nf + bytes.Count(span, []byte{d.Repetition})
	nc := nr + bytes.Count(span, []byte{d.Component})
	nsub := nc + bytes.Count(span, []byte{d.SubComponent})
	if nsub > maxIndexed {
		return msgIndex{}, false
	}
	buf := make([]uint32, ns+1+nf+nr+nc+nsub)
	g := buf[: ns+1 : ns+1]
	buf = buf[ns+1:]
	f := buf[:nf:nf]
	buf = buf[nf:]
	r := buf[:nr:nr]
	buf = buf[nr:]
	c := buf[:nc:nc]
	s := buf[nc:]
	flags := make([]uint8, ns)

	// step[b] says which levels a byte b starts a new element of: bit 0
	// component, bit 1 repetition, bit 2 field (a sub-component always).
	var step [256]uint8
	step[d.Component] = 1
	step[d.Repetition] = 3
	step[d.Field] = 7
	const lo = 0x0101010101010101
	fs, cs, rs, ss := lo*uint64(d.Field), lo*uint64(d.Component), lo*uint64(d.Repetition), lo*uint64(d.SubComponent)

	// The counters are the next free slot of each level. Each delimiter is
	// recorded by writing the next slot of every level unconditionally (a
	// spare slot exists: the segment's sentinel) and advancing only the
	// levels whose element it ends.
	var lf, lr, lc, ls uint32
	for i, e := range segs {
		g[i] = lf
		seg := raw[e.off:e.end]
		// The name.
		f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, e.off
		lf, lr, lc, ls = lf+1, lr+1, lc+1, ls+1
		// The literal prefix: the name, then MSH-2 in header segments.
		p := bytes.IndexByte(seg, d.Field)
		if p < 0 {
			p = len(seg)
		} else if p == 3 && isHeaderName(seg[:3]) {
			flags[i] = segHeader
			f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, e.off+4
			lf, lr, lc, ls = lf+1, lr+1, lc+1, ls+1
			if q := bytes.IndexByte(seg[4:], d.Field); q >= 0 {
				p = 4 + q
			} else {
				p = len(seg)
			}
		}
		if d.Escape != 0 && bytes.IndexByte(seg[p:], d.Escape) >= 0 {
			flags[i] |= segEscape
		}
		base := e.off + 1
		for ; p+8 <= len(seg); p += 8 {
			w := binary.LittleEndian.Uint64(seg[p:])
			// The high bit of each byte of mk marks a delimiter (a zero
			// byte of w XOR the delimiter repeated).
			mk := zeroBytes(w^fs) | zeroBytes(w^cs) | zeroBytes(w^rs) | zeroBytes(w^ss)
			for mk != 0 {
				q := p + bits.TrailingZeros64(mk)>>3
				mk &= mk - 1
				k := uint32(step[seg[q]])
				f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, base+uint32(q)
				lf += k >> 2
				lr += k >> 1 & 1
				lc += k & 1
				ls++
			}
		}
		for ; p < len(seg); p++ {
			if b := seg[p]; b == d.Field || b == d.Component || b == d.Repetition || b == d.SubComponent {
				k := uint32(step[b])
				f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, base+uint32(p)
				lf += k >> 2
				lr += k >> 1 & 1
				lc += k & 1
				ls++
			}
		}
		// The sentinel: one past the end of each level.
		f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, e.end+1
		lf, lr, lc, ls = lf+1, lr+1, lc+1, ls+1
	}
	g[ns] = lf
	return msgIndex{str: string(raw), g: g, f: f[:lf], r: r[:lr], c: c[:lc], s: s[:ls], flags: flags}, true
}

// zeroBytes marks (high bit) exactly the zero bytes of v.
func zeroBytes(v uint64) uint64 {
	const lo7, hi = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	return ^(((v & lo7) + lo7) | v) & hi
}
