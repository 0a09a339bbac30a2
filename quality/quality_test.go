package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"ehrgate/internal/golden"

	"github.com/google/go-cmp/cmp"

	"ehrgate/normalize"
	"ehrgate/store"
	"ehrgate/terminology"
)

var testClock = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

func testNormalizer() *normalize.Normalizer {
	return normalize.New(normalize.WithClock(func() time.Time { return testClock }))
}

// TestCheckGolden runs Check over the normalize package's synthetic edge
// cases and compares the findings with testdata/golden/findings.json.
func TestCheckGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "normalize", "testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]Finding{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if strings.HasPrefix(name, "bad-") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		findings, _, err := Check(testNormalizer(), normalize.Ref{Connection: "test"}, raw)
		if err != nil {
			t.Fatalf("Check(%s): %v", name, err)
		}
		got[name] = findings
	}
	b, _ := json.MarshalIndent(got, "", "  ")
	b = append(b, '\n')
	golden.Check(t, filepath.Join("testdata", "golden", "findings.json"), b)
}

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		k := f.Kind
		if f.Rule != "" {
			k = f.Rule
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRules asserts the decisions directly, so a careless -update cannot
// bless a wrong golden file.
func TestRules(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []string // finding kinds or rule ids, sorted; info findings excluded
	}{
		{"patient ok", `{"resourceType":"Patient","id":"p","identifier":[{"system":"s","value":"1"}],"name":[{"family":"F"}],"gender":"female"}`, nil},
		{"patient missing", `{"resourceType":"Patient","id":"p","gender":"F"}`,
			[]string{"us-core-patient-gender-binding", "us-core-patient-identifier", "us-core-patient-identifier-system", "us-core-patient-identifier-value", "us-core-patient-name"}},
		{"condition bad clinical status", `{"resourceType":"Condition","id":"c","category":[{"text":"x"}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"subject":{"reference":"Patient/p"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"current"}]}}`,
			[]string{"us-core-condition-clinicalstatus-binding"}},
		{"condition unmapped", `{"resourceType":"Condition","id":"c","category":[{"text":"x"}],"code":{"coding":[{"system":"urn:local","code":"HTN"}]},"subject":{"reference":"Patient/p"}}`,
			[]string{"unmapped-code"}},
		{"observation no loinc", `{"resourceType":"Observation","id":"o","status":"final","category":[{"text":"x"}],"code":{"text":"Vancomycin Trough"},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2024","valueString":"x"}`,
			[]string{"missing-loinc", "unmapped-code"}},
		{"observation text mapped", `{"resourceType":"Observation","id":"o","status":"final","category":[{"text":"x"}],"code":{"text":"Sodium Lvl"},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2024","valueString":"x"}`, nil},
		{"observation bad status", `{"resourceType":"Observation","id":"o","status":"done","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p"}}`,
			[]string{"us-core-observation-category", "us-core-observation-status-binding"}},
		{"medication stale ndc", `{"resourceType":"MedicationRequest","id":"m","status":"active","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/ndc","code":"0000-0000-00"}]},"subject":{"reference":"Patient/p"},"requester":{"reference":"Practitioner/x"},"authoredOn":"2020-01-01"}`,
			[]string{"missing-rxnorm", "stale-medication", "unmapped-code"}},
		{"procedure completed without performed", `{"resourceType":"Procedure","id":"x","status":"completed","code":{"coding":[{"system":"http://snomed.info/sct","code":"80146002"}]},"subject":{"reference":"Patient/p"}}`,
			[]string{"us-core-procedure-performed"}},
		{"procedure not done without performed", `{"resourceType":"Procedure","id":"x","status":"not-done","code":{"coding":[{"system":"http://snomed.info/sct","code":"80146002"}]},"subject":{"reference":"Patient/p"}}`, nil},
		{"docref no data or url", `{"resourceType":"DocumentReference","id":"d","status":"current","type":{"text":"x"},"category":[{"text":"c"}],"subject":{"reference":"Patient/p"},"content":[{"attachment":{"contentType":"text/plain"}}],"date":"2024"}`,
			[]string{"us-core-documentreference-data-or-url"}},
		{"immunization", `{"resourceType":"Immunization","id":"i","status":"done","vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"150"}]},"patient":{"reference":"Patient/p"}}`,
			[]string{"us-core-immunization-occurrence", "us-core-immunization-primarysource", "us-core-immunization-status-binding"}},
		{"other type", `{"resourceType":"CarePlan","id":"x"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, _, err := Check(testNormalizer(), normalize.Ref{Connection: "c"}, []byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			var notInfo []Finding
			for _, f := range fs {
				if f.Severity != SeverityInfo {
					notInfo = append(notInfo, f)
				}
				if f.Kind == KindProfile && (f.Profile == "" || !strings.HasPrefix(f.Profile, "http://hl7.org/fhir/us/core/StructureDefinition/")) {
					t.Errorf("finding %+v does not cite its US Core profile", f)
				}
			}
			if diff := cmp.Diff(tc.want, kinds(notInfo)); diff != "" {
				t.Errorf("Check(%s) findings mismatch (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

func TestFindingsNeverCarryValues(t *testing.T) {
	raw := `{"resourceType":"Patient","id":"p","identifier":[{"value":"MRN-SECRET-123"}],"name":[{"family":"Secretname"}],"gender":"SECRETGENDER","birthDate":"1970-01-01"}`
	fs, _, err := Check(testNormalizer(), normalize.Ref{Connection: "c"}, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(fs)
	for _, secret := range []string{"MRN-SECRET-123", "Secretname", "SECRETGENDER", "1970-01-01"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("findings contain the value %q: %s", secret, b)
		}
	}
}

func TestRulesData(t *testing.T) {
	for _, typ := range []string{"Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
		"AllergyIntolerance", "Immunization", "Procedure", "DiagnosticReport", "DocumentReference"} {
		if len(Rules(typ)) == 0 {
			t.Errorf("no US Core rules for %s", typ)
		}
	}
	if _, err := parseRules([]byte(`{"profiles":[{"type":"X","profile":"u","rules":[{"id":"a","path":"p","min":1,"mustSupport":true}]}]}`)); err == nil {
		t.Errorf("a rule with two kinds was accepted")
	}
}

// TestConformance checks the official US Core examples in the shared
// fixtures: they must give no error-severity profile findings (they are the
// profile authors' own conformant examples), so this guards the rules data
// against encoding a constraint US Core does not have.
func TestConformance(t *testing.T) {
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "fhir", "examples", "us-core", "*.json"))
	if len(files) == 0 {
		t.Skipf("US Core examples not found under %s (set EHRGATE_FIXTURES)", dir)
	}
	// Rules the fixtures' US Core version does not share with 6.1.0, which
	// the rules encode.
	ignore := map[string]string{
		"us-core-patient-gender": "the examples come from the US Core 9.0.0 source, whose Patient examples omit gender; 6.1.0 has Patient.gender 1..1",
	}
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(raw, &h) != nil || len(Rules(h.ResourceType)) == 0 {
			continue
		}
		fs, err := CheckProfile(normalize.Ref{Type: h.ResourceType, ID: filepath.Base(f)}, raw)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		checked++
		for _, fd := range fs {
			if _, ok := ignore[fd.Rule]; !ok && fd.Severity == SeverityError {
				t.Errorf("%s: US Core example fails %s (%s)", filepath.Base(f), fd.Rule, fd.Message)
			}
		}
	}
	t.Logf("checked %d US Core examples", checked)
}

// pagedFake is an in-memory store.PagedScanner.
type pagedFake struct{ recs []store.Record }

func (p *pagedFake) ScanCurrentPage(_ context.Context, q store.ScanQuery) ([]store.Record, error) {
	var out []store.Record
	for _, r := range p.recs {
		k := r.Key
		a := q.After
		if k.Connection < a.Connection || k.Connection == a.Connection && (k.Type < a.Type || k.Type == a.Type && k.ID <= a.ID) {
			continue
		}
		if q.Connection != "" && k.Connection != q.Connection {
			continue
		}
		out = append(out, r)
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func TestBuildAndTemplate(t *testing.T) {
	obs := func(id, code, text string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","category":[{"text":"lab"}],"code":{"coding":[{"system":"urn:oid:1.2.3","code":"` + code + `","display":"` + text + `"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2024","valueString":"x"}`
	}
	var recs []store.Record
	add := func(conn, typ, id, raw string) {
		recs = append(recs, store.Record{Key: store.Key{Connection: conn, Type: typ, ID: id, VersionID: "1"}, Raw: []byte(raw)})
	}
	add("a", "MedicationRequest", "m1", `{"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order","medicationCodeableConcept":{"text":"Lisinopril"},"subject":{"reference":"Patient/p"},"authoredOn":"2019-01-01"}`)
	add("a", "Observation", "o1", obs("o1", "V1", "Vancomycin Trough"))
	add("a", "Observation", "o2", obs("o2", "V1", "Vancomycin Trough"))
	add("a", "Observation", "o3", obs("o3", "L9", "Lithium Lvl"))
	add("a", "Observation", "o4", obs("o4", "N1", "Sodium Lvl"))
	add("a", "Observation", "o5", `not json`)
	add("b", "Observation", "o1", obs("o1", "L9", "Lithium Lvl"))
	rep, err := Build(context.Background(), &pagedFake{recs}, testNormalizer(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Connections) != 2 {
		t.Fatalf("report has %d connections, want 2", len(rep.Connections))
	}
	a := rep.Connections[0]
	got := []any{a.Connection, a.Resources, a.Failed, a.MissingLOINC, a.MissingRxNorm, a.StaleMedications, len(a.Unmapped), a.Unmapped[0].Code, a.Unmapped[0].Count}
	want := []any{"a", 6, 1, 3, 1, 1, 3, "V1", 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Build() connection a mismatch (-want +got):\n%s", diff)
	}
	only, err := Build(context.Background(), &pagedFake{recs}, testNormalizer(), "b")
	if err != nil || len(only.Connections) != 1 || only.Connections[0].Connection != "b" {
		t.Errorf("Build(connection b) = %+v, %v", only, err)
	}
	rows := rep.MapTemplate()
	var buf bytes.Buffer
	if err := terminology.WriteLocalMap(&buf, rows); err != nil {
		t.Fatal(err)
	}
	wantCSV := "connection,source_system,source_code,source_display,count,target_system,target_code,target_display\n" +
		"a,urn:oid:1.2.3,V1,Vancomycin Trough,2,,,\n" +
		"a,urn:oid:1.2.3,L9,Lithium Lvl,1,,,\n" +
		"b,urn:oid:1.2.3,L9,Lithium Lvl,1,,,\n"
	if diff := cmp.Diff(wantCSV, buf.String()); diff != "" {
		t.Errorf("template mismatch (-want +got):\n%s", diff)
	}
	// The template loads as a map with nothing mapped yet.
	parsed, err := terminology.ParseLocalMap(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := terminology.NewLocalMap(parsed); err != nil || m.Len() != 0 {
		t.Errorf("template as a map: %v, %v", m, err)
	}
}

func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "normalize", "testdata", "*.json"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	n := testNormalizer()
	f.Fuzz(func(t *testing.T, raw []byte) {
		fs, _, err := Check(n, normalize.Ref{Connection: "c"}, raw)
		if err != nil {
			return
		}
		for _, fd := range fs {
			if fd.Kind == "" || fd.Severity == "" || fd.Message == "" {
				t.Fatalf("incomplete finding %+v", fd)
			}
		}
	})
}

func TestBuildCountsUnknownExtensions(t *testing.T) {
	pat := func(id string, urls ...string) store.Record {
		var exts []string
		for _, u := range urls {
			exts = append(exts, `{"url":"`+u+`","valueString":"v"}`)
		}
		raw := `{"resourceType":"Patient","id":"` + id + `","extension":[` + strings.Join(exts, ",") + `]}`
		return store.Record{Key: store.Key{Connection: "a", Type: "Patient", ID: id, VersionID: "1"}, Raw: []byte(raw)}
	}
	recs := []store.Record{
		pat("p1", "urn:x:mystery", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"),
		pat("p2", "urn:x:mystery", "urn:x:rare"),
		pat("p3", "urn:x:mystery", "urn:x:mystery"), // counted once per resource
	}
	rep, err := Build(context.Background(), &pagedFake{recs}, testNormalizer(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []UnknownExtension{{Type: "Patient", URL: "urn:x:mystery", Count: 3}, {Type: "Patient", URL: "urn:x:rare", Count: 1}}
	if d := cmp.Diff(want, rep.Connections[0].UnknownExtensions); d != "" {
		t.Errorf("UnknownExtensions (-want +got):\n%s", d)
	}
}
