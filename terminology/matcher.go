package terminology

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
)

// DefaultThreshold is the confidence at or above which a text match may be
// used as a mapping. Below it a concept stays unmapped: nothing below the
// threshold is ever mapped silently. TestTextMatcherQuality measures the
// precision this gives on the labelled set in testdata.
const DefaultThreshold = 0.80

// ambiguityMargin is the score margin under which a runner-up code lowers
// the confidence of the best one.
const ambiguityMargin = 0.15

// TextMatch is the best code a text matcher found for a name.
type TextMatch struct {
	System     string
	Code       string
	Display    string
	Confidence float64 // 0..1; see DefaultThreshold
}

type textRules struct {
	rewrite  map[string][]string
	stop     map[string]bool
	unit     map[string]bool
	specimen map[string]string // LOINC SYSTEM ("Urine") or "SYSTEM CLASS" -> token
}

var loadRules = sync.OnceValue(func() *textRules {
	f, err := dataFS.Open("data/text_rules.csv")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	r, err := parseRules(f)
	if err != nil {
		panic(fmt.Errorf("data/text_rules.csv: %w", err))
	}
	return r
})

func parseRules(rd io.Reader) (*textRules, error) {
	t, err := newCSVTable(rd, ',', "kind", "from")
	if err != nil {
		return nil, err
	}
	r := &textRules{rewrite: map[string][]string{}, stop: map[string]bool{}, unit: map[string]bool{}, specimen: map[string]string{}}
	for {
		ok, err := t.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return r, nil
		}
		from := t.get("from")
		switch t.get("kind") {
		case "rewrite":
			r.rewrite[from] = strings.Fields(t.get("to"))
		case "stop":
			r.stop[from] = true
		case "unit":
			r.unit[from] = true
		case "specimen":
			r.specimen[from] = t.get("to")
		default:
			return nil, fmt.Errorf("line %d: unknown kind", t.line)
		}
	}
}

// rawTokens splits s into lower-case alphanumeric tokens, '%' and '#' being
// tokens of their own; depth is the bracket depth of each token.
func rawTokens(s string) (toks []string, depth []int) {
	s = strings.ToLower(s)
	d, start := 0, -1
	flush := func(i int) {
		if start >= 0 {
			toks = append(toks, s[start:i])
			depth = append(depth, d)
			start = -1
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80:
			if start < 0 {
				start = i
			}
		default:
			flush(i)
			switch c {
			case '(', '[':
				d++
			case ')', ']':
				if d > 0 {
					d--
				}
			case '%', '#':
				toks = append(toks, string(c))
				depth = append(depth, d)
			}
		}
	}
	flush(len(s))
	return toks, depth
}

// tokens turns a name into the matcher's token list.
func (r *textRules) tokens(s string) []string {
	raw, depth := rawTokens(s)
	// Drop bracketed groups made only of unit tokens, and a trailing run of
	// unit tokens, as long as something remains.
	keep := make([]bool, len(raw))
	for i := range raw {
		keep[i] = true
	}
	for i := 0; i < len(raw); {
		if depth[i] == 0 {
			i++
			continue
		}
		j, allUnits := i, true
		for j < len(raw) && depth[j] > 0 {
			allUnits = allUnits && r.unit[raw[j]]
			j++
		}
		if allUnits {
			for k := i; k < j; k++ {
				keep[k] = false
			}
		}
		i = j
	}
	last := len(raw) - 1
	for last > 0 && r.unit[raw[last]] && !(last > 0 && raw[last-1] == "%") {
		last--
	}
	for i := last + 1; i < len(raw); i++ {
		keep[i] = false
	}
	var out []string
	for i, t := range raw {
		if !keep[i] {
			continue
		}
		expanded := []string{t}
		if rw, ok := r.rewrite[t]; ok {
			expanded = rw
		}
		for _, e := range expanded {
			e = stem(e)
			if r.stop[e] || e == "" {
				continue
			}
			if !contains(out, e) {
				out = append(out, e)
			}
		}
	}
	if len(out) == 0 && len(raw) > 0 {
		// Everything was a stop word or unit ("K", "Total"): keep the words.
		for _, t := range raw {
			if !contains(out, t) {
				out = append(out, stem(t))
			}
		}
	}
	return out
}

// stem removes a plural 's' from words longer than three letters.
func stem(t string) string {
	if len(t) > 3 && t[len(t)-1] == 's' && t[len(t)-2] != 's' && t[len(t)-2] != 'u' {
		return t[:len(t)-1]
	}
	return t
}

