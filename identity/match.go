package identity

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
)

// Decision is what a score means.
type Decision int

// Decisions, weakest first.
const (
	NoLink Decision = iota
	Review          // a person should look
	Link            // the records are one person
)

func (d Decision) String() string {
	switch d {
	case Link:
		return "link"
	case Review:
		return "review"
	}
	return "no-link"
}

// Contribution is one field's part in a score.
type Contribution struct {
	Field  string  `json:"field"`
	Level  string  `json:"level"`
	Weight float64 `json:"weight"` // bits; term-frequency adjustment included
}

// Score is the comparison of two records with its explanation.
type Score struct {
	A, B Key `json:"-"`
	// Weight is the match weight in bits: the prior log-odds plus every
	// field's log2(m/u).
	Weight      float64        `json:"weight"`
	Probability float64        `json:"probability"`
	Decision    Decision       `json:"-"`
	Explanation []Contribution `json:"explanation"`
	// Guard names the rule that kept a high score from linking ("" when
	// none applied).
	Guard string `json:"guard,omitempty"`
}

// Options tune a Matcher. Zero values take the defaults.
type Options struct {
	// LinkWeight is the match weight (bits, prior included) at or above
	// which a pair is linked; default 14 (posterior odds 16384:1).
	LinkWeight float64
	// ContactLinkWeight is the lower link weight of a pair that also
	// shares a contact channel (same street address, phone, email or
	// identifier) and passes every guard; default LinkWeight - 6.
	ContactLinkWeight float64
	// EvidenceLinkWeight and FloorLinkWeight: a pair whose evidence alone
	// (the weight without the prior: Fellegi and Sunter's own threshold
	// on the likelihood ratio) reaches EvidenceLinkWeight links when its
	// weight with the prior reaches FloorLinkWeight and it passes every
	// guard. Defaults 29 and 10 bits (odds 1024:1: each such link is
	// still above the 0.999 precision goal by the model).
	EvidenceLinkWeight, FloorLinkWeight float64
	// ReviewWeight is the match weight at or above which a pair that is not
	// linked goes to review; pairs below it are "no link", and clusters
	// never join two records scoring below it. Default 0.
	ReviewWeight float64
	// CrossSlack: clustering refuses to merge two groups when a pair
	// across them scores below ReviewWeight - CrossSlack (or fails a
	// guard); default 10 bits, so that one stale record does not keep a
	// person apart while a clear non-match still does.
	CrossSlack float64
	// MaxBlock skips blocks with more records than this (a shared clinic
	// phone, a placeholder birth date); default 100.
	MaxBlock int
	// Workers compare pairs in parallel; default GOMAXPROCS.
	Workers int
	// Model, when set, is used instead of fitting one (scoring new records
	// against an earlier fit).
	Model *Model
	// Overrides are people's link and unlink decisions, applied on top of
	// the algorithm.
	Overrides []Override
}

func (o *Options) defaults() {
	if o.LinkWeight == 0 {
		o.LinkWeight = 14
	}
	if o.ContactLinkWeight == 0 {
		o.ContactLinkWeight = o.LinkWeight - 6
	}
	if o.EvidenceLinkWeight == 0 {
		o.EvidenceLinkWeight = 29
	}
	if o.FloorLinkWeight == 0 {
		o.FloorLinkWeight = 10
	}
	if o.CrossSlack == 0 {
		o.CrossSlack = 10
	}
	if o.MaxBlock == 0 {
		o.MaxBlock = 100
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
}

// Matcher links records. Create one with New; it is not safe for
// concurrent use while Run runs.
type Matcher struct {
	opts  Options
	recs  []Record
	feats []features
	model *Model
	// term frequencies of exact given and family names
	givenTF, familyTF    map[string]float64
	givenSumSq, famSumSq float64
	index                map[Key]int32
	qi                   queryIndex
}

// New prepares records for matching (normalization and term frequencies).
func New(recs []Record, opts Options) *Matcher {
	opts.defaults()
	m := &Matcher{opts: opts, recs: recs, feats: make([]features, len(recs)), model: opts.Model}
	var wg sync.WaitGroup
	chunk := (len(recs) + opts.Workers - 1) / max(opts.Workers, 1)
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := interner{} // one per worker: no locking
			for i := lo; i < hi; i++ {
				m.feats[i] = prepare(&recs[i], in)
			}
		}()
	}
	wg.Wait()
	m.givenTF, m.givenSumSq = termFreq(m.feats, func(f *features) string { return f.given })
	m.familyTF, m.famSumSq = termFreq(m.feats, func(f *features) string { return f.family })
	m.index = make(map[Key]int32, len(recs))
	for i := range recs {
		m.index[recs[i].Key] = int32(i)
	}
	return m
}

