package identity

import (
	"slices"
	"strconv"
)

// Blocking keys. A pair is compared when the records share at least one:
//
//   - birth date + NYSIIS code of the surname (and of each previous
//     surname)
//   - birth date + NYSIIS code of the given name (survives a surname
//     change)
//   - first three letters of the surname + given initial + birth year
//     (survives a day/month swap or a typo in the day)
//   - NYSIIS codes of surname and given name, without birth date (a
//     record missing its birth date; blocks of common names go over
//     MaxBlock and are skipped)
//   - NYSIIS(surname) + given initial + birth month and day (survives a
//     typo in the year)
//   - normalized phone number
//   - normalized email address
//   - identifier value by assigning authority
//   - house number + street + ZIP code
const (
	blockDOBFamily byte = iota + 1
	blockDOBGiven
	blockPrefixYear
	blockPhone
	blockEmail
	blockIdentifier
	blockAddress
	blockNames
	blockNameMonthDay
)

type blockKey struct {
	h uint64
	i uint32
	// loose marks the keys of the name-only rules (blockNames,
	// blockNameMonthDay): their pairs are compared and scored, but the
	// model is not fitted on them (see candidates).
	loose bool
}

// fnv-1a, 64 bits
type hasher uint64

func newHasher(kind byte) hasher { return hasher(14695981039346656037).byte(kind) }

func (h hasher) byte(c byte) hasher { return (h ^ hasher(c)) * 1099511628211 }

func (h hasher) str(s string) hasher {
	for i := 0; i < len(s); i++ {
		h = h.byte(s[i])
	}
	return h.byte(0)
}

func (h hasher) int(v int32) hasher {
	for i := 0; i < 4; i++ {
		h = h.byte(byte(v >> (8 * i)))
	}
	return h
}

// keysOf appends the blocking keys of record i.
func keysOf(dst []blockKey, f *features, i uint32) []blockKey {
	add := func(h hasher) { dst = append(dst, blockKey{h: uint64(h), i: i}) }
	addLoose := func(h hasher) { dst = append(dst, blockKey{h: uint64(h), i: i, loose: true}) }
	if f.dob != 0 {
		if f.familyNY != "" {
			add(newHasher(blockDOBFamily).int(f.dob).str(f.familyNY))
		}
		if f.givenNY != "" {
			add(newHasher(blockDOBGiven).int(f.dob).str(f.givenNY))
		}
		for _, p := range f.previous { // a maiden name meets the records that still use it
			add(newHasher(blockDOBFamily).int(f.dob).str(NYSIIS(p)))
		}
		if len(f.family) >= 2 && f.given != "" {
			p := f.family
			if len(p) > 3 {
				p = p[:3]
			}
			add(newHasher(blockPrefixYear).int(f.dob / 10000).str(p).byte(f.given[0]))
		}
		if f.familyNY != "" && f.given != "" {
			addLoose(newHasher(blockNameMonthDay).int(f.dob % 10000).str(f.familyNY).byte(f.given[0]))
		}
	}
	if f.familyNY != "" && f.givenNY != "" {
		addLoose(newHasher(blockNames).str(f.familyNY).str(f.givenNY))
	}
	if f.phone != "" {
		add(newHasher(blockPhone).str(f.phone))
	}
	if f.email != "" {
		add(newHasher(blockEmail).str(f.email))
	}
	for _, id := range f.ids {
		add(newHasher(blockIdentifier).str(id.System).str(id.Value))
	}
	if f.addr.Street != "" && f.addr.Number != "" {
		add(newHasher(blockAddress).str(f.addr.Number).str(f.addr.Street).str(f.addr.Zip))
	}
	return dst
}

// candidates returns the distinct pairs (i<<32 | j, i < j) that share a
// blocking key, sorted; which of them share a key of a strict rule (every
// rule but the name-only ones); and the number of blocks skipped as too
// large.
//
// The model is fitted on the strict pairs only. Pairs that share nothing
// but a name are mostly namesakes, and in a large population they
// outnumber the true pairs so far that the EM takes "same name" for the
// match class (at 1M records its match class had birth dates disagreeing
// in 85% of pairs); blocking rules chosen so that matches are a sizeable
// share of the pairs keep the fit on the people (Splink fits each EM
// session on pairs from one blocking rule for the same reason).
func (m *Matcher) candidates() ([]uint64, []bool, int) {
	keys := make([]blockKey, 0, len(m.feats)*8)
	for i := range m.feats {
		keys = keysOf(keys, &m.feats[i], uint32(i))
	}
	slices.SortFunc(keys, func(a, b blockKey) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.i) - int(b.i)
	})
	// two passes: count, then fill an exactly sized slice
	total, skipped := 0, 0
	forBlocks(keys, func(lo, hi int) {
		if hi-lo > m.maxBlock(keys[lo].loose) {
			skipped++
			return
		}
		total += (hi - lo) * (hi - lo - 1) / 2
	})
	// each pair shifted left by one, the low bit set for a loose key's
	// pair: sorted, a pair's strict copy comes first
	tagged := make([]uint64, 0, total)
	forBlocks(keys, func(lo, hi int) {
		if hi-lo > m.maxBlock(keys[lo].loose) {
			return
		}
		var loose uint64
		if keys[lo].loose {
			loose = 1
		}
		for x := lo; x < hi; x++ {
			for y := x + 1; y < hi; y++ {
				if keys[x].i != keys[y].i {
					tagged = append(tagged, (uint64(keys[x].i)<<32|uint64(keys[y].i))<<1|loose)
				}
			}
		}
	})
	keys = nil
	slices.Sort(tagged)
	pairs := tagged[:0] // in place: each pair is written at or before where it was read
	var strict []bool
	prev := ^uint64(0)
	for _, v := range tagged {
		if v>>1 == prev {
			continue
		}
		prev = v >> 1
		pairs = append(pairs, prev)
		strict = append(strict, v&1 == 0)
	}
	return pairs, strict, skipped
}

// maxBlock is the largest block compared: MaxBlock, and a quarter of it
// for the name-only rules, which are there for rare names (a shared common
// name says little, and its blocks grow with the population: at 1M records
// they brought four times the strict rules' pairs).
func (m *Matcher) maxBlock(loose bool) int {
	if loose {
		return max(m.opts.MaxBlock/4, 2)
	}
	return m.opts.MaxBlock
}

// forBlocks calls fn for each run of equal hashes in sorted keys.
func forBlocks(keys []blockKey, fn func(lo, hi int)) {
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && keys[hi].h == keys[lo].h {
			hi++
		}
		fn(lo, hi)
		lo = hi
	}
}

// BlockingKeys returns a description of record r's blocking keys (kind
// names only, for tests and diagnostics; values are never returned).
func BlockingKeys(r Record) []string {
	f := prepare(&r, interner{})
	var out []string
	for _, k := range keysOf(nil, &f, 0) {
		out = append(out, strconv.FormatUint(k.h, 16))
	}
	return out
}
