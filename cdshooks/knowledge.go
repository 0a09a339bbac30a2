package cdshooks

import (
	"embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"ehrgate/normalize"
	"ehrgate/terminology"
)

//go:embed data/drug_allergy.csv
var knowledgeFiles embed.FS

// Knowledge is the drug-allergy table the check reads: drug classes, the
// ingredients in each, allergen codes and texts that name an ingredient or
// a class, and the classes that may cross-react. Every row cites its public
// source (data/drug_allergy.csv). A Knowledge is read-only once loaded and
// safe for concurrent use.
type Knowledge struct {
	classes map[string]classInfo
	members map[string][]string // ingredient name -> class ids
	byRxCUI map[string]string   // ingredient RxCUI -> ingredient name
	snomed  map[string]allergenTarget
	text    map[string]allergenTarget
	cross   map[string][]crossRule // allergy class -> classes that may cross-react
	alts    map[string][]Alternative
	drugs   *terminology.DrugTable
}

// Alternative is an ingredient a guideline names for patients allergic to
// a class.
type Alternative struct {
	Ingredient, RxCUI, Label, Source string
}

type classInfo struct {
	Label, Source string
}

type allergenTarget struct {
	Class, Ingredient string
	Source            string
}

type crossRule struct {
	To, Note, Source string
}

// LoadKnowledge reads a drug-allergy table in the bundled file's format
// (kind,key,target,rxcui,label,source; '#' comments). drugs resolves RxNorm
// products to ingredients (nil: terminology.BundledDrugs).
func LoadKnowledge(r io.Reader, drugs *terminology.DrugTable) (*Knowledge, error) {
	if drugs == nil {
		drugs = terminology.BundledDrugs()
	}
	k := &Knowledge{classes: map[string]classInfo{}, members: map[string][]string{}, byRxCUI: map[string]string{},
		snomed: map[string]allergenTarget{}, text: map[string]allergenTarget{}, cross: map[string][]crossRule{},
		alts: map[string][]Alternative{}, drugs: drugs}
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = 6
	header := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading drug-allergy table: %w", err)
		}
		if header {
			header = false
			if rec[0] != "kind" {
				return nil, errors.New("reading drug-allergy table: the first row must be the header kind,key,target,rxcui,label,source")
			}
			continue
		}
		kind, key, target, rxcui, label, source := rec[0], rec[1], rec[2], rec[3], rec[4], rec[5]
		line, _ := cr.FieldPos(0)
		if source == "" {
			return nil, fmt.Errorf("drug-allergy table line %d: no source", line)
		}
		switch kind {
		case "class":
			k.classes[key] = classInfo{Label: label, Source: source}
		case "member":
			name := IngredientName(key)
			k.members[name] = append(k.members[name], target)
			if rxcui != "" {
				k.byRxCUI[rxcui] = name
			}
		case "snomed", "text":
			t, err := parseTarget(target, source)
			if err != nil {
				return nil, fmt.Errorf("drug-allergy table line %d: %w", line, err)
			}
			if kind == "snomed" {
				k.snomed[key] = t
			} else {
				k.text[normText(key)] = t
			}
		case "cross":
			k.cross[key] = append(k.cross[key], crossRule{To: target, Note: label, Source: source})
		case "alternative":
			if rxcui == "" {
				return nil, fmt.Errorf("drug-allergy table line %d: an alternative needs its RxCUI", line)
			}
			k.alts[key] = append(k.alts[key], Alternative{Ingredient: IngredientName(target), RxCUI: rxcui, Label: label, Source: source})
		default:
			return nil, fmt.Errorf("drug-allergy table line %d: unknown kind %q", line, kind)
		}
	}
	// Every class named anywhere must be defined.
	check := func(c string) error {
		if _, ok := k.classes[c]; !ok {
			return fmt.Errorf("drug-allergy table: class %q is used but not defined", c)
		}
		return nil
	}
	for _, cs := range k.members {
		for _, c := range cs {
			if err := check(c); err != nil {
				return nil, err
			}
		}
	}
	for from, rs := range k.cross {
		if err := check(from); err != nil {
			return nil, err
		}
		for _, r := range rs {
			if err := check(r.To); err != nil {
				return nil, err
			}
		}
	}
	for c := range k.alts {
		if err := check(c); err != nil {
			return nil, err
		}
	}
	for _, m := range []map[string]allergenTarget{k.snomed, k.text} {
		for _, t := range m {
			if t.Class != "" {
				if err := check(t.Class); err != nil {
					return nil, err
				}
			}
		}
	}
	return k, nil
}

