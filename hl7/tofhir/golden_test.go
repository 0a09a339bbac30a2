package tofhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/internal/golden"

	"ehrgate/hl7"
)

// checkGolden compares got with testdata/<name>, rewriting it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got)
}

func parseFile(t *testing.T, path string) *hl7.Message {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7.Parse(b, hl7.ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return m
}

// render is the golden form of a Result: the resources, indented, with
// the conversion's metadata.
func render(t *testing.T, r *Result) []byte {
	t.Helper()
	var res []json.RawMessage
	for _, x := range r.Resources {
		res = append(res, x.JSON)
	}
	out := map[string]any{"source": r.Source, "patientId": r.PatientID, "patient": r.Patient, "resources": res}
	if r.Merge != nil {
		out["merge"] = r.Merge
	}
	var status []string
	for _, x := range r.Resources {
		if x.StatusOnly {
			status = append(status, x.Type+"/"+x.ID+" -> "+x.Status)
		}
	}
	if status != nil {
		out["statusOnly"] = status
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGolden converts every handwritten message under testdata/messages and
// compares with testdata/golden/<name>.json (go test -run Golden -update).
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/messages/*.hl7")
	if len(files) == 0 {
		t.Fatal("no messages under testdata/messages")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hl7")
		t.Run(name, func(t *testing.T) {
			r, err := Convert(parseFile(t, f), Options{Authorities: map[string]string{"SSA": "http://hl7.org/fhir/sid/us-ssn"}})
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			checkGolden(t, filepath.Join("golden", name+".json"), render(t, r))
		})
	}
}
