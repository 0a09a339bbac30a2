package fhirapi

import (
	"encoding/json"
	"strings"
	"testing"

	"ehrgate/normalize"
	"ehrgate/store"
)

func TestCleanedAddsBesideNeverReplaces(t *testing.T) {
	num := 126.0
	model, _ := json.Marshal(normalize.Observation{
		Code:     normalize.Concept{System: "http://loinc.org", Code: "2345-7", Display: "Glucose", Standard: true, Mapping: normalize.MappingLocal},
		Category: []string{"laboratory"},
		Value:    &normalize.Value{Kind: "quantity", Number: &num, Unit: "mg/dL", UnitCode: "mg/dL", Canonical: &normalize.Canonical{Number: 6.99, Unit: "mmol/L"}},
	})
	raw := `{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"urn:oid:1.2.3","code":"GLU"}],"text":"Glucose"},` +
		`"valueQuantity":{"value":126,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`
	rec := &store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: "o1", VersionID: "1"}, Raw: []byte(raw), Normalized: model}
	out, err := cleaned(rec)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Status string
		Code   struct {
			Coding []map[string]any
			Text   string
		}
		ValueQuantity map[string]any
		Category      []struct{ Coding []map[string]any }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("cleaned output is not JSON: %v\n%s", err, out)
	}
	if len(got.Code.Coding) != 2 || got.Code.Coding[0]["code"] != "GLU" || got.Code.Coding[1]["code"] != "2345-7" || got.Code.Text != "Glucose" {
		t.Errorf("code = %+v, want the source's coding then LOINC 2345-7 beside it", got.Code)
	}
	if !strings.Contains(string(out), `"valueCode":"local-map"`) {
		t.Errorf("the added coding is not marked with how it was mapped: %s", out)
	}
	if got.ValueQuantity["code"] != "mmol/L" || got.ValueQuantity["value"] != 6.99 || !strings.Contains(string(out), ExtOriginalQuantity) {
		t.Errorf("valueQuantity = %v, want 6.99 mmol/L with the original kept", got.ValueQuantity)
	}
	if len(got.Category) != 1 || got.Category[0].Coding[0]["code"] != "laboratory" {
		t.Errorf("category = %+v, want laboratory filled in", got.Category)
	}
	if got.Status != "final" || !strings.HasPrefix(string(out), `{"resourceType":"Observation","id":"o1","status":"final",`) {
		t.Errorf("elements the cleaned form does not touch changed: %s", out)
	}
	// A standard code the source sent is not added twice; no canonical,
	// no change; a source category is not replaced.
	model2, _ := json.Marshal(normalize.Observation{Code: normalize.Concept{System: "http://loinc.org", Code: "2345-7", Standard: true, Mapping: normalize.MappingStandard},
		Category: []string{"laboratory"}})
	raw2 := `{"resourceType":"Observation","id":"o2","category":[{"text":"Lab"}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]}}`
	rec2 := &store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: "o2"}, Raw: []byte(raw2), Normalized: model2}
	if out, _ := cleaned(rec2); string(out) != raw2 {
		t.Errorf("cleaned(already standard) = %s, want it unchanged", out)
	}
}