func termFreq(fs []features, get func(*features) string) (map[string]float64, float64) {
	counts := map[string]int{}
	n := 0
	for i := range fs {
		if v := get(&fs[i]); v != "" {
			counts[v]++
			n++
		}
	}
	tf := make(map[string]float64, len(counts))
	var sq int64 // exact, whatever the map order
	for v, c := range counts {
		tf[v] = float64(c) / float64(n)
		sq += int64(c) * int64(c)
	}
	return tf, float64(sq) / (float64(n) * float64(n))
}

// tfAdjust is the term-frequency adjustment of exact agreement on value v:
// log2(Σ tf² / tf(v)), so a rare shared name adds evidence and a common
// one removes some, bounded to ±6 bits.
func tfAdjust(tf map[string]float64, sumSq float64, v string) float64 {
	f := tf[v]
	if f == 0 || sumSq == 0 {
		return 0
	}
	return clamp(math.Log2(sumSq/f), -6, 6)
}

// Model returns the fitted (or given) model; nil before Run.
func (m *Matcher) Model() *Model { return m.model }

// Result is the outcome of a run.
type Result struct {
	Records    int `json:"records"`
	Candidates int `json:"candidates"` // pairs compared after blocking
	// SkippedBlocks counts blocks larger than MaxBlock.
	SkippedBlocks int `json:"skipped_blocks"`
	Links         int `json:"links"` // pairs that joined two clusters
	// Refused counts link-scored pairs that clustering refused.
	Refused int    `json:"refused"`
	Model   *Model `json:"model"`
	Review  []Pair `json:"-"`
	// Cluster gives each record's cluster as the smallest record index in
	// it.
	Cluster []int32 `json:"-"`
}

// Pair is a scored pair of record indices.
type Pair struct {
	A, B   int32
	Weight float64
	Reason string // why it is in review: "score", a guard, "cluster guard"
}

// Clusters returns the clusters as sorted lists of record indices, in the
// order of their smallest index (singletons included).
func (r *Result) Clusters() [][]int32 {
	pos := map[int32]int{}
	var out [][]int32
	for i, c := range r.Cluster {
		k, ok := pos[c]
		if !ok {
			k = len(out)
			pos[c] = k
			out = append(out, nil)
		}
		out[k] = append(out[k], int32(i))
	}
	return out
}

