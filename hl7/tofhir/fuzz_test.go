package tofhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"ehrgate/hl7"
)

var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// FuzzConvert feeds arbitrary messages (seeded with the handwritten test
// messages) to Convert: it must never panic, and whatever it returns must be
// valid JSON with FHIR-safe ids and the message's meta.source.
func FuzzConvert(f *testing.F) {
	files, _ := filepath.Glob("testdata/messages/*.hl7")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := hl7.Parse(data, hl7.ParseOptions{})
		if err != nil {
			return
		}
		res, err := Convert(m, Options{})
		if err != nil {
			return
		}
		for _, r := range res.Resources {
			if !fhirID.MatchString(r.ID) {
				t.Fatalf("%s id %q is not a FHIR id", r.Type, r.ID)
			}
			var v map[string]any
			if err := json.Unmarshal(r.JSON, &v); err != nil {
				t.Fatalf("%s: invalid JSON: %v", r.Type, err)
			}
			if meta, _ := v["meta"].(map[string]any); meta["source"] != res.Source {
				t.Fatalf("%s: meta.source = %v, want %q", r.Type, v["meta"], res.Source)
			}
		}
		// Every resource belongs to one of the message's patients (or none:
		// MessageHeader, payer Organization); two patients are never one
		// (A17); each Provenance targets only resources of the result.
		pats := map[string]bool{}
		for _, p := range res.Patients {
			if pats[p.ID] {
				t.Fatalf("patient %s listed twice", p.ID)
			}
			pats[p.ID] = true
		}
		have := map[string]bool{}
		for _, r := range res.Resources {
			have[r.Type+"/"+r.ID] = true
			if r.PatientID != "" && !pats[r.PatientID] {
				t.Fatalf("%s/%s belongs to %s, not one of the message's patients", r.Type, r.ID, r.PatientID)
			}
		}
		if res.Merge != nil {
			have["Patient/"+res.Merge.RetiredID] = true
		}
		for _, r := range res.Of("Provenance") {
			var p struct{ Target []struct{ Reference string } }
			if err := json.Unmarshal(r.JSON, &p); err != nil || len(p.Target) == 0 {
				t.Fatalf("Provenance %s: %v, %d targets", r.ID, err, len(p.Target))
			}
			for _, tg := range p.Target {
				if !have[tg.Reference] {
					t.Fatalf("Provenance %s targets %s, not converted from this message", r.ID, tg.Reference)
				}
			}
		}
		if res.Merge != nil {
			if _, err := LinkRetired(nil, res.Merge, res.Source); err != nil {
				t.Fatalf("LinkRetired: %v", err)
			}
		}
	})
}

func FuzzDateTime(f *testing.F) {
	for _, s := range []string{"2026", "202603", "20260301", "202603010830", "20260301083000-0500", "20260301083000.1234+0100", "1988081811+0215", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := dateTime(s, nil)
		if ok && v == "" {
			t.Fatalf("dateTime(%q) ok with empty value", s)
		}
	})
}

func TestDateTime(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"2026", "2026", true},
		{"202603", "2026-03", true},
		{"20260301", "2026-03-01", true},
		{"20260231", "", false},
		{"202603010830", "2026-03-01T08:30:00Z", true},
		{"20260301083000-0500", "2026-03-01T08:30:00-05:00", true},
		{"20260301083000.12+0100", "2026-03-01T08:30:00.12+01:00", true},
		{"2026030108", "2026-03-01T08:00:00Z", true},
		{"20260301083000+99", "", false},
		{"abc", "", false},
		{"2019-03-12", "", false}, // ISO date: not a year with an offset
		{"20190312-0500", "2019-03-12", true},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := dateTime(tt.in, nil)
		if got != tt.want || ok != tt.ok {
			t.Errorf("dateTime(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
