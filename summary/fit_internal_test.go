package summary

import (
	"bytes"
	"testing"
)

// fitOneByOne is Fit's reference: one statement left out per rendering.
func fitOneByOne(s *Summary, maxTokens int, render func(*Summary) []byte) []byte {
	c := *s
	c.Budget = &Budget{MaxTokens: maxTokens, Fits: true}
	for {
		out := render(&c)
		if Tokens(out) <= maxTokens {
			return out
		}
		if !dropOne(&c) {
			c.Budget.Fits = false
			return render(&c)
		}
		c.Budget.Omitted++
	}
}

func TestFitBatchesLikeOneByOne(t *testing.T) {
	s := &Summary{AsOf: "2026-01-01", Patient: Patient{Sources: []Source{{Connection: "c", Type: "Patient", ID: "p"}}}}
	for i := range 30 {
		src := []Source{{Connection: "c", Type: "Encounter", ID: string(rune('a' + i%26)), Date: "2025-01-01"}}
		s.Encounters.Items = append(s.Encounters.Items, Encounter{Start: "2025-01-01", Class: "AMB", Type: "Office visit number " + string(rune('a'+i%26)), Sources: src})
		s.Problems.Items = append(s.Problems.Items, Problem{Text: "Problem " + string(rune('a'+i%26)), Active: i%3 != 0, Sources: src})
		s.Labs.Items = append(s.Labs.Items, Result{Name: "Lab", Last: Point{Value: "1", Sources: src}})
	}
	full := Markdown(s)
	for _, render := range []func(*Summary) []byte{Markdown, JSON} {
		for budget := 1; budget <= Tokens(full)+10; budget += 29 {
			_, got := Fit(s, budget, render)
			if want := fitOneByOne(s, budget, render); !bytes.Equal(got, want) {
				t.Fatalf("Fit(%d) differs from leaving out one statement at a time:\n%s\nwant:\n%s", budget, got, want)
			}
		}
	}
}
