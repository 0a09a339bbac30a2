package fhirapi

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decodeAnyCases are values searches decode, and the shapes the hand-read
// path gives up on (each must still decode as encoding/json does).
var decodeAnyCases = []string{
	`[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]`,
	`"2024-01-02T03:04:05Z"`,
	`{"start":"2020","end":null}`,
	`{"value":-1.5e-3,"unit":"mg/dL","ok":true,"no":false}`,
	`[]`, `{}`, ` [ 1 , 2 ] `, `0`, `-0`, `12345678901234567890`,
	`"M\u00fcller"`, `"Müller"`, "\"\xff\"", `"tab\there"`,
	`{"a":1,"a":2}`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `1e`, `+1`, `1e999`,
	`nul`, `tru`, `"open`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`{"a":[{"b":{"c":"d"}}]} x`,
}

func TestDecodeAnyAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range decodeAnyCases {
		checkDecodeAny(t, []byte(c))
	}
}

func FuzzDecodeAny(f *testing.F) {
	for _, c := range decodeAnyCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkDecodeAny)
}

// checkDecodeAny: where encoding/json decodes raw, decodeAny gives the
// same value (where it fails, searches test nothing, so only agreement on
// valid JSON matters; decodeAny must not panic on any input).
func checkDecodeAny(t *testing.T, raw []byte) {
	got := decodeAny(raw)
	var want any
	if err := json.Unmarshal(raw, &want); err != nil {
		return
	}
	// reflect.DeepEqual first: go-cmp's diff of deeply nested slices
	// takes exponential time.
	if !reflect.DeepEqual(want, got) {
		t.Errorf("decodeAny(%q) differs from encoding/json (-want +got):\n%s", raw, cmp.Diff(want, got))
	}
}
