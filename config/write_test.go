package config

import (
	"strings"
	"testing"
)

func TestValidateWrite(t *testing.T) {
	base := func(w *Write) Config {
		cfg := Default()
		cfg.Connections = []Connection{{Name: "c", BaseURL: "https://x/fhir", Write: w}}
		return cfg
	}
	ok := func() *Write {
		return &Write{Enabled: true, Types: []string{"Flag"}, Operations: []string{"create", "update"}, Approval: ApprovalAuto}
	}
	tests := []struct {
		name string
		edit func(w *Write)
		want string // "" = valid
	}{
		{"valid", func(*Write) {}, ""},
		{"disabled and empty", func(w *Write) { *w = Write{} }, ""},
		{"no types", func(w *Write) { w.Types = nil }, "write.types"},
		{"bad type", func(w *Write) { w.Types = []string{"flag;drop"} }, "not a resource type"},
		{"no operations", func(w *Write) { w.Operations = nil }, "write.operations"},
		{"bad operation", func(w *Write) { w.Operations = []string{"delete"} }, "not create or update"},
		{"bad approval", func(w *Write) { w.Approval = "maybe" }, "approval"},
		{"negative rate", func(w *Write) { w.Rate = -1 }, "rate"},
		{"tag without code", func(w *Write) { w.Tags = []WriteTag{{System: "urn:x"}} }, "tags[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := ok()
			tc.edit(w)
			err := base(w).Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate(%+v) = %v, want nil", w, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate(%+v) = %v, want an error mentioning %q", w, err, tc.want)
			}
		})
	}
}

func TestLoadWriteBlock(t *testing.T) {
	path := writeFile(t, `
connections:
  - name: epic
    base_url: https://ehr.example/fhir
    write:
      enabled: true
      types: [Flag, Observation]
      operations: [create, update]
      approval: human
      dry_run: true
      rate: 30
      tags: [{system: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", code: DERIVED}]
`)
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Connections[0].Write
	if w == nil || !w.Enabled || !w.DryRun || w.Rate != 30 || len(w.Types) != 2 || w.Tags[0].Code != "DERIVED" {
		t.Fatalf("Load: write = %+v, want the block as written", w)
	}
}
