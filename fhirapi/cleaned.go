package fhirapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"ehrgate/normalize"
	"ehrgate/store"
)

// FormHeader names the request header that asks for the cleaned form:
// "Ehrgate-Form: cleaned". Without it resources are served as received.
const FormHeader = "Ehrgate-Form"

// Extension URLs the cleaned form uses.
const (
	// ExtMapping marks a coding ehrgate added (valueCode: how it was
	// reached: local-map, ndc, text).
	ExtMapping = "urn:ehrgate:mapping"
	// ExtOriginalQuantity holds the quantity as the source sent it, beside
	// a value converted to the canonical UCUM unit.
	ExtOriginalQuantity = "urn:ehrgate:original-quantity"
)

// conceptPaths name, per type, the top-level element holding the concept
// normalization mapped (the field of the normalized model in the JSON tag).
var conceptPaths = map[string]struct{ element, model string }{
	"Observation":        {"code", "code"},
	"Condition":          {"code", "code"},
	"Procedure":          {"code", "code"},
	"DiagnosticReport":   {"code", "code"},
	"AllergyIntolerance": {"code", "substance"},
	"MedicationRequest":  {"medicationCodeableConcept", "medication"},
	"Immunization":       {"vaccineCode", "vaccine"},
	"DocumentReference":  {"type", "type"},
}

// cleaned returns rec's resource in the cleaned form: the standard coding
// normalization found added beside the source's codings (never replacing
// them; marked with ExtMapping), an Observation's quantity in its
// canonical UCUM unit (the source's quantity kept in ExtOriginalQuantity),
// and an Observation's category filled when the source sent none and
// normalization knows it (US Core must-support). Everything else is as
// received.
func cleaned(rec *store.Record) ([]byte, error) {
	if len(rec.Normalized) == 0 {
		return rec.Raw, nil
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal(rec.Normalized, &model); err != nil {
		return nil, fmt.Errorf("normalized %s/%s: %w", rec.Type, rec.ID, err)
	}
	out := rec.Raw
	var err error
	if cp, ok := conceptPaths[rec.Type]; ok {
		var c normalize.Concept
		if raw := model[cp.model]; raw != nil && json.Unmarshal(raw, &c) == nil && c.Standard && c.Mapping != "" && c.Mapping != normalize.MappingStandard {
			out, err = editTop(out, cp.element, func(v []byte) ([]byte, error) { return addCoding(v, c) })
			if err != nil {
				return nil, err
			}
		}
	}
	if rec.Type == "Observation" {
		var val normalize.Value
		if raw := model["value"]; raw != nil && json.Unmarshal(raw, &val) == nil && val.Canonical != nil && val.Kind == "quantity" &&
			val.Canonical.Unit != val.UnitCode {
			out, err = editTop(out, "valueQuantity", func(v []byte) ([]byte, error) { return canonicalQuantity(v, val.Canonical) })
			if err != nil {
				return nil, err
			}
		}
		var cats []string
		if raw := model["category"]; raw != nil && json.Unmarshal(raw, &cats) == nil && len(cats) > 0 {
			if _, _, found := topRange(out, "category"); !found {
				var list []any
				for _, c := range cats {
					list = append(list, map[string]any{"coding": []any{map[string]any{
						"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": c}}})
				}
				b, _ := json.Marshal(list)
				out = insertTop(out, "category", b)
			}
		}
	}
	return out, nil
}

// addCoding adds the concept's standard coding to a CodeableConcept,
// unless a coding with that system and code is there already.
func addCoding(v []byte, c normalize.Concept) ([]byte, error) {
	var cc map[string]any
	if err := json.Unmarshal(v, &cc); err != nil || cc == nil {
		return v, nil
	}
	codings, _ := cc["coding"].([]any)
	for _, x := range codings {
		m, _ := x.(map[string]any)
		if m["system"] == c.System && m["code"] == c.Code {
			return v, nil
		}
	}
	add := map[string]any{"system": c.System, "code": c.Code, "userSelected": false,
		"extension": []any{map[string]any{"url": ExtMapping, "valueCode": c.Mapping}}}
	if c.Display != "" {
		add["display"] = c.Display
	}
	cc["coding"] = append(codings, add)
	return json.Marshal(cc)
}

// canonicalQuantity replaces a quantity by its canonical form, keeping the
// original in an extension.
func canonicalQuantity(v []byte, c *normalize.Canonical) ([]byte, error) {
	var orig map[string]any
	if err := json.Unmarshal(v, &orig); err != nil || orig == nil {
		return v, nil
	}
	q := map[string]any{"value": c.Number, "unit": c.Unit, "system": "http://unitsofmeasure.org", "code": c.Unit,
		"extension": []any{map[string]any{"url": ExtOriginalQuantity, "valueQuantity": orig}}}
	if cmp, ok := orig["comparator"]; ok {
		q["comparator"] = cmp
	}
	return json.Marshal(q)
}

// topRange finds the value of a top-level element.
func topRange(raw []byte, key string) (start, end int, found bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, false
		}
		vstart := skipSeparators(raw, int(dec.InputOffset()))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return 0, 0, false
		}
		if k, _ := tok.(string); k == key {
			return vstart, int(dec.InputOffset()), true
		}
	}
	return 0, 0, false
}

// editTop replaces a top-level element's value by what fn makes of it (no
// change when the element is absent).
func editTop(raw []byte, key string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	s, e, ok := topRange(raw, key)
	if !ok {
		return raw, nil
	}
	v, err := fn(raw[s:e])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(raw)+len(v))
	out = append(out, raw[:s]...)
	out = append(out, v...)
	return append(out, raw[e:]...), nil
}

// insertTop adds a top-level element at the end of the resource.
func insertTop(raw []byte, key string, v []byte) []byte {
	end := bytes.LastIndexByte(raw, '}')
	if end < 0 {
		return raw
	}
	k, _ := json.Marshal(key)
	sep := ","
	if strings.TrimSpace(string(raw[:end])) == "{" {
		sep = ""
	}
	out := append([]byte(nil), raw[:end]...)
	out = append(out, sep...)
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, v...)
	return append(out, raw[end:]...)
}
