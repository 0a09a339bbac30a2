package identity

import (
	"math"
	"sort"
)

// LevelParams are the Fellegi–Sunter parameters of one agreement level.
type LevelParams struct {
	Level  string  `json:"level"`
	M      float64 `json:"m"`      // P(level | the records are one person)
	U      float64 `json:"u"`      // P(level | they are not)
	Weight float64 `json:"weight"` // log2(M/U), bits of evidence
}

// FieldParams are the parameters of one field (null excluded: it weighs 0).
type FieldParams struct {
	Field  string        `json:"field"`
	Levels []LevelParams `json:"levels"`
}

// Model is a fitted Fellegi–Sunter model.
//
// M comes from expectation–maximisation over the candidate pairs (the
// match class of a two-class mixture); U from comparing random pairs of
// records, which are almost all non-matches (as Splink does): the u of
// candidate pairs is distorted by blocking (households share an address
// and a phone because that is how they were blocked), the u of random pairs
// is the chance agreement of the population. Lambda is the prior
// probability that two records drawn at random are one person: the EM's
// share of matches among candidates times candidates over all pairs.
type Model struct {
	Lambda float64 `json:"lambda"`
	// CandidateLambda is the EM's share of matches among candidate pairs.
	CandidateLambda float64       `json:"candidate_lambda"`
	RandomPairs     int           `json:"random_pairs"` // pairs sampled for U
	Fields          []FieldParams `json:"fields"`
	Iterations      int           `json:"iterations"`
	Converged       bool          `json:"converged"`
	// weights[f][l] is log2(m/u), 0 for null.
	weights [numFields][8]float64
}

// PriorWeight is log2(Lambda / (1 - Lambda)), the prior odds in bits.
func (m *Model) PriorWeight() float64 { return math.Log2(m.Lambda / (1 - m.Lambda)) }

// patternWeight sums the field weights of a pattern (no term frequency).
func (m *Model) patternWeight(p pattern) float64 {
	var w float64
	for f := Field(0); f < numFields; f++ {
		w += m.weights[f][p.level(f)]
	}
	return w
}

// Probability bounds: no level is ever certain either way, so that one
// field can never make a weight infinite.
const (
	minProb = 1e-5
	emTol   = 1e-7
	emMax   = 500
)

// FitEM estimates the model from the comparison patterns of the candidate
// pairs and how often each occurred, by expectation–maximisation under the
// conditional-independence assumption of the Fellegi–Sunter model (Winkler,
// "Using the EM Algorithm for Weight Computation in the Fellegi-Sunter
// Model of Record Linkage", 1988). Null levels are treated as missing. It
// starts from "matches mostly agree, non-matches mostly disagree" and stops
// when no parameter moves by more than 1e-7, or after 500 iterations.
func fitEM(counts map[pattern]int, random *[numFields][8]float64) *Model {
	type pc struct {
		p pattern
		n float64
	}
	pats := make([]pc, 0, len(counts))
	var total float64
	for p, n := range counts {
		pats = append(pats, pc{p, float64(n)})
		total += float64(n)
	}
	// a fixed order: floating-point sums, and so the fit, do not depend on
	// map iteration
	sort.Slice(pats, func(i, j int) bool { return pats[i].p < pats[j].p })
	var m, u [numFields][8]float64
	for f := Field(0); f < numFields; f++ {
		k := len(fieldInfo[f].levels) - 1 // non-null levels 1..k
		for l := 1; l <= k; l++ {
			// m rises geometrically toward exact, u falls.
			m[f][l] = math.Pow(4, float64(l-1))
			u[f][l] = math.Pow(4, float64(k-l))
		}
		normProbs(&m[f], k)
		normProbs(&u[f], k)
	}
	lambda := 0.1
	model := &Model{}
	post := make([]float64, len(pats))
	for it := 1; it <= emMax && total > 0; it++ { // no candidates: the starting values stay
		// E step
		for i, x := range pats {
			lm, lu := math.Log(lambda), math.Log(1-lambda)
			for f := Field(0); f < numFields; f++ {
				if l := x.p.level(f); l != levelNull {
					lm += math.Log(m[f][l])
					lu += math.Log(u[f][l])
				}
			}
			post[i] = 1 / (1 + math.Exp(lu-lm))
		}
		// M step
		var nm, nu [numFields][8]float64
		var sm float64
		for i, x := range pats {
			g := post[i] * x.n
			sm += g
			for f := Field(0); f < numFields; f++ {
				if l := x.p.level(f); l != levelNull {
					nm[f][l] += g
					nu[f][l] += x.n - g
				}
			}
		}
		delta := math.Abs(sm/total - lambda)
		lambda = clamp(sm/total, minProb, 1-minProb)
		for f := Field(0); f < numFields; f++ {
			k := len(fieldInfo[f].levels) - 1
			normProbs(&nm[f], k)
			normProbs(&nu[f], k)
			for l := 1; l <= k; l++ {
				delta = math.Max(delta, math.Abs(nm[f][l]-m[f][l]))
				delta = math.Max(delta, math.Abs(nu[f][l]-u[f][l]))
			}
			m[f], u[f] = nm[f], nu[f]
		}
		model.Iterations = it
		if delta < emTol {
			model.Converged = true
			break
		}
	}
	model.CandidateLambda = lambda
	if random != nil {
		u = *random
	}
	for f := Field(0); f < numFields; f++ {
		fp := FieldParams{Field: f.String()}
		k := len(fieldInfo[f].levels) - 1
		for l := 1; l <= k; l++ {
			// No level is certain evidence: m is floored at 1e-3 so that
			// one field weighs at most about 10 bits against.
			m[f][l] = math.Max(m[f][l], 1e-3)
			w := math.Log2(m[f][l] / u[f][l])
			model.weights[f][l] = w
			fp.Levels = append(fp.Levels, LevelParams{Level: fieldInfo[f].levels[l], M: m[f][l], U: u[f][l], Weight: w})
		}
		model.Fields = append(model.Fields, fp)
	}
	return model
}

// normProbs scales levels 1..k to sum to 1, keeping each at least minProb.
func normProbs(p *[8]float64, k int) {
	var s float64
	for l := 1; l <= k; l++ {
		s += p[l]
	}
	for l := 1; l <= k; l++ {
		if s > 0 {
			p[l] /= s
		} else {
			p[l] = 1 / float64(k)
		}
		p[l] = math.Max(p[l], minProb)
	}
}

func clamp(x, lo, hi float64) float64 { return math.Min(math.Max(x, lo), hi) }
