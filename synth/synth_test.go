package synth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/internal/golden"
)

// parsed is a generated resource decoded for inspection.
type parsed struct {
	typ string
	id  string
	raw json.RawMessage
	m   map[string]any
}

func decodeAll(t testing.TB, g *Generator, n int) [][]parsed {
	t.Helper()
	out := make([][]parsed, n)
	for i := range n {
		for _, r := range g.Resources(i) {
			var m map[string]any
			if err := json.Unmarshal(r.JSON, &m); err != nil {
				t.Fatalf("patient %d: %s does not parse: %v\n%s", i, r.Type, err, r.JSON)
			}
			id, _ := m["id"].(string)
			out[i] = append(out[i], parsed{typ: r.Type, id: id, raw: r.JSON, m: m})
		}
	}
	return out
}

// get walks a path of object keys and array indices ("code.coding.0.system").
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i := 0
			for _, c := range k {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path string) string { s, _ := get(v, path).(string); return s }

// codings returns "system|code" for every coding of the CodeableConcept at path.
func codings(v any, path string) []string {
	arr, _ := get(v, path+".coding").([]any)
	var out []string
	for _, c := range arr {
		out = append(out, str(c, "system")+"|"+str(c, "code"))
	}
	return out
}

func hasCoding(v any, path, system, code string) bool {
	for _, c := range codings(v, path) {
		if c == system+"|"+code {
			return true
		}
	}
	return false
}

func hasCategory(v any, code string) bool {
	arr, _ := get(v, "category").([]any)
	for _, c := range arr {
		if cs, ok := get(c, "coding").([]any); ok {
			for _, cd := range cs {
				if str(cd, "code") == code {
					return true
				}
			}
		}
	}
	return false
}

func effective(t testing.TB, r parsed) time.Time {
	t.Helper()
	s := str(r.m, "effectiveDateTime")
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s %s: effectiveDateTime %q: %v", r.typ, r.id, s, err)
	}
	return ts
}

func TestDeterminism(t *testing.T) {
	now := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		name      string
		a, b      Options
		wantEqual bool
	}{
		{"same seed", Options{Patients: 30, Seed: 7}, Options{Patients: 30, Seed: 7}, true},
		{"zero Now is the anchor", Options{Patients: 30, Seed: 7}, Options{Patients: 30, Seed: 7, Now: time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)}, true},
		{"same seed and Now", Options{Patients: 30, Seed: 7, Now: now}, Options{Patients: 30, Seed: 7, Now: now}, true},
		{"different seed", Options{Patients: 30, Seed: 7}, Options{Patients: 30, Seed: 8}, false},
		{"different Now", Options{Patients: 30, Seed: 7}, Options{Patients: 30, Seed: 7, Now: now}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dump := func(o Options) []byte {
				var buf bytes.Buffer
				err := New(o).Each(func(_ string, raw json.RawMessage) error {
					buf.Write(raw)
					buf.WriteByte('\n')
					return nil
				})
				if err != nil {
					t.Fatalf("Each: %v", err)
				}
				return buf.Bytes()
			}
			a, b := dump(tt.a), dump(tt.b)
			if got := bytes.Equal(a, b); got != tt.wantEqual {
				t.Errorf("outputs equal = %v, want %v", got, tt.wantEqual)
			}
		})
	}
}

func TestPatientIndependentOfDatasetSize(t *testing.T) {
	small, large := New(Options{Patients: 6, Seed: 3}), New(Options{Patients: 5000, Seed: 3})
	for i := range 6 {
		a, b := small.Patient(i), large.Patient(i)
		if len(a) != len(b) {
			t.Fatalf("Patient(%d) has %d resources in a small dataset, %d in a large one", i, len(a), len(b))
		}
		for k := range a {
			if !bytes.Equal(a[k], b[k]) {
				t.Fatalf("Patient(%d) resource %d differs between dataset sizes", i, k)
			}
		}
	}
}

var (
	idRE      = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	instantRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)
)

// timeKeys are the date and dateTime elements the generator writes; all must
// be on or before Now.
var timeKeys = map[string]bool{
	"lastUpdated": true, "effectiveDateTime": true, "issued": true, "authoredOn": true,
	"onsetDateTime": true, "abatementDateTime": true, "recordedDate": true, "occurrenceDateTime": true,
	"performedDateTime": true, "date": true, "start": true, "end": true, "birthDate": true, "creation": true,
}

