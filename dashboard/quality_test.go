package dashboard_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"ehrgate/normalize"
	"ehrgate/store"
)

// scanFake adds store.PagedScanner to fakeStore, over raw bytes.
type scanFake struct{ *fakeStore }

func (s scanFake) ScanCurrentPage(_ context.Context, q store.ScanQuery) ([]store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []store.Record
	for _, r := range s.recs {
		if q.Connection == "" || r.Connection == q.Connection {
			all = append(all, r)
		}
	}
	key := func(r store.Record) string { return r.Connection + "\x00" + r.Type + "\x00" + r.ID }
	slices.SortFunc(all, func(a, b store.Record) int { return strings.Compare(key(a), key(b)) })
	after := q.After.Connection + "\x00" + q.After.Type + "\x00" + q.After.ID
	var out []store.Record
	for _, r := range all {
		if q.After != (store.Key{}) && key(r) <= after {
			continue
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (s scanFake) addRaw(conn, typ, id, raw string) {
	s.recs[[3]string{conn, typ, id}] = store.Record{Key: store.Key{Connection: conn, Type: typ, ID: id, VersionID: "1"}, Raw: []byte(raw)}
}

func qualityFixture() scanFake {
	s := scanFake{newFakeStore()}
	obs := func(id, code, text string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","category":[{"text":"lab"}],"code":{"coding":[{"system":"urn:oid:1.2.3","code":"` + code + `","display":"` + text + `"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024","valueString":"x"}`
	}
	s.addRaw("epic", "Observation", "o1", obs("o1", "X9", "Special <Assay>"))
	s.addRaw("epic", "Observation", "o2", obs("o2", "X9", "Special <Assay>"))
	s.addRaw("epic", "Observation", "o3", obs("o3", "K1", "Potassium Lvl"))
	s.addRaw("epic", "MedicationRequest", "m1", `{"resourceType":"MedicationRequest","id":"m1","status":"active","intent":"order","medicationCodeableConcept":{"text":"Old pill"},"subject":{"reference":"Patient/p1"},"authoredOn":"2001-01-01"}`)
	s.addRaw("cerner", "Patient", "p1", `{"resourceType":"Patient","id":"p1","extension":[{"url":"https://fhir-ehr.cerner.com/r4/StructureDefinition/mystery-<x>","valueString":"v"}]}`)
	s.addRaw("cerner", "Patient", "p2", `{"resourceType":"Patient","id":"p2","extension":[{"url":"https://fhir-ehr.cerner.com/r4/StructureDefinition/mystery-<x>","valueString":"w"}]}`)
	return s
}

func TestQualityPage(t *testing.T) {
	h := newDashboard(qualityFixture()).Handler()
	res, body := get(t, h, "/quality")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /quality = %d", res.StatusCode)
	}
	for _, want := range []string{
		`aria-current="page">Data quality`,
		"Special &lt;Assay&gt;",                        // escaped source text
		`href="/quality/unmapped.csv?connection=epic"`, // one-click export
		"us-core-patient-identifier",
		"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient",
		"Stale medications</dt><dd>1</dd>",
		"Without LOINC</dt><dd>2</dd>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /quality lacks %q", want)
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", res.Header.Get("Cache-Control"))
	}
	_, body = get(t, h, "/quality?connection=cerner")
	if strings.Contains(body, "Special") || !strings.Contains(body, "cerner") {
		t.Errorf("GET /quality?connection=cerner shows other connections")
	}
	// The extension nobody understands is listed by URL (escaped) with its
	// frequency; its value never is.
	row := `<tr><th scope="row">2</th><td>Patient</td><td class="url">https://fhir-ehr.cerner.com/r4/StructureDefinition/mystery-&lt;x&gt;</td></tr>`
	if !strings.Contains(body, row) || !strings.Contains(body, "Unknown extensions</dt><dd>2 ") {
		t.Errorf("GET /quality?connection=cerner lacks the unknown extension row %s", row)
	}
}

func TestQualityCSV(t *testing.T) {
	h := newDashboard(qualityFixture()).Handler()
	res, body := get(t, h, "/quality/unmapped.csv?connection=epic")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("GET unmapped.csv = %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if got := res.Header.Get("Content-Disposition"); got != `attachment; filename="unmapped-epic.csv"` {
		t.Errorf("Content-Disposition = %q", got)
	}
	want := "connection,source_system,source_code,source_display,count,target_system,target_code,target_display\n" +
		"epic,urn:oid:1.2.3,X9,Special <Assay>,2,,,\n"
	if body != want {
		t.Errorf("unmapped.csv = %q, want %q", body, want)
	}
}

func TestQualityWithoutScanner(t *testing.T) {
	h := newDashboard(fixture()).Handler()
	res, body := get(t, h, "/quality")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "cannot be scanned") {
		t.Errorf("GET /quality on a store without scanning = %d", res.StatusCode)
	}
	if res, _ := get(t, h, "/quality/unmapped.csv"); res.StatusCode != http.StatusNotImplemented {
		t.Errorf("GET unmapped.csv without scanning = %d, want 501", res.StatusCode)
	}
}

// TestChartMergesDuplicateProblems: one problem coded in SNOMED CT and in
// ICD-10-CM is one row of Active problems.
func TestChartMergesDuplicateProblems(t *testing.T) {
	f := fixture()
	c := normalize.Common{PatientID: adaID}
	htn := func(id, system, code, text string) normalize.Condition {
		cc := c
		cc.Source = normalize.Ref{Connection: connEpic, Type: "Condition", ID: id}
		return normalize.Condition{Common: cc, Active: true, ClinicalStatus: "active", Onset: "2015-01-01",
			Code: normalize.Concept{System: system, Code: code, Text: text, Standard: true}}
	}
	f.add(connEpic, "Condition", "h1", adaID, htn("h1", "http://snomed.info/sct", "38341003", "Hypertension"))
	f.add(connEpic, "Condition", "h2", adaID, htn("h2", "http://hl7.org/fhir/sid/icd-10-cm", "I10", "Essential hypertension"))
	_, body := get(t, newDashboard(f).Handler(), "/patients/sim-epic/"+adaID)
	sec := sectionHTML(t, body, "problems")
	if n := strings.Count(sec, "ypertension"); n != 1 {
		t.Errorf("problems section names hypertension %d times, want once:\n%s", n, sec)
	}
	if !strings.Contains(sec, "2 duplicate entries merged") { // the fixture already has one hypertension
		t.Errorf("problems section does not say a duplicate was merged:\n%s", sec)
	}
}
