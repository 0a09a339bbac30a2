package cdshooks

import (
	"fmt"
	"strings"
)

// Duplicate-therapy finding kinds.
const (
	KindDuplicate          = "duplicate"           // a draft's ingredient is in an active order
	KindDuplicateUnchecked = "duplicate-unchecked" // the draft could not be resolved to ingredients
	KindActiveUnchecked    = "active-unchecked"    // active orders that could not be resolved
)

// DuplicateFinding is one result of the duplicate-therapy check.
type DuplicateFinding struct {
	Kind        string
	Draft       *Draft
	Existing    *Draft   // the active order (duplicate)
	Ingredients []string // shared ingredients (duplicate)
	Unresolved  []Draft  // active orders that could not be compared (active-unchecked)
	Why         string   // duplicate-unchecked: why
}

// Duplicates compares every draft with the patient's active medication
// orders, ingredient by ingredient (a product's every ingredient): the
// same ingredient already active is a duplicate. Orders that are not
// active (or on hold), and the draft itself if the list holds it, are
// skipped. A draft that cannot be resolved, and active orders that cannot
// be, are reported, never passed over in silence.
func (k *Knowledge) Duplicates(drafts, active []Draft) []DuplicateFinding {
	type resolved struct {
		d    *Draft
		ings []string
	}
	var known []resolved
	var unresolved []Draft
	for i := range active {
		a := &active[i]
		if !a.Active {
			continue
		}
		ings, ok, _ := k.drugIngredients(a.Medication)
		if !ok {
			unresolved = append(unresolved, *a)
			continue
		}
		known = append(known, resolved{a, ings})
	}
	var out []DuplicateFinding
	for i := range drafts {
		d := &drafts[i]
		ings, ok, why := k.drugIngredients(d.Medication)
		if !ok {
			out = append(out, DuplicateFinding{Kind: KindDuplicateUnchecked, Draft: d, Why: why})
			continue
		}
		for _, a := range known {
			if d.ID != "" && a.d.ID == d.ID {
				continue // the draft itself
			}
			var shared []string
			for _, ing := range ings {
				if contains(a.ings, ing) {
					shared = append(shared, ing)
				}
			}
			if len(shared) > 0 {
				out = append(out, DuplicateFinding{Kind: KindDuplicate, Draft: d, Existing: a.d, Ingredients: shared})
			}
		}
	}
	if len(unresolved) > 0 && len(drafts) > 0 {
		out = append(out, DuplicateFinding{Kind: KindActiveUnchecked, Unresolved: unresolved})
	}
	return out
}

var duplicateSource = Source{
	Label: "ehrgate duplicate-therapy check",
	Topic: &Coding{System: systemTopic, Code: "duplicate-therapy", Display: "Duplicate therapy"},
}

var duplicateOverrideReasons = []Coding{
	{System: systemOverrideReason, Code: "dose-change", Display: "Intentional: dose or formulation change"},
	{System: systemOverrideReason, Code: "existing-stopped", Display: "The existing order will be discontinued"},
	{System: systemOverrideReason, Code: "both-intended", Display: "Both orders are intended"},
}

// duplicateCards turns duplicate-therapy findings into cards; prov says
// where the medication list came from (or why there was none).
func duplicateCards(findings []DuplicateFinding, drafts []Draft, prov Provenance, src Source) []Card {
	if src.Label == "" {
		src = duplicateSource
	}
	cards := []Card{}
	if prov.Unavailable != "" {
		var names []string
		for _, d := range drafts {
			names = append(names, d.Label())
		}
		detail := fmt.Sprintf("ehrgate could not check for duplicate therapy: %s.\n\nThis does **not** mean the patient takes no other medication.", prov.Unavailable)
		if len(names) > 0 {
			detail += "\n\n**Draft orders not checked:** " + strings.Join(names, "; ")
		}
		return append(cards, Card{UUID: newUUID(), Summary: "No medication list available: duplicate-therapy check not done",
			Detail: detail, Indicator: IndicatorInfo, Source: src, kind: "no-medication-list"})
	}
	for _, f := range findings {
		c := Card{UUID: newUUID(), Source: src, kind: f.Kind}
		switch f.Kind {
		case KindDuplicate:
			d, a := f.Draft, f.Existing
			c.Indicator = IndicatorWarning
			c.Summary = truncate(fmt.Sprintf("Duplicate therapy: %s is already ordered (%s)", strings.Join(f.Ingredients, ", "), a.Label()), maxSummaryRunes)
			var b strings.Builder
			fmt.Fprintf(&b, "**Draft order:** %s%s\n\n", d.Label(), codeNote(d.Medication.System, d.Medication.Code))
			fmt.Fprintf(&b, "**Active order:** %s%s", a.Label(), codeNote(a.Medication.System, a.Medication.Code))
			var facts []string
			if a.Status != "" {
				facts = append(facts, a.Status)
			}
			if a.AuthoredOn != "" {
				facts = append(facts, "ordered "+a.AuthoredOn)
			}
			if len(facts) > 0 {
				fmt.Fprintf(&b, " — %s", strings.Join(facts, "; "))
			}
			fmt.Fprintf(&b, "\n\n**Why:** both contain **%s**.", strings.Join(f.Ingredients, ", "))
			fmt.Fprintf(&b, "\n\n**Data used:** medication list from %s.", prov.From)
			c.Detail = b.String()
			c.OverrideReasons = duplicateOverrideReasons
			if d.ID != "" {
				c.Suggestions = []Suggestion{{Label: "Remove " + d.Label() + " from the order", UUID: newUUID(),
					Actions: []Action{{Type: "delete", Description: "Remove the draft order for " + d.Label(), ResourceID: "MedicationRequest/" + d.ID}}}}
				c.SelectionBehavior = "at-most-one"
			}
		case KindDuplicateUnchecked:
			c.Indicator = IndicatorInfo
			c.Summary = truncate("Duplicate-therapy check not done for "+f.Draft.Label()+": medication not coded", maxSummaryRunes)
			c.Detail = fmt.Sprintf("ehrgate could not compare **%s** with the active orders: %s.\n\n**Data used:** medication list from %s.",
				f.Draft.Label(), f.Why, prov.From)
		case KindActiveUnchecked:
			n := len(f.Unresolved)
			c.Indicator = IndicatorInfo
			c.Summary = fmt.Sprintf("%d active medication order%s could not be compared (not coded)", n, plural(n, "", "s"))
			var b strings.Builder
			b.WriteString("These active orders have no code ehrgate can resolve to ingredients, so drafts were **not** compared with them:\n")
			for _, a := range f.Unresolved {
				fmt.Fprintf(&b, "\n- %s%s", a.Label(), codeNote(a.Medication.System, a.Medication.Code))
			}
			fmt.Fprintf(&b, "\n\n**Data used:** medication list from %s.", prov.From)
			c.Detail = b.String()
		default:
			continue
		}
		cards = append(cards, c)
	}
	return cards
}
