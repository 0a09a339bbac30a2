package cdshooks

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"ehrgate/normalize"
)

// Allergy is one AllergyIntolerance as the check reads it.
type Allergy struct {
	ID                 string // the resource id
	Substance          normalize.Concept
	ClinicalStatus     string
	VerificationStatus string
	Criticality        string   // low, high, unable-to-assess
	Severity           string   // the worst reaction.severity: mild, moderate, severe
	Category           []string // food, medication, environment, biologic
	Reactions          []string
	Recorded           string
	Active             bool
}

// Label is the allergy's substance as a person reads it.
func (a Allergy) Label() string {
	if l := a.Substance.Label(); l != "" {
		return l
	}
	return "an allergy without a substance"
}

// relevant reports whether the allergy takes part in checks: active
// (clinicalStatus active, or none given), and neither refuted nor entered
// in error. Resolved and inactive allergies are ignored.
func (a Allergy) relevant() bool {
	if a.VerificationStatus == "refuted" || a.VerificationStatus == "entered-in-error" {
		return false
	}
	return a.Active
}

// drugRelated reports whether the allergy may concern a medication: its
// category says medication, or it has no category.
func (a Allergy) drugRelated() bool {
	if len(a.Category) == 0 {
		return true
	}
	return contains(a.Category, "medication")
}

// ParseAllergy reads an AllergyIntolerance (FHIR R4 JSON) through the
// normalizer, adding the worst reaction severity.
func ParseAllergy(n *normalize.Normalizer, raw []byte) (Allergy, error) {
	if n == nil {
		n = normalize.Default()
	}
	res, err := n.Normalize(normalize.Ref{Type: "AllergyIntolerance"}, withID(raw))
	if err != nil {
		return Allergy{}, err
	}
	ai, ok := res.(*normalize.AllergyIntolerance)
	if !ok {
		return Allergy{}, fmt.Errorf("%w: not an AllergyIntolerance", ErrBadRequest)
	}
	var extra struct {
		ID       string `json:"id"`
		Reaction []struct {
			Severity string `json:"severity"`
		} `json:"reaction"`
	}
	_ = decodeJSON(raw, &extra) // the normalizer decoded it already
	a := Allergy{ID: extra.ID, Substance: ai.Substance, ClinicalStatus: ai.ClinicalStatus,
		VerificationStatus: ai.VerificationStatus, Criticality: ai.Criticality, Category: ai.Category,
		Reactions: ai.Reactions, Recorded: ai.Recorded, Active: ai.Active}
	rank := map[string]int{"mild": 1, "moderate": 2, "severe": 3}
	for _, r := range extra.Reaction {
		if rank[r.Severity] > rank[a.Severity] {
			a.Severity = r.Severity
		}
	}
	return a, nil
}

// withID returns raw with a placeholder id when it has none: draft orders
// and prefetched resources may come without one, and the normalizer
// requires it. The placeholder never reaches a card (a draft without an
// id gets no suggestions: there is nothing to refer to).
func withID(raw []byte) []byte {
	var m map[string]json.RawMessage
	if decodeJSON(raw, &m) != nil {
		return raw
	}
	if _, ok := m["id"]; ok {
		return raw
	}
	m["id"] = json.RawMessage(`"unidentified"`)
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return b
}

// Draft is a draft medication order from context.draftOrders.
type Draft struct {
	ID         string // MedicationRequest.id
	Subject    string // the subject reference as sent
	Medication normalize.Concept
	Raw        json.RawMessage
	// Status, AuthoredOn and Active describe an existing order (the
	// duplicate-therapy check reads active orders as Drafts too).
	Status     string
	AuthoredOn string
	Active     bool
}

// Label is the ordered medication as a person reads it.
func (d Draft) Label() string {
	if l := d.Medication.Label(); l != "" {
		return l
	}
	return "a medication without a name"
}

// ParseDraft reads a draft MedicationRequest through the normalizer, which
// prefers RxNorm codings and maps NDCs to RxNorm where its tables can.
func ParseDraft(n *normalize.Normalizer, raw []byte) (Draft, error) {
	if n == nil {
		n = normalize.Default()
	}
	res, err := n.Normalize(normalize.Ref{Type: "MedicationRequest"}, withID(raw))
	if err != nil {
		return Draft{}, err
	}
	mr, ok := res.(*normalize.MedicationRequest)
	if !ok {
		return Draft{}, fmt.Errorf("%w: not a MedicationRequest", ErrBadRequest)
	}
	var extra struct {
		ID      string `json:"id"`
		Subject *struct {
			Reference string `json:"reference"`
		} `json:"subject"`
	}
	_ = decodeJSON(raw, &extra)
	d := Draft{ID: extra.ID, Medication: mr.Medication, Raw: append(json.RawMessage(nil), raw...),
		Status: mr.Status, AuthoredOn: mr.AuthoredOn, Active: mr.Active}
	if extra.Subject != nil {
		d.Subject = extra.Subject.Reference
	}
	return d, nil
}

// Match kinds, strongest first.
const (
	MatchIngredient = "ingredient"        // the drug contains the allergen ingredient
	MatchClass      = "class"             // the drug is in the class the patient is allergic to
	MatchCross      = "cross-sensitivity" // the drug's class may cross-react with the allergy's
)

