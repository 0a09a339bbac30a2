package normalize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// fixturesDir returns the shared fixtures directory ($EHRGATE_FIXTURES, by
// default /work/shared/fixtures reached from the package directory), or skips.
func fixturesDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures")
	}
	if _, err := os.Stat(filepath.Join(dir, "fhir")); err != nil {
		t.Skipf("fixtures not found at %s (set EHRGATE_FIXTURES to the shared fixtures directory): %v", dir, err)
	}
	return dir
}

// modelled are the resource types with their own normalized model.
var modelled = map[string]bool{
	"Patient": true, "Encounter": true, "Condition": true, "Observation": true, "MedicationRequest": true,
	"AllergyIntolerance": true, "Immunization": true, "Procedure": true, "DiagnosticReport": true, "DocumentReference": true,
}

// TestConformance normalizes real public examples: the US Core examples, the
// Synthea Bulk Data NDJSON and the HL7 R4 core examples. Every resource of the ten types must
// normalize without error and give plausible output.
func TestConformance(t *testing.T) {
	dir := fixturesDir(t)
	var resources []fixture
	files, err := filepath.Glob(filepath.Join(dir, "fhir", "examples", "us-core", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		resources = append(resources, unbundle(t, filepath.Base(f), b)...)
	}
	// The HL7 R4 core examples are not US Core: they must normalize without
	// error, but their codes (Australian vaccines, SNOMED medications) are
	// not held to US Core expectations.
	r4, err := filepath.Glob(filepath.Join(dir, "fhir", "examples", "hl7-r4", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r4 {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, fx := range unbundle(t, filepath.Base(f), b) {
			fx.lenient = true
			resources = append(resources, fx)
		}
	}
	nd, err := filepath.Glob(filepath.Join(dir, "fhir", "bulk-ndjson", "synthea-2-patients", "*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range nd {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 16<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			resources = append(resources, fixture{name: filepath.Base(f) + ":" + itoa(n), raw: bytes.Clone(line)})
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		fh.Close()
	}
	if len(resources) == 0 {
		t.Skipf("no FHIR fixtures under %s", dir)
	}

	counts := map[string]int{}
	for _, fx := range resources {
		var h header
		if err := json.Unmarshal(fx.raw, &h); err != nil {
			t.Errorf("%s: not a resource: %v", fx.name, err)
			continue
		}
		if !modelled[h.ResourceType] {
			continue
		}
		counts[h.ResourceType]++
		res, err := Normalize(Ref{Type: h.ResourceType}, fx.raw)
		if err != nil {
			t.Errorf("%s: Normalize error: %v", fx.name, err)
			continue
		}
		if !fx.lenient {
			checkPlausible(t, fx.name, res)
		}
	}
	for typ := range modelled {
		if counts[typ] == 0 {
			t.Errorf("no %s in the fixtures", typ)
		}
	}
	t.Logf("normalized %v", counts)
}

type fixture struct {
	name    string
	raw     []byte
	lenient bool // check only that it normalizes without error
}

// unbundle returns the resource itself, or a Bundle's entry resources.
func unbundle(t *testing.T, name string, raw []byte) []fixture {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Errorf("%s: %v", name, err)
		return nil
	}
	if b.ResourceType != "Bundle" {
		return []fixture{{name: name, raw: raw}}
	}
	var out []fixture
	for i, e := range b.Entry {
		if len(e.Resource) > 0 {
			out = append(out, fixture{name: name + "#" + itoa(i), raw: e.Resource})
		}
	}
	return out
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func checkPlausible(t *testing.T, name string, res Resource) {
	t.Helper()
	c := res.Base()
	if c.Source.ID == "" {
		t.Errorf("%s: no source id", name)
	}
	if c.PatientID == "" {
		t.Errorf("%s: no patient id", name)
	}
	switch r := res.(type) {
	case *Patient:
		if r.Name == "" || r.BirthDate == "" {
			t.Errorf("%s: patient name %q birthDate %q", name, r.Name, r.BirthDate)
		}
	case *Observation:
		if contains(r.Category, "vital-signs") || contains(r.Category, "laboratory") {
			if r.Code.System != "http://loinc.org" || !r.Code.Standard {
				t.Errorf("%s: vital/lab code = %+v, want LOINC chosen", name, r.Code)
			}
		}
		if r.Value == nil && len(r.Components) == 0 && !contains(r.Missing, "value") {
			// Panels with hasMember are the only other shape.
			t.Logf("%s: observation without value (panel)", name)
		}
		if r.Effective == "" {
			t.Errorf("%s: observation without effective time", name)
		}
	case *Condition:
		if r.Code.Code == "" {
			t.Errorf("%s: condition without code", name)
		}
		if r.Active && r.Abatement != "" {
			t.Errorf("%s: abated condition marked active", name)
		}
	case *MedicationRequest:
		if r.Medication.System != "http://www.nlm.nih.gov/research/umls/rxnorm" {
			t.Errorf("%s: medication = %+v, want RxNorm chosen", name, r.Medication)
		}
	case *Immunization:
		if r.Vaccine.System != "http://hl7.org/fhir/sid/cvx" {
			t.Errorf("%s: vaccine = %+v, want CVX chosen", name, r.Vaccine)
		}
	case *Encounter:
		if r.Class == "" {
			t.Errorf("%s: encounter without class", name)
		}
	case *AllergyIntolerance:
		if r.Substance.Label() == "" {
			t.Errorf("%s: allergy without substance", name)
		}
	case *Procedure:
		if r.Code.Code == "" {
			t.Errorf("%s: procedure without code", name)
		}
	case *DiagnosticReport:
		if r.Code.System != "http://loinc.org" {
			t.Errorf("%s: report code = %+v, want LOINC", name, r.Code)
		}
	case *DocumentReference:
		if r.Type.Code == "" || r.ContentType == "" {
			t.Errorf("%s: document type %+v contentType %q", name, r.Type, r.ContentType)
		}
	}
}