// Run blocks, compares, fits the model (unless one was given), scores and
// clusters.
func (m *Matcher) Run(ctx context.Context) (*Result, error) {
	res := &Result{Records: len(m.recs)}
	pairs, strict, skipped := m.candidates()
	res.Candidates, res.SkippedBlocks = len(pairs), skipped
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmps := m.compareAll(pairs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.model == nil {
		counts := map[pattern]int{}
		nStrict := 0
		for k, c := range cmps {
			if strict[k] {
				counts[c.levels()]++
				nStrict++
			}
		}
		u, n := m.randomU()
		m.model = fitEM(counts, &u)
		m.model.RandomPairs = n
		all := float64(len(m.recs)) * float64(len(m.recs)-1) / 2
		// the prior from the strict pairs: the few matches only a name
		// block finds are left out of it, which errs toward fewer links
		m.model.Lambda = clamp(m.model.CandidateLambda*float64(nStrict)/math.Max(all, 1), 1e-12, 0.5)
	}
	prior := m.model.PriorWeight()
	var links []Pair
	for k, c := range cmps {
		a, b := int32(pairs[k]>>32), int32(pairs[k])
		w := prior + m.weight(a, b, c.pat)
		switch d, guard := m.decide(w, c); d {
		case Link:
			links = append(links, Pair{A: a, B: b, Weight: w})
		case Review:
			if guard == "" {
				guard = "score"
			}
			res.Review = append(res.Review, Pair{A: a, B: b, Weight: w, Reason: guard})
		}
	}
	cmps, strict = nil, nil
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.cluster(res, links)
	res.Model = m.model
	return res, nil
}

// weight is the sum of the field weights of a compared pair with the
// term-frequency adjustments of exact name agreement.
func (m *Matcher) weight(a, _ int32, p pattern) float64 { return m.weightOf(&m.feats[a], p) }

const guardGiven = "given names disagree"

// middleIn reports whether record x's given name is the first middle name
// of a record in group.
func (m *Matcher) middleIn(x int32, group []int32) bool {
	g := m.feats[x].given
	for _, y := range group {
		if g != "" && firstToken(m.feats[y].middle) == g {
			return true
		}
	}
	return false
}

// guard returns the rule that forbids linking a compared pair
// automatically, or "".
func guard(c comparison) string {
	switch {
	case c.pat.level(FieldIdentifier) == idConflict:
		return "identifier conflict"
	case c.suffixConflict():
		return "suffix conflict"
	case c.pat.level(FieldGiven) != levelNull && c.pat.level(FieldGiven) < givenPartial:
		return guardGiven
	case c.pat.level(FieldBirthDate) != levelNull && c.pat.level(FieldBirthDate) < dobPartial:
		return "birth dates disagree"
	}
	return ""
}

func (m *Matcher) decide(w float64, c comparison) (Decision, string) {
	if w < m.opts.ReviewWeight {
		return NoLink, ""
	}
	g := guard(c)
	if g == "" && (w >= m.opts.LinkWeight || (w >= m.opts.ContactLinkWeight && sharesContact(c)) ||
		(w >= m.opts.FloorLinkWeight && w-m.model.PriorWeight() >= m.opts.EvidenceLinkWeight)) {
		return Link, ""
	}
	return Review, g
}

// sharesContact reports whether a compared pair agrees on a channel of
// its own beside the name and birth date: the same street address (number
// and street), phone, email or identifier of one authority.
func sharesContact(c comparison) bool {
	p := c.pat
	return p.level(FieldAddress) >= 3 || p.level(FieldPhone) == 2 || p.level(FieldEmail) == 2 || p.level(FieldIdentifier) == idAgree
}

// Compare scores records i and j (indices into the records given to New)
// with the explanation. Run must have fitted the model first.
func (m *Matcher) Compare(i, j int) Score {
	c := compare(&m.feats[i], &m.feats[j])
	s := Score{A: m.recs[i].Key, B: m.recs[j].Key, Explanation: m.explain(&m.feats[i], c)}
	for _, x := range s.Explanation {
		s.Weight += x.Weight
	}
	s.Probability = 1 / (1 + math.Exp2(-s.Weight))
	s.Decision, s.Guard = m.decide(s.Weight, c)
	return s
}

// Index returns the index of the record with key k.
func (m *Matcher) Index(k Key) (int, bool) {
	i, ok := m.index[k]
	return int(i), ok
}

// randomPairs is how many random pairs estimate U.
const randomPairs = 400_000

// randomU estimates the u probabilities from random pairs of records
// (deterministic: a fixed generator), each level floored at half of one
// observation.
func (m *Matcher) randomU() ([numFields][8]float64, int) {
	var counts [numFields][8]float64
	n := len(m.feats)
	if n < 2 {
		return uniformU(), 0
	}
	r := genRNG{s: 0x5eed}
	total := 0
	for k := 0; k < randomPairs; k++ {
		i, j := r.intn(n), r.intn(n)
		if i == j {
			continue
		}
		c := compare(&m.feats[i], &m.feats[j])
		for f := Field(0); f < numFields; f++ {
			counts[f][c.pat.level(f)]++
		}
		total++
	}
	var u [numFields][8]float64
	for f := Field(0); f < numFields; f++ {
		k := len(fieldInfo[f].levels) - 1
		var s float64
		for l := 1; l <= k; l++ {
			s += counts[f][l]
		}
		for l := 1; l <= k; l++ {
			if s == 0 {
				u[f][l] = 1 / float64(k)
				continue
			}
			u[f][l] = math.Max(counts[f][l], 0.5) / s
		}
	}
	return u, total
}

func uniformU() [numFields][8]float64 {
	var u [numFields][8]float64
	for f := Field(0); f < numFields; f++ {
		k := len(fieldInfo[f].levels) - 1
		for l := 1; l <= k; l++ {
			u[f][l] = 1 / float64(k)
		}
	}
	return u
}

func (m *Matcher) compareAll(pairs []uint64) []comparison {
	out := make([]comparison, len(pairs))
	var wg sync.WaitGroup
	chunk := (len(pairs) + m.opts.Workers - 1) / m.opts.Workers
	for w := 0; w < m.opts.Workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(pairs))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := lo; k < hi; k++ {
				out[k] = compare(&m.feats[pairs[k]>>32], &m.feats[uint32(pairs[k])])
			}
		}()
	}
	wg.Wait()
	return out
}