func parseTarget(s, source string) (allergenTarget, error) {
	kind, v, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == "class" && v != "":
		return allergenTarget{Class: v, Source: source}, nil
	case ok && kind == "ingredient" && v != "":
		return allergenTarget{Ingredient: IngredientName(v), Source: source}, nil
	}
	return allergenTarget{}, fmt.Errorf("target %q is not class:<id> or ingredient:<name>", s)
}

var bundled = sync.OnceValues(func() (*Knowledge, error) {
	f, err := knowledgeFiles.Open("data/drug_allergy.csv")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return LoadKnowledge(f, nil)
})

// BundledKnowledge returns the bundled drug-allergy table. It panics if the
// embedded table is broken (a test keeps it loadable).
func BundledKnowledge() *Knowledge {
	k, err := bundled()
	if err != nil {
		panic(err)
	}
	return k
}

// saltWords are the words RxNorm ingredient and precise-ingredient names
// add for a salt, ester or hydrate; an allergy to the active moiety covers
// them all.
var saltWords = map[string]bool{
	"potassium": true, "sodium": true, "calcium": true, "magnesium": true, "hydrochloride": true, "hcl": true,
	"trihydrate": true, "monohydrate": true, "dihydrate": true, "anhydrous": true, "sulfate": true,
	"tromethamine": true, "axetil": true, "benzathine": true, "procaine": true, "hyclate": true,
}

// IngredientName normalizes an ingredient name for matching: lower case,
// single spaces, salt words dropped ("penicillin G potassium" and
// "Penicillin G" are both "penicillin g").
func IngredientName(s string) string {
	var kept []string
	for _, w := range strings.Fields(strings.ToLower(s)) {
		if !saltWords[w] {
			kept = append(kept, w)
		}
	}
	return strings.Join(kept, " ")
}

func normText(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }

// IngredientsFromRxNormName returns the ingredient names an RxNorm name
// lists, following RxNorm's naming convention for clinical and branded
// drugs ("ingredient strength unit / ingredient strength unit dose form
// [Brand]"): "amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral
// Suspension" gives amoxicillin and clavulanate. A name without strengths
// (an ingredient, or a brand name) gives itself. Names it cannot read give
// nil.
func IngredientsFromRxNormName(name string) []string {
	ings, _ := parseRxNormName(name)
	return ings
}

// parseRxNormName is IngredientsFromRxNormName, also saying whether every
// part had a strength (the clinical or branded drug convention, whose
// leading words are ingredient names; a name without strengths may be a
// brand name).
func parseRxNormName(name string) (ings []string, withStrengths bool) {
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	name = strings.TrimSpace(name)
	if name == "" || strings.HasPrefix(name, "{") {
		return nil, false // packs ({...} Pack) are not read
	}
	withStrengths = true
	for _, part := range strings.Split(name, " / ") {
		var words []string
		strength := false
		for _, w := range strings.Fields(part) {
			if w[0] >= '0' && w[0] <= '9' || w[0] == '.' {
				strength = true
				break // the strength: the ingredient's name has ended
			}
			words = append(words, w)
		}
		withStrengths = withStrengths && strength
		if n := IngredientName(strings.Join(words, " ")); n != "" && !contains(ings, n) {
			ings = append(ings, n)
		}
	}
	return ings, withStrengths && len(ings) > 0
}

