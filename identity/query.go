package identity

import (
	"math"
	"sort"
	"sync"
)

// queryIndex maps blocking-key hashes to record indices, built on the
// first Query.
type queryIndex struct {
	once   sync.Once
	blocks map[uint64][]int32
}

// Query scores a record that need not be among the matcher's records
// against every record sharing a blocking key with it (blocks larger than
// MaxBlock included: a query compares one record, not all pairs), best
// first, at most limit (all when limit <= 0), leaving out "no link"
// results. This is what FHIR's Patient/$match needs. Run must have fitted
// the model first (or Options.Model given). Safe for concurrent use after
// Run.
func (m *Matcher) Query(r Record, limit int) []Score {
	if m.model == nil {
		return nil
	}
	m.qi.once.Do(func() {
		m.qi.blocks = map[uint64][]int32{}
		var keys []blockKey
		for i := range m.feats {
			keys = keysOf(keys[:0], &m.feats[i], uint32(i))
			for _, k := range keys {
				m.qi.blocks[k.h] = append(m.qi.blocks[k.h], int32(i))
			}
		}
	})
	f := prepare(&r, interner{})
	seen := map[int32]bool{}
	prior := m.model.PriorWeight()
	var out []Score
	for _, k := range keysOf(nil, &f, 0) {
		for _, j := range m.qi.blocks[k.h] {
			if seen[j] || m.recs[j].Key == r.Key {
				continue
			}
			seen[j] = true
			c := compare(&f, &m.feats[j])
			w := prior + m.weightOf(&f, c.levels())
			d, g := m.decide(w, c)
			if d == NoLink {
				continue
			}
			out = append(out, Score{A: r.Key, B: m.recs[j].Key, Weight: w, Probability: 1 / (1 + math.Exp2(-w)), Decision: d, Guard: g,
				Explanation: m.explain(&f, c)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Weight != out[j].Weight {
			return out[i].Weight > out[j].Weight
		}
		return out[i].B.Less(out[j].B)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// weightOf is weight for a prepared record that is not one of m's.
func (m *Matcher) weightOf(a *features, p pattern) float64 {
	w := m.model.patternWeight(p)
	if p.level(FieldGiven) == nameExact {
		w += tfAdjust(m.givenTF, m.givenSumSq, a.given)
	}
	if p.level(FieldFamily) == familyExact {
		w += tfAdjust(m.familyTF, m.famSumSq, a.family)
	}
	return w
}

// explain lists each field's contribution, the prior first.
func (m *Matcher) explain(a *features, c comparison) []Contribution {
	out := []Contribution{{Field: "prior", Level: "lambda", Weight: m.model.PriorWeight()}}
	p := c.levels()
	for f := Field(0); f < numFields; f++ {
		l := p.level(f)
		w := m.model.weights[f][l]
		if f == FieldGiven && l == nameExact {
			w += tfAdjust(m.givenTF, m.givenSumSq, a.given)
		}
		if f == FieldFamily && l == familyExact {
			w += tfAdjust(m.familyTF, m.famSumSq, a.family)
		}
		out = append(out, Contribution{Field: f.String(), Level: fieldInfo[f].levels[l], Weight: w})
	}
	if c.suffixConflict() {
		out = append(out, Contribution{Field: "suffix", Level: "conflict", Weight: 0})
	}
	return out
}

// MatchGrade is the FHIR match-grade of a score (the
// http://hl7.org/fhir/StructureDefinition/match-grade extension of
// Patient/$match results): "certain" for a link, "probable" for a review
// at or above half the link weight, "possible" for other reviews,
// "certainly-not" otherwise.
func (m *Matcher) MatchGrade(s Score) string {
	switch {
	case s.Decision == Link:
		return "certain"
	case s.Decision == Review && s.Weight >= m.opts.LinkWeight/2:
		return "probable"
	case s.Decision == Review:
		return "possible"
	}
	return "certainly-not"
}