// Finding is one result of the check.
type Finding struct {
	// Kind is a Match* constant, or "drug-unchecked" (the draft could not
	// be resolved to ingredients) or "allergy-unchecked" (allergies that
	// could not be resolved to ingredients or classes).
	Kind    string
	Draft   *Draft
	Allergy *Allergy
	// Allergies lists the unresolved allergies (allergy-unchecked) or the
	// relevant drug allergies a clinician must review by hand
	// (drug-unchecked).
	Allergies   []Allergy
	Ingredients []string // the draft's ingredients that matched
	Class       string   // the class that matched (class and cross-sensitivity)
	CrossClass  string   // the allergy's class (cross-sensitivity)
	Note        string   // cross-sensitivity note from the table
	Source      string   // the table row's source
	ByText      bool     // the allergy was resolved from its text
	// AllergyClasses are the classes the allergy's substance is or belongs
	// to (matches only).
	AllergyClasses []string
	Why            string // drug-unchecked: why the draft could not be resolved
}

// Check matches every draft against the patient's allergies: ingredient
// against ingredient (a product's every ingredient), then class membership,
// then the table's cross-sensitivities. Allergies that are not relevant
// (refuted, entered in error, resolved, inactive) are skipped. A draft that
// cannot be resolved gives a drug-unchecked finding; drug allergies that
// cannot be resolved give one allergy-unchecked finding. The check never
// stays silent about what it could not compare.
func (k *Knowledge) Check(drafts []Draft, allergies []Allergy) []Finding {
	var relevant, unresolved []Allergy
	resolved := map[int]allergen{}
	for _, a := range allergies {
		if !a.relevant() {
			continue
		}
		al := k.resolveAllergen(a.Substance)
		if al.empty() {
			if a.drugRelated() {
				unresolved = append(unresolved, a)
			}
			continue
		}
		resolved[len(relevant)] = al
		relevant = append(relevant, a)
	}
	var out []Finding
	for i := range drafts {
		d := &drafts[i]
		ings, ok, why := k.drugIngredients(d.Medication)
		if !ok {
			var review []Allergy
			for _, a := range relevant {
				if a.drugRelated() {
					review = append(review, a)
				}
			}
			review = append(review, unresolved...)
			out = append(out, Finding{Kind: "drug-unchecked", Draft: d, Why: why, Allergies: review})
			continue
		}
		drugClasses := map[string]bool{}
		for _, ing := range ings {
			for _, c := range k.classesOf(ing) {
				drugClasses[c] = true
			}
		}
		for j := range relevant {
			if f, ok := k.match(d, &relevant[j], resolved[j], ings, drugClasses); ok {
				out = append(out, f)
			}
		}
	}
	if len(unresolved) > 0 {
		out = append(out, Finding{Kind: "allergy-unchecked", Allergies: unresolved})
	}
	return out
}

func (k *Knowledge) match(d *Draft, a *Allergy, al allergen, ings []string, drugClasses map[string]bool) (Finding, bool) {
	f := Finding{Draft: d, Allergy: a, ByText: al.ByText}
	// The allergy's classes: named directly, or those of its ingredients.
	for _, c := range al.Classes {
		f.AllergyClasses = append(f.AllergyClasses, c)
	}
	for _, ing := range al.Ingredients {
		for _, c := range k.classesOf(ing) {
			if !contains(f.AllergyClasses, c) {
				f.AllergyClasses = append(f.AllergyClasses, c)
			}
		}
	}
	sort.Strings(f.AllergyClasses)
	for _, ing := range ings {
		if contains(al.Ingredients, ing) {
			f.Ingredients = append(f.Ingredients, ing)
		}
	}
	if len(f.Ingredients) > 0 {
		f.Kind = MatchIngredient
		return f, true
	}
	for _, c := range f.AllergyClasses {
		if drugClasses[c] {
			f.Kind, f.Class, f.Source = MatchClass, c, k.classes[c].Source
			f.Ingredients = k.ingredientsIn(ings, c)
			return f, true
		}
	}
	for _, c := range f.AllergyClasses {
		for _, r := range k.cross[c] {
			if drugClasses[r.To] {
				f.Kind, f.Class, f.CrossClass, f.Note, f.Source = MatchCross, r.To, c, r.Note, r.Source
				f.Ingredients = k.ingredientsIn(ings, r.To)
				return f, true
			}
		}
	}
	return Finding{}, false
}

func (k *Knowledge) ingredientsIn(ings []string, class string) []string {
	var out []string
	for _, ing := range ings {
		if contains(k.members[ing], class) {
			out = append(out, ing)
		}
	}
	return out
}

// Indicator is the card urgency of a finding: a direct or class match is
// critical when the allergy's criticality is high or a reaction was severe,
// else a warning; a cross-sensitivity is a warning in that case, else info.
// A draft that could not be checked is a warning when the patient has drug
// allergies to review, else info; unresolved allergies are info.
func (f Finding) Indicator() string {
	serious := f.Allergy != nil && (f.Allergy.Criticality == "high" || f.Allergy.Severity == "severe")
	switch f.Kind {
	case MatchIngredient, MatchClass:
		if serious {
			return IndicatorCritical
		}
		return IndicatorWarning
	case MatchCross:
		if serious {
			return IndicatorWarning
		}
		return IndicatorInfo
	case "drug-unchecked":
		if len(f.Allergies) > 0 {
			return IndicatorWarning
		}
	}
	return IndicatorInfo
}

// truncate shortens s to fewer than max runes, ending with an ellipsis.
func truncate(s string, max int) string {
	r := []rune(s)
	if len(r) < max {
		return s
	}
	return strings.TrimSpace(string(r[:max-2])) + "…"
}
