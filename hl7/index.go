package hl7

import (
	"bytes"
	"encoding/binary"
	"math/bits"
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

// buildIndex scans a segment once. Four bytes.Count passes (vectorised)
// size one exact backing array for the four levels; the scan then tests
// eight bytes at a time for the four delimiters (SWAR) and records each
// delimiter without branching on its kind: a branch per delimiter
// mispredicts about once in five bytes of typical HL7.
func buildIndex(raw []byte, d *Delimiters, header bool) *segIndex {
	nf := bytes.Count(raw, []byte{d.Field})
	nr := nf + bytes.Count(raw, []byte{d.Repetition})
	nc := nr + bytes.Count(raw, []byte{d.Component})
	ns := nc + bytes.Count(raw, []byte{d.SubComponent})
	// Elements = delimiters + 1, plus one sentinel each. The literal MSH-2
	// only makes these counts too large, never too small.
	buf := make([]uint32, nf+nr+nc+ns+8)
	f := buf[: nf+2 : nf+2]
	buf = buf[nf+2:]
	r := buf[: nr+2 : nr+2]
	buf = buf[nr+2:]
	c := buf[: nc+2 : nc+2]
	s := buf[nc+2:]

	// Entry 0 of every level is 0 (zeroed by make).
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
	return &segIndex{raw: raw, f: f[:lf+1], r: r[:lr+1], c: c[:lc+1], s: s[:ls+1], header: header, d: *d}
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
