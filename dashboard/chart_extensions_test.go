package dashboard_test

import (
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "ehrgate/ehr" // registers the vendor profiles' extensions with normalize
	"ehrgate/normalize"
	"ehrgate/store"
	"ehrgate/synth"
)

// TestChartHeaderShowsExtensions: a synthetic patient with US Core race,
// ethnicity and birth sex, and Epic's legal-sex and sex-for-clinical-use
// extensions (as the simulator's Epic personality sends them), normalized by
// the real normalizer, shows all of them in the model and the chart header.
func TestChartHeaderShowsExtensions(t *testing.T) {
	g := synth.New(synth.Options{Patients: 1, Seed: 7, Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	var pat map[string]any
	if err := json.Unmarshal(g.Patient(0)[0], &pat); err != nil {
		t.Fatal(err)
	}
	exts, _ := pat["extension"].([]any)
	for _, u := range []string{"legal-sex", "sex-for-clinical-use"} {
		exts = append(exts, map[string]any{"url": "http://open.epic.com/FHIR/StructureDefinition/extension/" + u,
			"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.10.698084.130.657370.19999000", "code": pat["gender"], "display": pat["gender"]}}}})
	}
	exts = append(exts, map[string]any{"url": "urn:example:nobody-knows", "valueString": "x"})
	pat["extension"] = exts
	raw, _ := json.Marshal(pat)
	res, err := normalize.Normalize(normalize.Ref{Connection: connEpic, Type: "Patient"}, raw)
	if err != nil {
		t.Fatal(err)
	}
	p := res.(*normalize.Patient)
	gender := pat["gender"].(string)
	if p.Race == "" || p.Ethnicity == "" || p.BirthSex == "" {
		t.Fatalf("model lacks US Core race/ethnicity/birth sex: %+v", p)
	}
	var names []string
	for _, e := range p.Extensions {
		names = append(names, e.Name+"="+e.Value+"/"+e.Source)
	}
	if got, want := strings.Join(names, ","), "legalSex="+gender+"/Epic,sexForClinicalUse="+gender+"/Epic"; got != want {
		t.Errorf("model extensions = %s, want %s", got, want)
	}
	if len(p.UnknownExtensions) != 1 || p.UnknownExtensions[0] != "urn:example:nobody-knows" {
		t.Errorf("UnknownExtensions = %v", p.UnknownExtensions)
	}

	f := newFakeStore()
	f.recs[[3]string{connEpic, "Patient", p.Source.ID}] = store.Record{
		Key: store.Key{Connection: connEpic, Type: "Patient", ID: p.Source.ID, VersionID: "1"}, PatientID: p.Source.ID,
		Normalized: mustJSON(p), Raw: raw,
	}
	resp, body := get(t, newDashboard(f).Handler(), "/patients/"+connEpic+"/"+p.Source.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chart status = %d", resp.StatusCode)
	}
	banner := body[:strings.Index(body, `<nav class="toc"`)]
	for _, want := range []string{
		"<dt>Race</dt><dd>" + html.EscapeString(p.Race) + "</dd>",
		"<dt>Ethnicity</dt><dd>" + html.EscapeString(p.Ethnicity) + "</dd>",
		"<dt>Birth sex</dt><dd>",
		`<dt>Legal sex</dt><dd>` + gender + ` <span class="muted">(Epic)</span></dd>`,
		`<dt>Sex for clinical use</dt><dd>` + gender + ` <span class="muted">(Epic)</span></dd>`,
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("chart header lacks %s", want)
		}
	}
	if strings.Contains(body, "nobody-knows") {
		t.Errorf("the chart shows an extension nobody understands")
	}
}