// walk calls fn for every key/value pair in v, depth first.
func walk(v any, fn func(key string, val any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			fn(k, c)
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

func TestResourcesWellFormed(t *testing.T) {
	const n = 200
	g := New(Options{Patients: n, Seed: 42})
	all := decodeAll(t, g, n)
	known := map[string]bool{}
	for _, typ := range ResourceTypes {
		known[typ] = true
	}
	ids := map[string]bool{}
	for i, rs := range all {
		if rs[0].typ != "Patient" || rs[0].id != g.PatientID(i) {
			t.Fatalf("patient %d: first resource is %s/%s, want Patient/%s", i, rs[0].typ, rs[0].id, g.PatientID(i))
		}
		for _, r := range rs {
			if got := str(r.m, "resourceType"); got != r.typ || !known[got] {
				t.Fatalf("resourceType = %q, Resource.Type = %q", got, r.typ)
			}
			if !idRE.MatchString(r.id) {
				t.Errorf("%s id %q is not a valid FHIR id", r.typ, r.id)
			}
			key := r.typ + "/" + r.id
			if ids[key] {
				t.Errorf("duplicate id %s", key)
			}
			ids[key] = true
			if v := str(r.m, "meta.versionId"); v != "1" {
				t.Errorf("%s meta.versionId = %q, want \"1\"", key, v)
			}
			if lu := str(r.m, "meta.lastUpdated"); !instantRE.MatchString(lu) {
				t.Errorf("%s meta.lastUpdated = %q, want an instant with Z", key, lu)
			}
			walk(r.m, func(k string, v any) {
				s, ok := v.(string)
				if !ok || !timeKeys[k] {
					return
				}
				ts, err := time.Parse(time.RFC3339, s)
				if err != nil {
					ts, err = time.Parse(time.DateOnly, s)
				}
				if err != nil {
					t.Errorf("%s %s = %q does not parse: %v", key, k, s, err)
				} else if ts.After(g.Now()) && (r.typ != "MedicationRequest" || k != "end") {
					// A prescription's validity or dosage period may end
					// in the future; nothing else may.
					t.Errorf("%s %s = %s is after Now %s", key, k, s, g.Now())
				}
			})
			if r.typ == "Patient" {
				continue
			}
			ref := "subject.reference"
			if r.typ == "AllergyIntolerance" || r.typ == "Immunization" {
				ref = "patient.reference"
			}
			if got, want := str(r.m, ref), "Patient/"+g.PatientID(i); got != want {
				t.Errorf("%s %s = %q, want %q", key, ref, got, want)
			}
		}
	}
	// Every reference resolves within the dataset.
	refs := 0
	for _, rs := range all {
		for _, r := range rs {
			walk(r.m, func(k string, v any) {
				if s, ok := v.(string); ok && k == "reference" {
					refs++
					if !ids[s] {
						t.Errorf("%s/%s references %s, which is not in the dataset", r.typ, r.id, s)
					}
				}
			})
		}
	}
	if refs == 0 {
		t.Fatal("no references found")
	}
}

func countWhere(rs []parsed, typ string, pred func(parsed) bool) int {
	n := 0
	for _, r := range rs {
		if r.typ == typ && (pred == nil || pred(r)) {
			n++
		}
	}
	return n
}

func isLab(r parsed) bool   { return hasCategory(r.m, "laboratory") }
func isVital(r parsed) bool { return hasCategory(r.m, "vital-signs") }

func TestEdgeCases(t *testing.T) {
	g := New(Options{Patients: 10, Seed: 1})
	all := decodeAll(t, g, 10)
	twoYearsAgo := g.Now().AddDate(-2, 0, 0)
	recentLab := func(r parsed) bool { return isLab(r) && !effective(t, r).Before(twoYearsAgo) }
	tests := []struct {
		name  string
		index int
		check func(rs []parsed) string
	}{
		{"demo patient is rich", IndexDemo, func(rs []parsed) string {
			switch {
			case countWhere(rs, "Condition", nil) < 4:
				return "fewer than 4 conditions"
			case countWhere(rs, "AllergyIntolerance", nil) < 1:
				return "no allergies"
			case countWhere(rs, "Observation", recentLab) == 0:
				return "no recent labs"
			case countWhere(rs, "Procedure", nil) == 0:
				return "no procedures"
			}
			return ""
		}},
		{"no conditions", IndexNoConditions, func(rs []parsed) string {
			if n := countWhere(rs, "Condition", nil); n != 0 {
				return "has conditions"
			}
			return ""
		}},
		{"200+ medication requests", IndexManyMeds, func(rs []parsed) string {
			if n := countWhere(rs, "MedicationRequest", nil); n < 200 {
				return "fewer than 200 MedicationRequests"
			}
			return ""
		}},
		{"no labs in two years", IndexNoRecentLabs, func(rs []parsed) string {
			if n := countWhere(rs, "Observation", recentLab); n != 0 {
				return "has recent lab observations"
			}
			if n := countWhere(rs, "Observation", isLab); n == 0 {
				return "has no older lab observations either"
			}
			return ""
		}},
		{"a drug allergy as text only", IndexTextAllergy, func(rs []parsed) string {
			textOnly := func(r parsed) bool {
				code, _ := r.m["code"].(map[string]any)
				_, coded := code["coding"]
				cat, _ := r.m["category"].([]any)
				return code["text"] == "Keflex" && !coded && len(cat) == 1 && cat[0] == "medication"
			}
			if countWhere(rs, "AllergyIntolerance", textOnly) != 1 {
				return "no medication AllergyIntolerance with code.text only"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := tt.check(all[tt.index]); msg != "" {
				t.Errorf("Patient(%d): %s", tt.index, msg)
			}
		})
	}
}

func TestEveryPatientHasEncounterAndVitals(t *testing.T) {
	const n = 300
	all := decodeAll(t, New(Options{Patients: n, Seed: 9}), n)
	for i, rs := range all {
		if countWhere(rs, "Encounter", nil) == 0 {
			t.Errorf("Patient(%d) has no Encounter", i)
		}
		if countWhere(rs, "Observation", isVital) == 0 {
			t.Errorf("Patient(%d) has no vital-sign Observation", i)
		}
	}
}

// TestContentVariety checks that 100 patients contain every resource type and
// each kind of deliberately messy data the package documents.
func TestContentVariety(t *testing.T) {
	const n = 100
	all := decodeAll(t, New(Options{Patients: n, Seed: 1}), n)
	var flat []parsed
	for _, rs := range all {
		flat = append(flat, rs...)
	}
	for _, typ := range ResourceTypes {
		if countWhere(flat, typ, nil) == 0 {
			t.Errorf("no %s in %d patients", typ, n)
		}
	}
	const (
		loincSys = "http://loinc.org"
		icd      = "http://hl7.org/fhir/sid/icd-10-cm"
		sctSys   = "http://snomed.info/sct"
	)
	onlySystem := func(r parsed, path, system string) bool {
		cs := codings(r.m, path)
		return len(cs) > 0 && !slicesAny(cs, func(c string) bool { return !strings.HasPrefix(c, system+"|") })
	}
	stale := New(Options{}).Now().AddDate(-2, 0, 0)
	cases := []struct {
		name string
		typ  string
		pred func(parsed) bool
	}{
		{"condition with ICD-10-CM only", "Condition", func(r parsed) bool { return onlySystem(r, "code", icd) }},
		{"condition with SNOMED CT only", "Condition", func(r parsed) bool { return onlySystem(r, "code", sctSys) }},
		{"condition with both", "Condition", func(r parsed) bool { return len(codings(r.m, "code")) == 2 }},
		{"resolved condition with abatement", "Condition", func(r parsed) bool {
			return hasCoding(r.m, "clinicalStatus", "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved") && str(r.m, "abatementDateTime") != ""
		}},
		{"encounter-diagnosis", "Condition", func(r parsed) bool { return hasCategory(r.m, "encounter-diagnosis") }},
		{"in-progress encounter", "Encounter", func(r parsed) bool { return str(r.m, "status") == "in-progress" }},
		{"telehealth encounter", "Encounter", func(r parsed) bool { return str(r.m, "class.code") == "VR" }},
		{"inpatient encounter", "Encounter", func(r parsed) bool { return str(r.m, "class.code") == "IMP" }},
		{"emergency encounter", "Encounter", func(r parsed) bool { return str(r.m, "class.code") == "EMER" }},
		{"blood pressure panel with components", "Observation", func(r parsed) bool {
			return hasCoding(r.m, "code", loincSys, "85354-9") && str(r.m, "component.1.code.coding.0.code") == "8462-4"
		}},
		{"temperature in Cel", "Observation", func(r parsed) bool { return str(r.m, "valueQuantity.code") == "Cel" }},
		{"temperature in degF", "Observation", func(r parsed) bool { return str(r.m, "valueQuantity.code") == "[degF]" }},
		{"weight in lb", "Observation", func(r parsed) bool { return str(r.m, "valueQuantity.code") == "[lb_av]" }},
		{"height in inches", "Observation", func(r parsed) bool { return str(r.m, "valueQuantity.code") == "[in_i]" }},
		{"glucose in mmol/L", "Observation", func(r parsed) bool { return hasCoding(r.m, "code", loincSys, "15074-8") }},
		{"locally coded lab", "Observation", func(r parsed) bool { return onlySystem(r, "code", systemLocalLab) }},
		{"lab with code.text only", "Observation", func(r parsed) bool {
			return isLab(r) && len(codings(r.m, "code")) == 0 && str(r.m, "code.text") != ""
		}},
		{"high interpretation", "Observation", func(r parsed) bool { return str(r.m, "interpretation.0.coding.0.code") == "H" }},
		{"low interpretation", "Observation", func(r parsed) bool { return str(r.m, "interpretation.0.coding.0.code") == "L" }},
		{"valueCodeableConcept", "Observation", func(r parsed) bool { return get(r.m, "valueCodeableConcept") != nil }},
		{"valueString", "Observation", func(r parsed) bool { return get(r.m, "valueString") != nil }},
		{"valueBoolean", "Observation", func(r parsed) bool { return get(r.m, "valueBoolean") != nil }},
		{"NDC-only medication", "MedicationRequest", func(r parsed) bool { return onlySystem(r, "medicationCodeableConcept", "http://hl7.org/fhir/sid/ndc") }},
		{"stale active medication", "MedicationRequest", func(r parsed) bool {
			at, err := time.Parse(time.RFC3339, str(r.m, "authoredOn"))
			return err == nil && str(r.m, "status") == "active" && at.Before(stale)
		}},
		{"stopped medication", "MedicationRequest", func(r parsed) bool { return str(r.m, "status") == "stopped" }},
		{"medication with a dosage bounds period", "MedicationRequest", func(r parsed) bool {
			return str(r.m, "dosageInstruction.0.timing.repeat.boundsPeriod.end") != ""
		}},
		{"medication with a validity period", "MedicationRequest", func(r parsed) bool {
			return str(r.m, "dispenseRequest.validityPeriod.end") != ""
		}},
		{"structured lab report", "DiagnosticReport", func(r parsed) bool { return get(r.m, "result") != nil }},
		{"narrative report with presentedForm", "DiagnosticReport", func(r parsed) bool {
			data := str(r.m, "presentedForm.0.data")
			b, err := base64.StdEncoding.DecodeString(data)
			return get(r.m, "result") == nil && err == nil && strings.Contains(string(b), "IMPRESSION")
		}},
		{"document with base64 text", "DocumentReference", func(r parsed) bool {
			b, err := base64.StdEncoding.DecodeString(str(r.m, "content.0.attachment.data"))
			return err == nil && len(b) > 0 && str(r.m, "content.0.attachment.contentType") == "text/plain"
		}},
		{"race asked but not answered", "Patient", func(r parsed) bool { return strings.Contains(string(r.raw), `"ASKU"`) }},
		{"non-English language", "Patient", func(r parsed) bool { return str(r.m, "communication.0.language.coding.0.code") != "en" }},
		{"middle name", "Patient", func(r parsed) bool { a, _ := get(r.m, "name.0.given").([]any); return len(a) > 1 }},
		{"email", "Patient", func(r parsed) bool { return str(r.m, "telecom.1.system") == "email" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if countWhere(flat, c.typ, c.pred) == 0 {
				t.Errorf("no %s %q in %d patients", c.typ, c.name, n)
			}
		})
	}
	// Some patient records the same problem twice: ICD-10-CM only and SNOMED CT only.
	dup := 0
	for _, rs := range all {
		var icdOnly, sctOnly []string
		for _, r := range rs {
			if r.typ != "Condition" {
				continue
			}
			if onlySystem(r, "code", icd) {
				icdOnly = append(icdOnly, str(r.m, "code.coding.0.code"))
			}
			if onlySystem(r, "code", sctSys) {
				sctOnly = append(sctOnly, str(r.m, "code.coding.0.code"))
			}
		}
		for _, a := range icdOnly {
			for _, b := range sctOnly {
				if (a == "I10" && b == "38341003") || (a == "E11.9" && b == "44054006") || (a == "E78.5" && b == "55822004") {
					dup++
				}
			}
		}
	}
	if dup == 0 {
		t.Error("no patient has a condition duplicated as ICD-10-CM only and SNOMED CT only")
	}
}

func slicesAny(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}

func TestWriteNDJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	g := New(Options{Patients: 25, Seed: 5})
	counts, err := g.WriteNDJSON(dir)
	if err != nil {
		t.Fatalf("WriteNDJSON: %v", err)
	}
	want := map[string]int{}
	if err := g.Each(func(typ string, _ json.RawMessage) error { want[typ]++; return nil }); err != nil {
		t.Fatalf("Each: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if len(entries) != len(counts) {
		t.Errorf("%d files for %d types", len(entries), len(counts))
	}
	for typ, n := range counts {
		if want[typ] != n {
			t.Errorf("counts[%q] = %d, want %d", typ, n, want[typ])
		}
		f, err := os.Open(filepath.Join(dir, typ+".ndjson"))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		lines := 0
		for sc.Scan() {
			lines++
			var h struct{ ResourceType string }
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.ResourceType != typ {
				t.Errorf("%s.ndjson line %d: resourceType %q, err %v", typ, lines, h.ResourceType, err)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("scan %s: %v", typ, err)
		}
		if lines != n {
			t.Errorf("%s.ndjson has %d lines, counts say %d", typ, lines, n)
		}
	}
}

func TestWriteNDJSONBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Patients: 1}).WriteNDJSON(filepath.Join(file, "sub")); err == nil {
		t.Error("WriteNDJSON under a regular file: got nil error")
	}
}

func TestEachStopsAtFirstError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := New(Options{Patients: 5, Seed: 1}).Each(func(string, json.RawMessage) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Each = %v after %d calls, want %v after 3", err, calls, stop)
	}
}