// specimenPenalty multiplies the score of a term whose specimen (urine,
// arterial blood, ...) the text does not mention, so that a bare
// "Hemoglobin" prefers the blood test over the urine dipstick.
const specimenPenalty = 0.85

type matcherName struct {
	entry  int
	tokens []string
	weight float64
}

// TextMatcher maps free-text test names ("Hgb", "Sodium Lvl", "Temp (F)") to
// LOINC codes by weighted token overlap with the names of a vocabulary of
// LOINC entries (component, short name, long common name, related names).
// Tokens are weighted by rarity across the vocabulary, so "glucose" counts
// more than "urine". The confidence is the best name's similarity (weighted
// Dice coefficient, 1 for the same set of tokens), lowered when another code
// scores almost as well, so that ambiguous names fall below the threshold.
// A TextMatcher is read-only after construction and safe for concurrent use.
type TextMatcher struct {
	rules   *textRules
	entries []LOINCEntry
	spec    []string // per entry: its specimen word, or ""
	names   []matcherName
	index   map[string][]int // token -> names
	idf     map[string]float64
	maxIDF  float64
}

// NewTextMatcher builds a matcher over entries (for example BundledLOINC, or
// the output of LoadLOINC on a full LOINC release).
func NewTextMatcher(entries []LOINCEntry) *TextMatcher {
	m := &TextMatcher{rules: loadRules(), entries: entries, index: map[string][]int{}, idf: map[string]float64{}}
	df := map[string]int{}
	for i := range entries {
		seen := map[string]bool{}
		e := &entries[i]
		spec, ok := m.rules.specimen[e.System+" "+e.Class]
		if !ok {
			spec = m.rules.specimen[e.System]
		}
		m.spec = append(m.spec, spec)
		for _, n := range e.Names() {
			toks := m.rules.tokens(n)
			if len(toks) == 0 {
				continue
			}

			m.names = append(m.names, matcherName{entry: i, tokens: toks})
			for _, t := range toks {
				if !seen[t] {
					seen[t] = true
					df[t]++
				}
			}
		}
	}
	n := float64(len(entries))
	for t, d := range df {
		w := math.Log(1 + n/float64(d))
		m.idf[t] = w
		m.maxIDF = max(m.maxIDF, w)
	}
	for i := range m.names {
		nm := &m.names[i]
		for _, t := range nm.tokens {
			nm.weight += m.idf[t]
			m.index[t] = append(m.index[t], i)
		}
	}
	return m
}

func (m *TextMatcher) weight(t string) float64 {
	if w, ok := m.idf[t]; ok {
		return w
	}
	return m.maxIDF // a word the vocabulary never uses is strong evidence against every name
}

// Match returns the best LOINC code for text with its confidence; ok is false
// when no name shares a token with text. The caller decides whether the
// confidence is enough (see DefaultThreshold).
func (m *TextMatcher) Match(text string) (TextMatch, bool) {
	q := m.rules.tokens(text)
	if len(q) == 0 {
		return TextMatch{}, false
	}
	var qw float64
	for _, t := range q {
		qw += m.weight(t)
	}
	overlap := map[int]float64{}
	for _, t := range q {
		w := m.weight(t)
		for _, ni := range m.index[t] {
			overlap[ni] += w
		}
	}
	if len(overlap) == 0 {
		return TextMatch{}, false
	}
	bestByEntry := map[int]float64{}
	for ni, ov := range overlap {
		s := 2 * ov / (qw + m.names[ni].weight)
		if sp := m.spec[m.names[ni].entry]; sp != "" && !contains(q, sp) {
			s *= specimenPenalty
		}
		if s > bestByEntry[m.names[ni].entry] {
			bestByEntry[m.names[ni].entry] = s
		}
	}
	best, bestScore, second := -1, 0.0, 0.0
	for e, s := range bestByEntry {
		switch {
		case s > bestScore || (s == bestScore && best >= 0 && m.entries[e].Code < m.entries[best].Code):
			if best >= 0 {
				second = max(second, bestScore)
			}
			best, bestScore = e, s
		case s > second:
			second = s
		}
	}
	conf := bestScore
	am := ambiguityMargin
	if bestScore == 1 {
		am /= 3 // the text is exactly one of the code's names
	}
	if margin := bestScore - second; margin < am {
		conf = bestScore * (0.5 + margin/(2*am))
	}
	e := &m.entries[best]
	return TextMatch{System: SystemLOINC, Code: e.Code, Display: e.LongName, Confidence: math.Round(conf*1000) / 1000}, true
}
