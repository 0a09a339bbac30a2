package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ehrgate/normalize"
)

// TestChartShowsCalculatedBMI: a source that recorded weight and height but
// no BMI gets a BMI on the chart, marked as calculated, not as recorded.
func TestChartShowsCalculatedBMI(t *testing.T) {
	f := fixture()
	for id, raw := range map[string]string{
		"o-wt": `{"resourceType":"Observation","id":"o-wt","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}]},"subject":{"reference":"Patient/` + adaID + `"},
			"effectiveDateTime":"2025-06-01T10:00:00Z","valueQuantity":{"value":154,"unit":"lb","system":"http://unitsofmeasure.org","code":"[lb_av]"}}`,
		"o-ht": `{"resourceType":"Observation","id":"o-ht","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body height"}]},"subject":{"reference":"Patient/` + adaID + `"},
			"effectiveDateTime":"2025-06-01T10:00:00Z","valueQuantity":{"value":170,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`,
	} {
		n, err := normalize.Normalize(normalize.Ref{Connection: connEpic, Type: "Observation", ID: id}, []byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		f.add(connEpic, "Observation", id, adaID, n)
	}
	srv := httptest.NewServer(newDashboard(f).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/patients/" + connEpic + "/" + adaID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	i := strings.Index(page, `id="vitals"`)
	if i < 0 {
		t.Fatal("no vitals section")
	}
	vitals := page[i:]
	if j := strings.Index(vitals, "</section>"); j > 0 {
		vitals = vitals[:j]
	}
	// 154 lb = 69.85 kg; 170 cm → BMI 24.2.
	if !strings.Contains(vitals, "24.2") || !strings.Contains(vitals, "calculated by ehrgate") {
		t.Errorf("vitals lack a calculated BMI of 24.2:\n%s", vitals)
	}
}

// TestChartFlagsStaleMedications: an order still "active" in the EHR but
// untouched for years is shown and flagged, not dropped.
func TestChartFlagsStaleMedications(t *testing.T) {
	f := fixture()
	f.add(connEpic, "MedicationRequest", "m-old", adaID, normalize.MedicationRequest{Common: normalize.Common{PatientID: adaID},
		Active: true, Status: "active", Stale: true, StaleReason: "no activity since 2019-03-01",
		Medication: normalize.Concept{Text: "Warfarin 5 mg tablet"}, AuthoredOn: "2019-03-01"})
	srv := httptest.NewServer(newDashboard(f).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/patients/" + connEpic + "/" + adaID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := sectionHTML(t, string(b), "medications")
	i := strings.Index(page, "Warfarin")
	if i < 0 {
		t.Fatal("the stale active order is not shown")
	}
	row := page[i:]
	if j := strings.Index(row, "</tr>"); j > 0 {
		row = row[:j]
	}
	if !strings.Contains(row, "Possibly stale") || !strings.Contains(row, "no activity since 2019-03-01") {
		t.Errorf("stale order row lacks the flag and reason:\n%s", row)
	}
}