func TestPatientID(t *testing.T) {
	g := New(Options{Patients: 1})
	tests := []struct {
		i    int
		want string
	}{{0, "p00000"}, {42, "p00042"}, {99999, "p99999"}, {123456, "p123456"}}
	for _, tt := range tests {
		if got := g.PatientID(tt.i); got != tt.want {
			t.Errorf("PatientID(%d) = %q, want %q", tt.i, got, tt.want)
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	tests := []string{"plain", `quo"te`, `back\slash`, "tab\tnew\nline", "ctl\x01", "O'Brien", "°F é 中文", "bad\xffutf8"}
	for _, in := range tests {
		got := appendQuoted(nil, in)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendQuoted(%q) = %s, not valid JSON: %v", in, got, err)
			continue
		}
		want := strings.ToValidUTF8(in, "\ufffd")
		if back != want {
			t.Errorf("appendQuoted(%q) round-trips to %q, want %q", in, back, want)
		}
	}
}

func BenchmarkPatient(b *testing.B) {
	g := New(Options{Patients: 10000, Seed: 1})
	resources, bytes := 0, 0
	i := 0
	for b.Loop() {
		for _, r := range g.Patient(i % 10000) {
			bytes += len(r)
			resources++
		}
		i++
	}
	b.ReportMetric(float64(resources)/b.Elapsed().Seconds(), "resources/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/patient")
}

// TestGolden pins the exact bytes of the demo patient so that any change to
// the output is deliberate. Run with -update after an intended change.
func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, raw := range New(Options{Patients: 1, Seed: 1}).Patient(IndexDemo) {
		buf.Write(raw)
		buf.WriteByte('\n')
	}
	golden.Check(t, filepath.Join("testdata", "seed1-patient0.ndjson"), buf.Bytes())
}

func TestConcurrentUse(t *testing.T) {
	g := New(Options{Patients: 16, Seed: 2})
	want := make([][]json.RawMessage, 16)
	for i := range want {
		want[i] = g.Patient(i)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := range 16 {
		wg.Go(func() {
			got := g.Patient(i)
			for k := range got {
				if !bytes.Equal(got[k], want[i][k]) {
					errs <- g.PatientID(i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for id := range errs {
		t.Errorf("concurrent generation of %s differs from sequential", id)
	}
}