// knownIngredient reports whether name is an ingredient the table knows
// (a class member or a suggested alternative).
func (k *Knowledge) knownIngredient(name string) bool {
	if _, ok := k.members[name]; ok {
		return true
	}
	for _, alts := range k.alts {
		for _, a := range alts {
			if a.Ingredient == name {
				return true
			}
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// classesOf returns the classes an ingredient belongs to, sorted.
func (k *Knowledge) classesOf(ingredient string) []string {
	cs := append([]string(nil), k.members[ingredient]...)
	sort.Strings(cs)
	return cs
}

// ClassLabel returns a class's display name.
func (k *Knowledge) ClassLabel(id string) string {
	if c, ok := k.classes[id]; ok {
		return c.Label
	}
	return id
}

// drugIngredients resolves a draft order's medication to ingredient names.
// Only coded medications are resolved: an RxNorm code (directly, or mapped
// from an NDC by the terminology chain) through ehrgate's RxNorm table and
// the drug's RxNorm name. A name is trusted when it follows the clinical or
// branded drug convention (ingredients with strengths) or names an
// ingredient the table knows; anything else (a brand name, free text under
// an RxNorm code) leaves the drug unresolved rather than guessed. ok is
// false, with a user-safe reason, when the medication cannot be resolved.
func (k *Knowledge) drugIngredients(c normalize.Concept) (ings []string, ok bool, why string) {
	if c.System != terminology.SystemRxNorm || c.Code == "" {
		for _, o := range c.Original {
			if terminology.Canonical(o.System) == terminology.SystemNDC {
				return nil, false, fmt.Sprintf("its NDC %s is not in ehrgate's NDC-to-RxNorm table", o.Code)
			}
		}
		if len(c.Original) > 0 {
			return nil, false, "it is not coded in RxNorm or NDC"
		}
		return nil, false, "it is recorded as text only, without an RxNorm or NDC code"
	}
	add := func(n string) {
		if n = IngredientName(n); n != "" && !contains(ings, n) {
			ings = append(ings, n)
		}
	}
	addName := func(name string) {
		parsed, conventional := parseRxNormName(name)
		for _, n := range parsed {
			if conventional || k.knownIngredient(n) {
				add(n)
			}
		}
	}
	if n, ok := k.byRxCUI[c.Code]; ok {
		add(n)
	}
	if d, found := k.drugs.Drug(c.Code); found {
		addName(d.Name)
		if d.IngredientName != "" {
			add(d.IngredientName)
		}
	}
	names := []string{c.Display}
	for _, o := range c.Original {
		if terminology.Canonical(o.System) == terminology.SystemRxNorm && o.Code == c.Code {
			names = append(names, o.Display)
		}
	}
	for _, n := range names {
		addName(n)
	}
	if len(ings) == 0 {
		return nil, false, fmt.Sprintf("RxNorm %s could not be resolved to its ingredients (ehrgate's RxNorm table does not have it, and its name is not a clinical drug name)", c.Code)
	}
	sort.Strings(ings)
	return ings, true, ""
}

// allergen is what an allergy's substance resolved to.
type allergen struct {
	Ingredients []string
	Classes     []string
	ByText      bool // resolved from free text, not a code
}

func (a allergen) empty() bool { return len(a.Ingredients) == 0 && len(a.Classes) == 0 }

// resolveAllergen resolves an allergy's substance: RxNorm codes to
// ingredients (and their classes), SNOMED CT codes through the table, then
// the substance's text through the table's synonyms and ingredient names.
func (k *Knowledge) resolveAllergen(c normalize.Concept) allergen {
	var a allergen
	addIng := func(n string) {
		if n = IngredientName(n); n != "" && !contains(a.Ingredients, n) {
			a.Ingredients = append(a.Ingredients, n)
		}
	}
	addTarget := func(t allergenTarget) {
		if t.Class != "" && !contains(a.Classes, t.Class) {
			a.Classes = append(a.Classes, t.Class)
		}
		if t.Ingredient != "" {
			addIng(t.Ingredient)
		}
	}
	codings := append([]normalize.Coding{{System: c.System, Code: c.Code, Display: c.Display}}, c.Original...)
	for _, o := range codings {
		if o.Code == "" {
			continue
		}
		switch terminology.Canonical(o.System) {
		case terminology.SystemRxNorm:
			if ings, ok, _ := k.drugIngredients(normalize.Concept{System: terminology.SystemRxNorm, Code: o.Code, Display: o.Display}); ok {
				for _, n := range ings {
					addIng(n)
				}
			}
		case terminology.SystemSNOMED:
			if t, ok := k.snomed[o.Code]; ok {
				addTarget(t)
			}
		}
	}
	if !a.empty() {
		return a
	}
	for _, s := range []string{c.Text, c.Display} {
		t := normText(s)
		if t == "" {
			continue
		}
		if tg, ok := k.text[t]; ok {
			addTarget(tg)
		} else if _, ok := k.members[IngredientName(t)]; ok {
			addIng(t)
		}
	}
	a.ByText = !a.empty()
	return a
}

// alternativeConcept is alt as a coded medication.
func alternativeConcept(alt Alternative) normalize.Concept {
	return normalize.Concept{System: terminology.SystemRxNorm, Code: alt.RxCUI, Display: alt.Label, Text: alt.Label}
}
