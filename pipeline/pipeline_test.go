package pipeline

import (
	"context"
	"encoding/json"
	"testing"

	"ehrgate/writeback"
)

// TestReevaluate checks the re-proposal after a 412: the pipeline's Flag
// against the EHR's current version, keeping elements it does not own,
// unless a person changed the status meanwhile.
func TestReevaluate(t *testing.T) {
	want := `{"resourceType":"Flag","status":"inactive","code":{"text":"gap closed"},"subject":{"reference":"Patient/p1"}}`
	tests := []struct {
		name    string
		rule    string
		inputs  string
		current string
		wantNil bool
		wantKey string // an element of current that must be kept
	}{
		{"clinician added a note", rulePrefix + "af-anticoagulation", `{"base_status":"active"}`,
			`{"resourceType":"Flag","id":"f1","meta":{"versionId":"3"},"status":"active","note":[{"text":"seen"}],"code":{"text":"old"}}`, false, "note"},
		{"a person withdrew it", rulePrefix + "af-anticoagulation", `{"base_status":"active"}`,
			`{"resourceType":"Flag","id":"f1","status":"entered-in-error"}`, true, ""},
		{"another rule's record", "cds/other", `{}`, `{"resourceType":"Flag","status":"active"}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := writeback.Record{Proposal: writeback.Proposal{Resource: json.RawMessage(want), Inputs: json.RawMessage(tt.inputs),
				Rule: writeback.Rule{Name: tt.rule, Version: "1"}}}
			got, err := Reevaluate(context.Background(), rec, json.RawMessage(tt.current))
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != tt.wantNil {
				t.Fatalf("Reevaluate() = %s, want nil %v", got, tt.wantNil)
			}
			if got == nil {
				return
			}
			var res map[string]any
			if err := json.Unmarshal(got, &res); err != nil {
				t.Fatal(err)
			}
			if res["status"] != "inactive" || res["code"].(map[string]any)["text"] != "gap closed" || res[tt.wantKey] == nil || res["meta"] != nil {
				t.Errorf("Reevaluate() = %s, want the wanted status and code, %s kept, no meta", got, tt.wantKey)
			}
		})
	}
}

// TestSameOwned compares only the elements the pipeline owns.
func TestSameOwned(t *testing.T) {
	a := map[string]any{"resourceType": "Flag", "status": "active", "code": map[string]any{"text": "x"}}
	b := map[string]any{"resourceType": "Flag", "status": "active", "code": map[string]any{"text": "x"}, "note": []any{"n"}, "id": "9"}
	c := map[string]any{"resourceType": "Flag", "status": "inactive", "code": map[string]any{"text": "x"}}
	if !sameOwned(a, b) {
		t.Error("sameOwned(a, b with a note) = false, want true")
	}
	if sameOwned(a, c) {
		t.Error("sameOwned(active, inactive) = true, want false")
	}
}
