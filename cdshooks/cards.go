package cdshooks

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"ehrgate/terminology"
)

// Provenance says where the allergy list came from, for the cards'
// "data used" line, and whether there was one.
type Provenance struct {
	// From is a user-safe sentence fragment: "the EHR's prefetch",
	// "ehrgate's copy from hospital-a, fetched 2025-01-02 03:04 UTC", ...
	From string
	// Unavailable, when set, says why there is no allergy list to check
	// against ("hospital-a does not provide allergies"): a card says so
	// instead of the check staying silent.
	Unavailable string
}

// cardSource is the source every card of this service names.
var cardSource = Source{
	Label: "ehrgate drug-allergy check",
	Topic: &Coding{System: systemTopic, Code: "drug-allergy", Display: "Drug-allergy interaction"},
}

// overrideReasons are offered on every allergy card.
var overrideReasons = []Coding{
	{System: systemOverrideReason, Code: "tolerated-before", Display: "Patient has tolerated this medication before"},
	{System: systemOverrideReason, Code: "allergy-list-wrong", Display: "Allergy information is inaccurate or out of date"},
	{System: systemOverrideReason, Code: "benefit-outweighs-risk", Display: "Benefit outweighs risk; will monitor"},
	{System: systemOverrideReason, Code: "desensitized", Display: "Patient has been desensitized"},
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// absoluteHTTPURL reports whether s is an absolute http(s) URL.
func absoluteHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// cardOptions are what cards need besides the findings.
type cardOptions struct {
	PatientID string
	Prov      Provenance
	Allergies []Allergy // every allergy, to vet alternatives against
	Link      *Link     // an app link added to allergy cards, if any
	Source    Source
}

// Cards turns findings into cards: one per allergy match, one per draft
// that could not be checked, one for allergies that could not be resolved,
// and one saying there was no allergy list when o.Prov.Unavailable says so.
func (k *Knowledge) cards(findings []Finding, drafts []Draft, o cardOptions) []Card {
	src := o.Source
	if src.Label == "" {
		src = cardSource
	}
	cards := []Card{}
	if o.Prov.Unavailable != "" {
		var names []string
		for _, d := range drafts {
			names = append(names, d.Label())
		}
		summary := "No allergy list available: drug-allergy check not done"
		detail := fmt.Sprintf("ehrgate could not check for drug allergies: %s.\n\n"+
			"This does **not** mean the patient has no allergies. Review the allergy list in the EHR before ordering.", o.Prov.Unavailable)
		if len(names) > 0 {
			detail += "\n\n**Draft orders not checked:** " + strings.Join(names, "; ")
		}
		cards = append(cards, Card{UUID: newUUID(), Summary: truncate(summary, maxSummaryRunes), Detail: detail,
			Indicator: IndicatorWarning, Source: src, kind: "no-allergy-list"})
		return cards
	}
	for _, f := range findings {
		var c Card
		switch f.Kind {
		case MatchIngredient, MatchClass, MatchCross:
			c = k.matchCard(f, o)
		case "drug-unchecked":
			c = uncheckedDrugCard(f, o)
		case "allergy-unchecked":
			c = uncheckedAllergyCard(f, o)
		default:
			continue
		}
		c.UUID, c.Source, c.kind = newUUID(), src, f.Kind
		cards = append(cards, c)
	}
	return cards
}

func (k *Knowledge) matchCard(f Finding, o cardOptions) Card {
	a, d := f.Allergy, f.Draft
	var summary, why string
	switch f.Kind {
	case MatchIngredient:
		summary = fmt.Sprintf("Allergy to %s: %s contains %s", a.Label(), d.Label(), strings.Join(f.Ingredients, ", "))
		why = fmt.Sprintf("The order contains **%s**, the substance of a documented allergy.", strings.Join(f.Ingredients, ", "))
	case MatchClass:
		summary = fmt.Sprintf("Allergy to %s: %s is in the same class (%s)", a.Label(), d.Label(), k.ClassLabel(f.Class))
		why = fmt.Sprintf("The order contains **%s**, one of the %s; the documented allergy is to %s.",
			strings.Join(f.Ingredients, ", "), strings.ToLower(k.ClassLabel(f.Class)), a.Label())
	case MatchCross:
		summary = fmt.Sprintf("Possible cross-sensitivity: %s allergy and %s (%s)", a.Label(), d.Label(), k.ClassLabel(f.Class))
		why = fmt.Sprintf("The order contains **%s** (%s); the patient is allergic to %s (%s). %s.",
			strings.Join(f.Ingredients, ", "), strings.ToLower(k.ClassLabel(f.Class)), a.Label(),
			strings.ToLower(k.ClassLabel(f.CrossClass)), f.Note)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Draft order:** %s%s\n\n", d.Label(), codeNote(d.Medication.System, d.Medication.Code))
	fmt.Fprintf(&b, "**Documented allergy:** %s%s", a.Label(), codeNote(a.Substance.System, a.Substance.Code))
	var facts []string
	if a.VerificationStatus != "" {
		facts = append(facts, a.VerificationStatus)
	}
	if a.Criticality != "" {
		facts = append(facts, "criticality "+a.Criticality)
	}
	if len(a.Reactions) > 0 {
		r := "reaction: " + strings.Join(a.Reactions, ", ")
		if a.Severity != "" {
			r += " (" + a.Severity + ")"
		}
		facts = append(facts, r)
	}
	if a.Recorded != "" {
		facts = append(facts, "recorded "+a.Recorded)
	}
	if len(facts) > 0 {
		fmt.Fprintf(&b, " — %s", strings.Join(facts, "; "))
	}
	fmt.Fprintf(&b, "\n\n**Why:** %s", why)
	if f.ByText {
		b.WriteString(" (The allergy has no code ehrgate knows; it was matched by its text.)")
	}
	fmt.Fprintf(&b, "\n\n**Data used:** allergy list from %s.", o.Prov.From)
	if f.Source != "" {
		fmt.Fprintf(&b, " Knowledge: <%s>.", f.Source)
	}

	c := Card{Summary: truncate(summary, maxSummaryRunes), Detail: b.String(), Indicator: f.Indicator(),
		OverrideReasons: overrideReasons}
	if d.ID != "" {
		ref := "MedicationRequest/" + d.ID
		c.Suggestions = append(c.Suggestions, Suggestion{Label: "Remove " + d.Label() + " from the order", UUID: newUUID(),
			Actions: []Action{{Type: "delete", Description: "Remove the draft order for " + d.Label(), ResourceID: ref}}})
		if alt, ok := k.alternative(f, o.Allergies); ok {
			res := alternativeOrder(d, alt)
			c.Suggestions = append(c.Suggestions, Suggestion{Label: "Replace with " + alt.Label + " (choose strength and dose)",
				UUID: newUUID(), Actions: []Action{
					{Type: "delete", Description: "Remove the draft order for " + d.Label(), ResourceID: ref},
					{Type: "create", Description: fmt.Sprintf("Order %s instead (alternative for %s allergy: %s)", alt.Label,
						strings.ToLower(k.ClassLabel(firstOr(f.AllergyClasses, ""))), alt.Source), Resource: res},
				}})
		}
		c.SelectionBehavior = "at-most-one"
	}
	if o.Link != nil {
		c.Links = []Link{*o.Link}
	}
	return c
}

func firstOr(ss []string, def string) string {
	if len(ss) > 0 {
		return ss[0]
	}
	return def
}

func codeNote(system, code string) string {
	if code == "" {
		return ""
	}
	name := system
	switch terminology.Canonical(system) {
	case terminology.SystemRxNorm:
		name = "RxNorm"
	case terminology.SystemSNOMED:
		name = "SNOMED CT"
	case terminology.SystemNDC:
		name = "NDC"
	}
	return fmt.Sprintf(" (%s %s)", name, code)
}

// alternative returns the first alternative the table gives for the
// allergy's classes that none of the patient's allergies matches.
func (k *Knowledge) alternative(f Finding, allergies []Allergy) (Alternative, bool) {
	for _, c := range f.AllergyClasses {
		for _, alt := range k.alts[c] {
			d := Draft{Medication: alternativeConcept(alt)}
			clean := true
			for _, g := range k.Check([]Draft{d}, allergies) {
				if g.Kind == MatchIngredient || g.Kind == MatchClass || g.Kind == MatchCross {
					clean = false
				}
			}
			if clean {
				return alt, true
			}
		}
	}
	return Alternative{}, false
}

// alternativeOrder is a draft MedicationRequest for alt in place of d: the
// same subject and encounter, the alternative's RxNorm ingredient, no
// dose (the prescriber completes it).
func alternativeOrder(d *Draft, alt Alternative) json.RawMessage {
	var orig struct {
		Subject   json.RawMessage `json:"subject"`
		Encounter json.RawMessage `json:"encounter,omitempty"`
		Requester json.RawMessage `json:"requester,omitempty"`
	}
	_ = json.Unmarshal(d.Raw, &orig)
	res := map[string]any{
		"resourceType": "MedicationRequest",
		"status":       "draft",
		"intent":       "order",
		"medicationCodeableConcept": map[string]any{
			"coding": []map[string]string{{"system": terminology.SystemRxNorm, "code": alt.RxCUI, "display": alt.Label}},
			"text":   alt.Label,
		},
	}
	if len(orig.Subject) > 0 {
		res["subject"] = orig.Subject
	}
	if len(orig.Encounter) > 0 {
		res["encounter"] = orig.Encounter
	}
	if len(orig.Requester) > 0 {
		res["requester"] = orig.Requester
	}
	b, _ := json.Marshal(res)
	return b
}

func uncheckedDrugCard(f Finding, o cardOptions) Card {
	d := f.Draft
	var b strings.Builder
	fmt.Fprintf(&b, "ehrgate could not check **%s** for drug allergies: %s.", d.Label(), f.Why)
	if len(f.Allergies) > 0 {
		b.WriteString("\n\n**Drug allergies to review by hand:**\n")
		for _, a := range f.Allergies {
			fmt.Fprintf(&b, "\n- %s%s", a.Label(), codeNote(a.Substance.System, a.Substance.Code))
		}
	} else {
		b.WriteString("\n\nThe patient has no active drug allergy on the list ehrgate received.")
	}
	fmt.Fprintf(&b, "\n\n**Data used:** allergy list from %s.", o.Prov.From)
	return Card{Summary: truncate("Allergy check not done for "+d.Label()+": medication not coded", maxSummaryRunes),
		Detail: b.String(), Indicator: f.Indicator()}
}

func uncheckedAllergyCard(f Finding, o cardOptions) Card {
	var b strings.Builder
	b.WriteString("These allergies have no code or text ehrgate can compare with medications, so orders were **not** checked against them:\n")
	for _, a := range f.Allergies {
		fmt.Fprintf(&b, "\n- %s%s", a.Label(), codeNote(a.Substance.System, a.Substance.Code))
	}
	fmt.Fprintf(&b, "\n\n**Data used:** allergy list from %s. Coding these allergies (RxNorm or SNOMED CT) lets future checks use them.", o.Prov.From)
	n := len(f.Allergies)
	summary := fmt.Sprintf("%d allerg%s could not be checked against orders (not coded)", n, plural(n, "y", "ies"))
	return Card{Summary: truncate(summary, maxSummaryRunes), Detail: b.String(), Indicator: f.Indicator()}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
