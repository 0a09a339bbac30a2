package normalize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goldenfile "ehrgate/internal/golden"
)

// conformanceGolden are US Core examples whose normalized form (with the
// terminology chain) is kept as a golden file: blood pressure (present and
// absent), BMI, units, lab codes, conditions, medications, encounters,
// immunizations, coded data missing.
var conformanceGolden = []string{
	"blood-pressure", "bp-data-absent", "bmi", "weight", "height", "temperature", "heart-rate",
	"oxygen-saturation", "observation-serum-glucose", "observation-serum-creatinine", "observation-cbc-hemoglobin",
	"some-day-smoker", "condition-encounter-diagnosis-example1", "condition-duodenal-ulcer", "health-concern-example",
	"medicationrequest-coded-oral-axid", "medicationrequest-contained-oral-axid", "encounter-1036", "imm-1",
	"missing-coded-data-example", "allergyintolerance-example", "procedure-rehab", "diagnosticreport-cbc",
}

func TestConformanceGolden(t *testing.T) {
	dir := fixturesDir(t)
	n := testNormalizer(t)
	for _, name := range conformanceGolden {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "fhir", "examples", "us-core", name+".json"))
			if err != nil {
				t.Skipf("fixture missing: %v", err)
			}
			res, err := n.Normalize(Ref{Connection: "us-core"}, raw)
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			got, _ := json.MarshalIndent(res, "", "  ")
			got = append(got, '\n')
			goldenfile.Check(t, filepath.Join("testdata", "golden", "conformance", name+".json"), got)
		})
	}
}

// TestConformanceChainRules asserts the chain's rules on the real samples.
func TestConformanceChainRules(t *testing.T) {
	dir := fixturesDir(t)
	read := func(name string) Resource {
		raw, err := os.ReadFile(filepath.Join(dir, "fhir", "examples", "us-core", name+".json"))
		if err != nil {
			t.Skipf("fixture missing: %v", err)
		}
		res, err := testNormalizer(t).Normalize(Ref{Connection: "us-core"}, raw)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	bp := read("blood-pressure").(*Observation).BloodPressure
	if bp == nil || bp.Systolic == nil || bp.Diastolic == nil || *bp.Systolic.Number != 109 || *bp.Diastolic.Number != 44 || bp.From != "components" {
		t.Errorf("blood-pressure: BloodPressure = %+v, want 109/44 from components", bp)
	}
	if bp := read("bp-data-absent").(*Observation).BloodPressure; bp == nil || bp.Systolic == nil || *bp.Systolic.Number != 109 || bp.Diastolic == nil || bp.Diastolic.Kind != KindAbsent {
		t.Errorf("bp-data-absent: BloodPressure = %+v, want 109 and an absent diastolic (never a guessed value)", bp)
	}
	w := read("weight").(*Observation)
	h := read("height").(*Observation)
	if w.Value.Canonical == nil || w.Value.Canonical.Unit != "kg" || h.Value.Canonical == nil || h.Value.Canonical.Unit != "cm" {
		t.Errorf("weight/height canonical = %+v / %+v", w.Value.Canonical, h.Value.Canonical)
	}
	if tc := read("temperature").(*Observation).Value.Canonical; tc == nil || tc.Unit != "Cel" {
		t.Errorf("temperature canonical = %+v, want Cel", tc)
	}
	if g := read("observation-serum-glucose").(*Observation).Value; g.Canonical == nil || g.Canonical.Unit != "mmol/L" ||
		math.Abs(g.Canonical.Number-*g.Number/18.0156) > 1e-3 {
		t.Errorf("glucose canonical = %+v (from %v %s)", g.Canonical, *g.Number, g.Unit)
	}
	// DeriveBMI over the example weight and height (the same example
	// patient) gives a derived BMI naming both.
	derived := DeriveBMI([]*Observation{w, h})
	if len(derived) != 1 || !derived[0].Derived || len(derived[0].DerivedFrom) != 2 {
		t.Errorf("DeriveBMI(us-core weight, height) = %+v", derived)
	}
}

// TestConformanceSynthea runs the chain over the Synthea Bulk Data NDJSON:
// every lab and vital code is standard (never text-mapped over a code the
// source sent), every blood-pressure panel is split, derived BMI agrees with
// the BMI Synthea recorded at the same time, conditions merge and group.
func TestConformanceSynthea(t *testing.T) {
	dir := fixturesDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "fhir", "bulk-ndjson", "synthea-2-patients", "*.ndjson"))
	if len(files) == 0 {
		t.Skip("no Synthea NDJSON in the fixtures")
	}
	n := testNormalizer(t)
	var obs []*Observation
	var conds []*Condition
	mappings := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			res, err := n.Normalize(Ref{Connection: "synthea"}, bytes.Clone(line))
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
				continue
			}
			switch r := res.(type) {
			case *Observation:
				obs = append(obs, r)
				mappings["Observation:"+r.Code.Mapping]++
				if r.Code.System == systemLOINC && (r.Code.Code == loincBPPanel || r.Code.Code == loincBPPanelOld) {
					if r.BloodPressure == nil || r.BloodPressure.Systolic == nil || r.BloodPressure.Diastolic == nil {
						t.Errorf("%s: blood pressure panel not split", r.Source.ID)
					}
				}
				if r.Value != nil && r.Value.Kind == KindQuantity && strings.Contains("kg [lb_av] cm [in_i] Cel [degF]", r.Value.UnitCode) && r.Value.UnitCode != "" && r.Value.Canonical == nil {
					t.Errorf("%s: %s quantity not converted", r.Source.ID, r.Value.UnitCode)
				}
			case *Condition:
				conds = append(conds, r)
				mappings["Condition:"+r.Code.Mapping]++
			case *MedicationRequest:
				mappings["MedicationRequest:"+r.Medication.Mapping]++
			}
		}
		fh.Close()
	}
	if mappings["Observation:text"] != 0 || mappings["Observation:unmapped"] != 0 {
		t.Errorf("Synthea observations mapped by text or unmapped: %v (Synthea codes everything in LOINC)", mappings)
	}
	// Derived BMI vs the BMI Synthea recorded.
	recorded := map[string]float64{}
	var inputs []*Observation
	for _, o := range obs {
		if o.Code.Code == loincBMI && o.Value != nil && o.Value.Number != nil {
			recorded[o.PatientID+"|"+o.Effective] = *o.Value.Number
			continue
		}
		inputs = append(inputs, o)
	}
	derived := DeriveBMI(inputs)
	compared := 0
	for _, d := range derived {
		if want, ok := recorded[d.PatientID+"|"+d.Effective]; ok {
			compared++
			if math.Abs(*d.Value.Number-want) > 0.2 {
				t.Errorf("derived BMI %v for %s at %s, Synthea recorded %v", *d.Value.Number, d.PatientID, d.Effective, want)
			}
		}
	}
	if compared == 0 {
		t.Errorf("no derived BMI could be compared with a recorded one (%d derived)", len(derived))
	}
	merged := MergeConditions(conds)
	grouped := 0
	for _, m := range merged {
		if len(m.Groups) > 0 {
			grouped++
		}
	}
	t.Logf("mappings %v; %d derived BMI (%d compared with Synthea's); %d conditions merged into %d concepts, %d grouped", mappings, len(derived), compared, len(conds), len(merged), grouped)
}