// cluster joins linked pairs, strongest first, into clusters, applying the
// overrides and the cross-pair guard.
func (m *Matcher) cluster(res *Result, links []Pair) {
	n := len(m.recs)
	parent := make([]int32, n)
	for i := range parent {
		parent[i] = int32(i)
	}
	var find func(int32) int32
	find = func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	members := map[int32][]int32{} // only for clusters of two or more
	get := func(r int32) []int32 {
		if ms, ok := members[r]; ok {
			return ms
		}
		return []int32{r}
	}
	union := func(a, b int32) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		ma, mb := get(ra), get(rb)
		if len(ma) < len(mb) {
			ra, rb, ma, mb = rb, ra, mb, ma
		}
		parent[rb] = ra
		members[ra] = append(ma, mb...)
		delete(members, rb)
	}
	cannot := map[[2]int32]bool{}
	for _, o := range m.opts.Overrides {
		a, okA := m.index[o.A]
		b, okB := m.index[o.B]
		if !okA || !okB {
			continue
		}
		if o.Action == ActionUnlink {
			cannot[[2]int32{min(a, b), max(a, b)}] = true
		}
	}
	for _, o := range m.opts.Overrides {
		a, okA := m.index[o.A]
		b, okB := m.index[o.B]
		if okA && okB && o.Action == ActionLink {
			union(a, b)
		}
	}
	sort.Slice(links, func(i, j int) bool {
		if links[i].Weight != links[j].Weight {
			return links[i].Weight > links[j].Weight
		}
		if links[i].A != links[j].A {
			return links[i].A < links[j].A
		}
		return links[i].B < links[j].B
	})
	const maxCross = 2500
	prior := m.model.PriorWeight()
	for _, l := range links {
		ra, rb := find(l.A), find(l.B)
		if ra == rb {
			continue
		}
		ma, mb := get(ra), get(rb)
		ok := len(ma)*len(mb) <= maxCross
		for _, x := range ma {
			for _, y := range mb {
				if !ok {
					break
				}
				if cannot[[2]int32{min(x, y), max(x, y)}] {
					ok = false
					break
				}
				if (x == l.A && y == l.B) || (x == l.B && y == l.A) {
					continue
				}
				c := compare(&m.feats[x], &m.feats[y])
				g := guard(c)
				if g == guardGiven && (m.middleIn(x, mb) || m.middleIn(y, ma) || m.middleIn(x, ma) || m.middleIn(y, mb)) {
					g = "" // the name one goes by is a middle name in the joined group
				}
				if g != "" || prior+m.weight(x, y, c.pat) < m.opts.ReviewWeight-m.opts.CrossSlack {
					ok = false
				}
			}
		}
		if !ok {
			res.Refused++
			res.Review = append(res.Review, Pair{A: l.A, B: l.B, Weight: l.Weight, Reason: "cluster guard"})
			continue
		}
		union(l.A, l.B)
		res.Links++
	}
	// a review pair whose records ended in one cluster anyway (through
	// other links) needs no review
	kept := res.Review[:0]
	for _, p := range res.Review {
		if find(p.A) != find(p.B) {
			kept = append(kept, p)
		}
	}
	res.Review = kept
	label := make([]int32, n)
	for i := range label {
		label[i] = -1
	}
	res.Cluster = make([]int32, n)
	for i := 0; i < n; i++ {
		r := find(int32(i))
		if label[r] == -1 {
			label[r] = int32(i) // the smallest member
		}
		res.Cluster[i] = label[r]
	}
	slices.SortFunc(res.Review, func(a, b Pair) int {
		if a.Weight != b.Weight {
			if a.Weight > b.Weight {
				return -1
			}
			return 1
		}
		return int(a.A) - int(b.A)
	})
}
