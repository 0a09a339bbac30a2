package summary

import "bytes"

// Budget records how Fit trimmed a summary.
type Budget struct {
	MaxTokens int `json:"maxTokens"`
	Tokens    int `json:"-"`       // the estimate of the rendered result
	Omitted   int `json:"omitted"` // statements left out
	// Fits is false when even the summary without any droppable
	// statement (headings, demographics, per-source states) is over the
	// budget; it is then returned as such.
	Fits bool `json:"fits"`
}

// Tokens estimates the tokens of a rendering: bytes/4, rounded up.
func Tokens(b []byte) int { return (len(b) + 3) / 4 }

// Fit returns a copy of s trimmed so that render(copy) is at most
// maxTokens tokens (Tokens), with the rendering. Statements are left out
// one at a time, least important first: encounters (oldest first), labs
// (least recently measured first), inactive problems, vital signs,
// inactive allergies, stale medications, active problems, active
// medications, then active allergies; each section counts what it lost
// (Omitted) and the copy's Budget says how many in all. The same summary
// and budget always give the same result. maxTokens <= 0 means no budget.
func Fit(s *Summary, maxTokens int, render func(*Summary) []byte) (*Summary, []byte) {
	c := *s
	c.Budget = nil
	out := render(&c)
	if maxTokens <= 0 {
		return &c, out
	}
	c.Budget = &Budget{MaxTokens: maxTokens, Fits: true} // rendered as if it fits until it cannot
	for {
		out = render(&c)
		c.Budget.Tokens = Tokens(out)
		if c.Budget.Tokens <= maxTokens {
			return &c, out
		}
		// Each drop removes one line no longer than the longest line now
		// rendered (and may add a note), so at least excess/(longest+1)
		// drops are needed: taking them together gives the same result as
		// one at a time, with fewer renderings.
		n := max(1, (len(out)-4*maxTokens)/(longestLine(out)+1))
		for range n {
			if !dropOne(&c) {
				c.Budget.Fits = false
				out = render(&c)
				c.Budget.Tokens = Tokens(out)
				return &c, out
			}
			c.Budget.Omitted++
		}
	}
}

func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		longest = max(longest, i)
		b = b[min(i+1, len(b)):]
	}
	return longest
}

// dropOne leaves out the least important statement; false when none is
// left. Each section's items are ordered most important first, so the
// last one goes.
func dropOne(s *Summary) bool {
	lastProblemInactive := len(s.Problems.Items) > 0 && !s.Problems.Items[len(s.Problems.Items)-1].Active
	lastAllergyInactive := len(s.Allergies.Items) > 0 && !s.Allergies.Items[len(s.Allergies.Items)-1].Active
	lastMedStale := len(s.Medications.Items) > 0 && s.Medications.Items[len(s.Medications.Items)-1].Stale
	switch {
	case len(s.Encounters.Items) > 0:
		s.Encounters.Items = s.Encounters.Items[:len(s.Encounters.Items)-1]
		s.Encounters.Omitted++
	case len(s.Labs.Items) > 0:
		s.Labs.Items = s.Labs.Items[:len(s.Labs.Items)-1]
		s.Labs.Omitted++
	case lastProblemInactive:
		s.Problems.Items = s.Problems.Items[:len(s.Problems.Items)-1]
		s.Problems.Omitted++
	case len(s.Vitals.Items) > 0:
		s.Vitals.Items = s.Vitals.Items[:len(s.Vitals.Items)-1]
		s.Vitals.Omitted++
	case lastAllergyInactive:
		s.Allergies.Items = s.Allergies.Items[:len(s.Allergies.Items)-1]
		s.Allergies.Omitted++
	case lastMedStale:
		s.Medications.Items = s.Medications.Items[:len(s.Medications.Items)-1]
		s.Medications.Omitted++
	case len(s.Problems.Items) > 0:
		s.Problems.Items = s.Problems.Items[:len(s.Problems.Items)-1]
		s.Problems.Omitted++
	case len(s.Medications.Items) > 0:
		s.Medications.Items = s.Medications.Items[:len(s.Medications.Items)-1]
		s.Medications.Omitted++
	case len(s.Allergies.Items) > 0:
		s.Allergies.Items = s.Allergies.Items[:len(s.Allergies.Items)-1]
		s.Allergies.Omitted++
	default:
		return false
	}
	return true
}
