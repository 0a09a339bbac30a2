package hl7

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"sync"
)

// segIndex records where every field, repetition, component and
// sub-component of one segment starts, so that any of them is found in O(1)
// after a single O(n) scan of the segment. It holds offsets into the
// message's bytes, never copies of them.
//
// The levels nest, so two consecutive elements of the same level are always
// separated by exactly one delimiter (of that level or a higher one): the
// element after sub-component j starts at s[j+1], and sub-component j ends
// one byte before it. Each level therefore stores only where its children
// start in the level below, with one sentinel entry at the end:
//
//	f[k]  first repetition of field element k (element 0 is the name)
//	r[i]  first component of repetition i
//	c[i]  first sub-component of component i
//	s[i]  byte offset (in raw) where sub-component i starts
//
// Element k starts at s[c[r[f[k]]]] and ends at s[c[r[f[k+1]]]]-1; its
// repetitions are r[f[k]:f[k+1]], and so on down. The segment name and, in
// MSH/FHS/BHS, the encoding characters (MSH-2) are one literal element each:
// only the field separator ends them.
type segIndex struct {
	raw        []byte // the segment, without terminator
	f, r, c, s []uint32
	header     bool // MSH, FHS or BHS: field n is element n-1
	d          Delimiters
}

// msgIndex is the index storage of one message, created at the first
// field access: one block for the four levels of every segment, sized by
// counting the delimiters of the whole message (vectorised bytes.Count), and
// the per-segment index headers. Segments are indexed on first use, each
// taking the next part of every level; mu serialises that.
type msgIndex struct {
	mu         sync.Mutex
	f, r, c, s []uint32 // unused tails of the four levels
	ixs        []segIndex
}

func newMsgIndex(raw []byte, d *Delimiters, segments int) *msgIndex {
	nf := bytes.Count(raw, []byte{d.Field})
	nr := nf + bytes.Count(raw, []byte{d.Repetition})
	nc := nr + bytes.Count(raw, []byte{d.Component})
	ns := nc + bytes.Count(raw, []byte{d.SubComponent})
	// Per segment: elements = delimiters + 1, plus one sentinel. Literal
	// parts (MSH-2) and terminators only make the counts too large.
	nf, nr, nc, ns = nf+2*segments, nr+2*segments, nc+2*segments, ns+2*segments
	buf := make([]uint32, nf+nr+nc+ns)
	return &msgIndex{
		f: buf[:nf:nf], r: buf[nf : nf+nr : nf+nr], c: buf[nf+nr : nf+nr+nc : nf+nr+nc], s: buf[nf+nr+nc:],
		ixs: make([]segIndex, segments),
	}
}

// build indexes raw (segment i) into mi's next free parts; mi.mu is held.
// The scan tests eight bytes at a time for the four delimiters (SWAR) and
// records each delimiter without branching on its kind: a branch per
// delimiter mispredicts about once in five bytes of typical HL7.
func (mi *msgIndex) build(i int, raw []byte, d *Delimiters, header bool) *segIndex {
	f, r, c, s := mi.f, mi.r, mi.c, mi.s
	f[0], r[0], c[0], s[0] = 0, 0, 0, 0
	// The counters are the lengths used so far.
	var lf, lr, lc, ls uint32 = 1, 1, 1, 1

	// The literal prefix: the name, then MSH-2 in header segments.
	p := bytes.IndexByte(raw, d.Field)
	if p < 0 {
		p = len(raw)
	} else if header {
		f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, uint32(p+1)
		lf, lr, lc, ls = lf+1, lr+1, lc+1, ls+1
		if q := bytes.IndexByte(raw[p+1:], d.Field); q >= 0 {
			p += 1 + q
		} else {
			p = len(raw)
		}
	}

	// step[b] says which levels a byte b starts a new element of: bit 0
	// component, bit 1 repetition, bit 2 field (a sub-component always).
	var step [256]uint8
	step[d.Component] = 1
	step[d.Repetition] = 3
	step[d.Field] = 7
	// record notes the delimiter at q: each level writes its next slot
	// unconditionally (a spare slot exists) and advances only when the
	// delimiter ends an element of that level.
	record := func(q int) {
		k := uint32(step[raw[q]])
		f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, uint32(q+1)
		lf += k >> 2
		lr += k >> 1 & 1
		lc += k & 1
		ls++
	}
	const lo, lo7, hi = 0x0101010101010101, 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	fs, cs, rs, ss := lo*uint64(d.Field), lo*uint64(d.Component), lo*uint64(d.Repetition), lo*uint64(d.SubComponent)
	// zero marks (high bit) exactly the zero bytes of v.
	zero := func(v uint64) uint64 { return ^(((v & lo7) + lo7) | v) & hi }
	for ; p+8 <= len(raw); p += 8 {
		w := binary.LittleEndian.Uint64(raw[p:])
		m := zero(w^fs) | zero(w^cs) | zero(w^rs) | zero(w^ss)
		for m != 0 {
			record(p + bits.TrailingZeros64(m)>>3)
			m &= m - 1
		}
	}
	for ; p < len(raw); p++ {
		if b := raw[p]; b == d.Field || b == d.Component || b == d.Repetition || b == d.SubComponent {
			record(p)
		}
	}
	// Sentinels: one past the end of each level.
	f[lf], r[lr], c[lc], s[ls] = lr, lc, ls, uint32(len(raw)+1)
	ix := &mi.ixs[i]
	*ix = segIndex{raw: raw, f: f[: lf+1 : lf+1], r: r[: lr+1 : lr+1], c: c[: lc+1 : lc+1], s: s[: ls+1 : ls+1], header: header, d: *d}
	mi.f, mi.r, mi.c, mi.s = f[lf+1:], r[lr+1:], c[lc+1:], s[ls+1:]
	return ix
}

// elements returns the number of field elements (the name included).
func (ix *segIndex) elements() int { return len(ix.f) - 1 }

// fieldBytes returns field element k.
func (ix *segIndex) fieldBytes(k uint32) []byte {
	return ix.raw[ix.s[ix.c[ix.r[ix.f[k]]]] : ix.s[ix.c[ix.r[ix.f[k+1]]]]-1]
}

// repBytes returns repetition i (an index into r).
func (ix *segIndex) repBytes(i uint32) []byte {
	return ix.raw[ix.s[ix.c[ix.r[i]]] : ix.s[ix.c[ix.r[i+1]]]-1]
}

// compBytes returns component i (an index into c).
func (ix *segIndex) compBytes(i uint32) []byte {
	return ix.raw[ix.s[ix.c[i]] : ix.s[ix.c[i+1]]-1]
}

// subBytes returns sub-component i (an index into s).
func (ix *segIndex) subBytes(i uint32) []byte {
	return ix.raw[ix.s[i] : ix.s[i+1]-1]
}
