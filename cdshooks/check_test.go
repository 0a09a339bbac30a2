package cdshooks

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	rx     = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sct    = "http://snomed.info/sct"
	ndcSys = "http://hl7.org/fhir/sid/ndc"
)

func coded(system, code, display string) string {
	return `{"coding":[{"system":"` + system + `","code":"` + code + `","display":"` + display + `"}]}`
}

func textOnly(text string) string { return `{"text":"` + text + `"}` }

func mustAllergy(t *testing.T, code, clinical, verification, criticality string, category ...string) Allergy {
	t.Helper()
	m := map[string]any{"resourceType": "AllergyIntolerance", "id": "a", "patient": map[string]string{"reference": "Patient/p"}}
	var c any
	if err := json.Unmarshal([]byte(code), &c); err != nil {
		t.Fatal(err)
	}
	m["code"] = c
	if clinical != "" {
		m["clinicalStatus"] = map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": clinical}}}
	}
	if verification != "" {
		m["verificationStatus"] = map[string]any{"coding": []map[string]string{{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": verification}}}
	}
	if criticality != "" {
		m["criticality"] = criticality
	}
	if len(category) > 0 {
		m["category"] = category
	}
	raw, _ := json.Marshal(m)
	a, err := ParseAllergy(nil, raw)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustDraft(t *testing.T, med string) Draft {
	t.Helper()
	raw := `{"resourceType":"MedicationRequest","id":"d","status":"draft","intent":"order","subject":{"reference":"Patient/p"},"medicationCodeableConcept":` + med + `}`
	d, err := ParseDraft(nil, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCheck: hand-checked drug-allergy cases. want lists each finding as
// "kind[:class][:ingredients]" with the card indicator.
func TestCheck(t *testing.T) {
	penicillinSCT := coded(sct, "764146007", "Penicillin (substance)")
	amoxSCD := coded(rx, "308182", "amoxicillin 250 MG Oral Capsule")
	for _, tc := range []struct {
		name    string
		drug    string
		allergy func(t *testing.T) []Allergy
		want    []string
	}{
		{"penicillin class allergy, amoxicillin", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			[]string{"class:penicillins:amoxicillin critical"}},
		{"amoxicillin ingredient allergy (RxNorm IN), amoxicillin product", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, coded(rx, "723", "amoxicillin"), "active", "unconfirmed", "low")}
			},
			[]string{"ingredient::amoxicillin warning"}},
		{"penicillin G allergy, amoxicillin: same class", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, coded(rx, "7980", "penicillin G"), "active", "confirmed", "")}
			},
			[]string{"class:penicillins:amoxicillin warning"}},
		{"multi-ingredient product read from its RxNorm name", coded(rx, "617993", "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			[]string{"class:penicillins:amoxicillin critical"}},
		{"sulfa allergy by text, sulfamethoxazole-trimethoprim", coded(rx, "198335", "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, textOnly("Sulfa drugs"), "active", "confirmed", "")}
			},
			[]string{"class:sulfonamide-antibiotics:sulfamethoxazole warning"}},
		{"penicillin allergy, cephalexin: cross-sensitivity, lower severity", coded(rx, "309114", "cephalexin 500 MG Oral Capsule"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "low")}
			},
			[]string{"cross-sensitivity:cephalosporins:cephalexin info"}},
		{"penicillin allergy (high), cephalexin: cross-sensitivity warning", coded(rx, "309114", "cephalexin 500 MG Oral Capsule"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			[]string{"cross-sensitivity:cephalosporins:cephalexin warning"}},
		{"NSAID class: ibuprofen allergy, naproxen", coded(rx, "849574", "naproxen sodium 220 MG Oral Tablet"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, coded(rx, "5640", "ibuprofen"), "active", "confirmed", "")}
			},
			[]string{"class:nsaids:naproxen warning"}},
		{"no match: penicillin allergy, ibuprofen", coded(rx, "310965", "ibuprofen 200 MG Oral Tablet"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			nil},
		{"resolved allergy ignored", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "resolved", "confirmed", "high")}
			},
			nil},
		{"inactive allergy ignored", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "inactive", "confirmed", "high")}
			},
			nil},
		{"entered-in-error allergy ignored", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "", "entered-in-error", "high")}
			},
			nil},
		{"refuted allergy ignored", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "refuted", "high")}
			},
			nil},
		{"no clinical status, unconfirmed: still checked", amoxSCD,
			func(t *testing.T) []Allergy { return []Allergy{mustAllergy(t, penicillinSCT, "", "unconfirmed", "")} },
			[]string{"class:penicillins:amoxicillin warning"}},
		{"text-only drug cannot be checked", textOnly("amoxicillin 500 mg capsule"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			[]string{"drug-unchecked warning"}},
		{"text-only drug, no drug allergies", textOnly("amoxicillin 500 mg capsule"),
			func(t *testing.T) []Allergy { return nil },
			[]string{"drug-unchecked info"}},
		{"unknown NDC cannot be checked", coded(ndcSys, "99999-9999-99", "something"),
			func(t *testing.T) []Allergy { return nil },
			[]string{"drug-unchecked info"}},
		{"RxNorm code with a brand name only: not guessed", coded(rx, "999999", "Augmentin"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			[]string{"drug-unchecked warning"}},
		{"RxNorm ingredient code with a known ingredient name", coded(rx, "733", "ampicillin"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, penicillinSCT, "active", "confirmed", "high")}
			},
			[]string{"class:penicillins:ampicillin critical"}},
		{"allergy coded with a brand name only: said, not guessed", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, coded(rx, "999998", "Keflex"), "active", "confirmed", "")}
			},
			[]string{"allergy-unchecked info"}},
		{"NDC mapped to an RxNorm drug ehrgate cannot name", coded(ndcSys, "71309-0003-25", "aspirin 81 MG Delayed Release Oral Tablet"),
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, coded(rx, "5640", "ibuprofen"), "active", "confirmed", "")}
			},
			[]string{"drug-unchecked warning"}},
		{"uncoded drug allergy: said, not silent", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, textOnly("Keflex rash"), "active", "confirmed", "")}
			},
			[]string{"allergy-unchecked info"}},
		{"uncoded food allergy is not a drug allergy", amoxSCD,
			func(t *testing.T) []Allergy {
				return []Allergy{mustAllergy(t, textOnly("strawberries"), "active", "confirmed", "", "food")}
			},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := BundledKnowledge()
			fs := k.Check([]Draft{mustDraft(t, tc.drug)}, tc.allergy(t))
			var got []string
			for _, f := range fs {
				s := f.Kind
				if f.Kind != "drug-unchecked" && f.Kind != "allergy-unchecked" {
					s += ":" + f.Class + ":" + strings.Join(f.Ingredients, ",")
				}
				got = append(got, s+" "+f.Indicator())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIngredientsFromRxNormName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"amoxicillin 250 MG Oral Capsule", []string{"amoxicillin"}},
		{"Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension", []string{"amoxicillin", "clavulanate"}},
		{"sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet", []string{"sulfamethoxazole", "trimethoprim"}},
		{"amoxicillin 875 MG / clavulanate 125 MG Oral Tablet [Augmentin]", []string{"amoxicillin", "clavulanate"}},
		{"penicillin G potassium", []string{"penicillin g"}},
		{"{7 (amoxicillin 500 MG Oral Capsule) } Pack", nil},
		{"", nil},
	} {
		if diff := cmp.Diff(tc.want, IngredientsFromRxNormName(tc.name)); diff != "" {
			t.Errorf("IngredientsFromRxNormName(%q) (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestCards: the cards of a match, an unchecked drug, unresolved
// allergies and a missing list are valid cards (summary < 140 characters,
// indicator, source, suggestions with selection behavior, override
// reasons with displays) and encode without nulls, empty strings or empty
// arrays.
func TestCards(t *testing.T) {
	k := BundledKnowledge()
	long := strings.Repeat("very long medication name ", 10)
	drafts := []Draft{mustDraft(t, coded(rx, "308182", "amoxicillin 250 MG Oral Capsule")), mustDraft(t, textOnly(long))}
	allergies := []Allergy{mustAllergy(t, coded(sct, "764146007", "Penicillin (substance)"), "active", "confirmed", "high"),
		mustAllergy(t, textOnly("Keflex rash"), "active", "", "")}
	o := cardOptions{Prov: Provenance{From: "the test"}, Allergies: allergies, Source: cardSource,
		Link: &Link{Label: "chart", URL: "https://ehrgate.example/smart/launch", Type: "smart"}}
	cards := k.cards(k.Check(drafts, allergies), drafts, o)
	cards = append(cards, k.cards(nil, drafts, cardOptions{Prov: Provenance{Unavailable: "clinic does not provide allergy lists"}})...)
	if len(cards) != 4 {
		t.Fatalf("cards = %d, want 4 (match, unchecked drug, unresolved allergy, no list)", len(cards))
	}
	for _, c := range cards {
		if err := c.Validate(); err != nil {
			t.Errorf("card %q: %v", c.Summary, err)
		}
	}
	b, err := json.Marshal(Response{Cards: cards})
	if err != nil {
		t.Fatal(err)
	}
	var v any
	_ = json.Unmarshal(b, &v)
	if p := emptyValue(v, "$"); p != "" {
		t.Errorf("the response has an empty value at %s", p)
	}
}

// emptyValue returns the path of the first null, "", [] or {} in v.
func emptyValue(v any, path string) string {
	switch x := v.(type) {
	case nil:
		return path
	case string:
		if x == "" {
			return path
		}
	case []any:
		if len(x) == 0 && path != "$.cards" {
			return path
		}
		for i, e := range x {
			if p := emptyValue(e, path+"["+string(rune('0'+i%10))+"]"); p != "" {
				return p
			}
		}
	case map[string]any:
		if len(x) == 0 {
			return path
		}
		for k, e := range x {
			if p := emptyValue(e, path+"."+k); p != "" {
				return p
			}
		}
	}
	return ""
}

func TestBundledKnowledgeCitesEveryRow(t *testing.T) {
	k := BundledKnowledge()
	if len(k.classes) < 4 || len(k.members) < 20 {
		t.Errorf("bundled table: %d classes, %d ingredients", len(k.classes), len(k.members))
	}
	if _, err := LoadKnowledge(strings.NewReader("kind,key,target,rxcui,label,source\nmember,x,penicillins,,x,\n"), nil); err == nil {
		t.Error("a row without a source was accepted")
	}
	if _, err := LoadKnowledge(strings.NewReader("kind,key,target,rxcui,label,source\nmember,x,nope,,x,https://example.org\n"), nil); err == nil {
		t.Error("a row naming an undefined class was accepted")
	}
}

// TestResourcesWithoutID: draft orders and allergies without an id are
// checked; a draft without an id gets no suggestion (nothing to refer to).
func TestResourcesWithoutID(t *testing.T) {
	d, err := ParseDraft(nil, []byte(`{"resourceType":"MedicationRequest","status":"draft","intent":"order","medicationCodeableConcept":`+coded(rx, "308182", "amoxicillin 250 MG Oral Capsule")+`}`))
	if err != nil || d.ID != "" {
		t.Fatalf("ParseDraft without id = %+v, %v", d, err)
	}
	a, err := ParseAllergy(nil, []byte(`{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p"},"code":`+coded(sct, "764146007", "Penicillin (substance)")+`}`))
	if err != nil || !a.relevant() {
		t.Fatalf("ParseAllergy without id = %+v, %v", a, err)
	}
	k := BundledKnowledge()
	cards := k.cards(k.Check([]Draft{d}, []Allergy{a}), []Draft{d}, cardOptions{Prov: Provenance{From: "test"}})
	if len(cards) != 1 || len(cards[0].Suggestions) != 0 || cards[0].Validate() != nil {
		t.Errorf("cards = %+v", cards)
	}
}

func mustOrder(t *testing.T, id, status, med string) Draft {
	t.Helper()
	raw := `{"resourceType":"MedicationRequest","id":"` + id + `","status":"` + status + `","intent":"order","subject":{"reference":"Patient/p"},"authoredOn":"2026-01-02","medicationCodeableConcept":` + med + `}`
	d, err := ParseDraft(nil, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDuplicates: hand-checked duplicate-therapy cases.
func TestDuplicates(t *testing.T) {
	amox := coded(rx, "308182", "amoxicillin 250 MG Oral Capsule")
	augmentin := coded(rx, "617993", "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension")
	ibu := coded(rx, "310965", "ibuprofen 200 MG Oral Tablet")
	for _, tc := range []struct {
		name   string
		draft  string
		active []Draft
		want   []string
	}{
		{"same ingredient, other product", augmentin, []Draft{mustOrder(t, "m1", "active", amox)}, []string{"duplicate:amoxicillin:m1"}},
		{"on hold counts", amox, []Draft{mustOrder(t, "m1", "on-hold", amox)}, []string{"duplicate:amoxicillin:m1"}},
		{"stopped does not", amox, []Draft{mustOrder(t, "m1", "stopped", amox)}, nil},
		{"different ingredient", amox, []Draft{mustOrder(t, "m1", "active", ibu)}, nil},
		{"the draft itself is not its duplicate", amox, []Draft{mustOrder(t, "d", "active", amox)}, nil},
		{"uncoded active order: said", amox, []Draft{mustOrder(t, "m1", "active", textOnly("home meds"))}, []string{"active-unchecked::"}},
		{"uncoded draft: said", textOnly("amoxicillin"), []Draft{mustOrder(t, "m1", "active", amox)}, []string{"duplicate-unchecked::"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range BundledKnowledge().Duplicates([]Draft{mustDraft(t, tc.draft)}, tc.active) {
				s := f.Kind + ":" + strings.Join(f.Ingredients, ",") + ":"
				if f.Existing != nil {
					s += f.Existing.ID
				}
				got = append(got, s)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Duplicates() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// The cards are valid.
	d := mustDraft(t, augmentin)
	fs := BundledKnowledge().Duplicates([]Draft{d}, []Draft{mustOrder(t, "m1", "active", amox), mustOrder(t, "m2", "active", textOnly("x"))})
	cards := duplicateCards(fs, []Draft{d}, Provenance{From: "test"}, Source{})
	cards = append(cards, duplicateCards(nil, []Draft{d}, Provenance{Unavailable: "clinic does not provide medication lists"}, Source{})...)
	if len(cards) != 3 {
		t.Fatalf("cards = %d, want 3", len(cards))
	}
	for _, c := range cards {
		if err := c.Validate(); err != nil {
			t.Errorf("card %q: %v", c.Summary, err)
		}
	}
	b, _ := json.Marshal(Response{Cards: cards})
	var v any
	_ = json.Unmarshal(b, &v)
	if p := emptyValue(v, "$"); p != "" {
		t.Errorf("the response has an empty value at %s", p)
	}
}
