package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"ehrgate/normalize"
	"ehrgate/store"
)

// fiveYearID is the patient of the render benchmark.
const fiveYearID = "p-5y"

// fiveYearStore holds five years of one patient's chart, every resource
// normalized from raw FHIR by the real normalizer: a visit every two weeks
// (130 visits) with blood pressure, heart rate, respiratory rate,
// temperature (°F or °C), SpO2 and weight (lb or kg), a height every
// year, fifteen labs every month (glucose in mg/dL or mmol/L), ten drugs
// renewed every month and the 130 encounters: about 2,500 resources.
func fiveYearStore(tb testing.TB) *fakeStore {
	tb.Helper()
	f := fixture()
	f.addPatient(connEpic, fiveYearID, normalize.Patient{Name: "Five Years", BirthDate: "1960-01-01", MRN: "MRN-5"})
	start := time.Date(2021, 11, 1, 9, 0, 0, 0, time.UTC)
	fetchedAt := now.Add(-3 * time.Hour)
	n := 0
	put := func(typ, id string, raw []byte) {
		tb.Helper()
		res, err := normalize.Normalize(normalize.Ref{Connection: connEpic, Type: typ, ID: id}, raw)
		if err != nil {
			tb.Fatalf("normalizing %s/%s: %v", typ, id, err)
		}
		f.add(connEpic, typ, id, fiveYearID, res)
		k := [3]string{connEpic, typ, id}
		rec := f.recs[k]
		rec.FetchedAt = fetchedAt
		f.recs[k] = rec
		n++
	}
	obs := func(id, cat, loinc, display string, at time.Time, v float64, unit, ucum, ref string) []byte {
		s := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",`+
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],`+
			`"code":{"coding":[{"system":"http://loinc.org","code":%q,"display":%q}]},"subject":{"reference":"Patient/%s"},`+
			`"effectiveDateTime":%q,"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}`,
			id, cat, loinc, display, fiveYearID, at.Format(time.RFC3339), v, unit, ucum)
		if ref != "" {
			s += `,"referenceRange":[{"text":` + mustQuote(ref) + `}]`
		}
		return []byte(s + "}")
	}
	for i := range 130 {
		at := start.Add(time.Duration(i) * 14 * 24 * time.Hour)
		w := float64(i % 7)
		id := func(k string) string { return fmt.Sprintf("v%03d-%s", i, k) }
		put("Encounter", id("enc"), fmt.Appendf(nil, `{"resourceType":"Encounter","id":%q,"status":"finished",`+
			`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"type":[{"text":"Office visit"}],`+
			`"subject":{"reference":"Patient/%s"},"period":{"start":%q,"end":%q}}`,
			id("enc"), fiveYearID, at.Format(time.RFC3339), at.Add(40*time.Minute).Format(time.RFC3339)))
		put("Observation", id("bp"), fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"status":"final",`+
			`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`+
			`"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/%s"},"effectiveDateTime":%q,`+
			`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},`+
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
			id("bp"), fiveYearID, at.Format(time.RFC3339), 120+3*w, 76+2*w))
		put("Observation", id("hr"), obs(id("hr"), "vital-signs", "8867-4", "Heart rate", at, 64+2*w, "/min", "/min", ""))
		put("Observation", id("rr"), obs(id("rr"), "vital-signs", "9279-1", "Respiratory rate", at, 14+w/2, "/min", "/min", ""))
		if i%2 == 0 {
			put("Observation", id("temp"), obs(id("temp"), "vital-signs", "8310-5", "Body temperature", at, 98.1+w/10, "degF", "[degF]", ""))
			put("Observation", id("wt"), obs(id("wt"), "vital-signs", "29463-7", "Body weight", at, 176+w, "lb", "[lb_av]", ""))
		} else {
			put("Observation", id("temp"), obs(id("temp"), "vital-signs", "8310-5", "Body temperature", at, 36.7+w/20, "Cel", "Cel", ""))
			put("Observation", id("wt"), obs(id("wt"), "vital-signs", "29463-7", "Body weight", at, 80+w/2, "kg", "kg", ""))
		}
		put("Observation", id("spo2"), obs(id("spo2"), "vital-signs", "59408-5", "Oxygen saturation", at, 95+w/2, "%", "%", ""))
		if i%26 == 0 {
			put("Observation", id("ht"), obs(id("ht"), "vital-signs", "8302-2", "Body height", at, 172, "cm", "cm", ""))
		}
	}
	labs := []struct{ loinc, name, unit, ucum, ref string }{
		{"2345-7", "Glucose", "mg/dL", "mg/dL", "70–99 mg/dL"}, {"2160-0", "Creatinine", "mg/dL", "mg/dL", "0.6–1.3 mg/dL"},
		{"33914-3", "eGFR", "mL/min/{1.73_m2}", "mL/min/{1.73_m2}", "≥60 mL/min/{1.73_m2}"}, {"2823-3", "Potassium", "mmol/L", "mmol/L", "3.5–5.1 mmol/L"},
		{"2951-2", "Sodium", "mmol/L", "mmol/L", "136–145 mmol/L"}, {"4548-4", "Hemoglobin A1c", "%", "%", "4.0–5.6 %"},
		{"13457-7", "LDL cholesterol", "mg/dL", "mg/dL", "≤99 mg/dL"}, {"2093-3", "Cholesterol", "mg/dL", "mg/dL", "≤200 mg/dL"},
		{"2085-9", "HDL cholesterol", "mg/dL", "mg/dL", "≥40 mg/dL"}, {"2571-8", "Triglycerides", "mg/dL", "mg/dL", "≤150 mg/dL"},
		{"6301-6", "INR", "", "{INR}", "0.9–1.1"}, {"718-7", "Hemoglobin", "g/dL", "g/dL", "12.0–15.5 g/dL"},
		{"6690-2", "WBC", "10*3/uL", "10*3/uL", "4.5–11.0 10*3/uL"}, {"777-3", "Platelets", "10*3/uL", "10*3/uL", "150–450 10*3/uL"},
		{"3016-3", "TSH", "mIU/L", "m[IU]/L", "0.4–4.0 mIU/L"},
	}
	for m := range 60 {
		at := start.AddDate(0, m, 3)
		for j, l := range labs {
			v := 1.0 + float64((m*7+j*3)%11)/10
			if l.loinc == "2345-7" && m%3 == 0 {
				put("Observation", fmt.Sprintf("l%02d-%02d", m, j), obs(fmt.Sprintf("l%02d-%02d", m, j), "laboratory", l.loinc, l.name, at, 5.2*v, "mmol/L", "mmol/L", ""))
				continue
			}
			put("Observation", fmt.Sprintf("l%02d-%02d", m, j), obs(fmt.Sprintf("l%02d-%02d", m, j), "laboratory", l.loinc, l.name, at, 50*v, l.unit, l.ucum, l.ref))
		}
		for d := range 10 {
			status := "active"
			if m < 59 {
				status = "completed"
			}
			id := fmt.Sprintf("m%02d-%02d", m, d)
			put("MedicationRequest", id, fmt.Appendf(nil, `{"resourceType":"MedicationRequest","id":%q,"status":%q,"intent":"order",`+
				`"medicationCodeableConcept":{"text":"Drug %d 10 mg tablet"},"subject":{"reference":"Patient/%s"},"authoredOn":%q,`+
				`"dosageInstruction":[{"text":"1 tablet daily"}]}`, id, status, d, fiveYearID, at.Format("2006-01-02")))
		}
	}
	for _, typ := range []string{"Observation", "Encounter", "MedicationRequest"} {
		f.state(connEpic, fiveYearID, typ, store.Available, n, fetchedAt, "")
	}
	tb.Logf("five-year patient: %d resources", n)
	return f
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mustQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// BenchmarkChartFiveYears renders the whole chart page, trends included,
// of a patient with five years of data (about 2,500 resources read from
// the store and decoded on every request). The budget is 100 ms a page.
func BenchmarkChartFiveYears(b *testing.B) {
	f := fiveYearStore(b)
	h := newDashboard(f).Handler()
	target := "/patients/" + connEpic + "/" + fiveYearID
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="trend-bp-0"`) {
		b.Fatalf("GET %s = %d, without the trends", target, rec.Code)
	}
	size := rec.Body.Len()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	}
	b.StopTimer()
	b.ReportMetric(float64(size), "page-bytes")
	// CPU time (user + system, every thread, GC included) per page: on a
	// shared machine wall time (ns/op) also counts waiting for a core.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}

// TestChartFiveYears checks the benchmark's chart: every vital and lab is
// plotted, glucose in mmol/L whatever unit it came in, weight in kg.
func TestChartFiveYears(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 2,500 resources")
	}
	_, page := get(t, newDashboard(fiveYearStore(t)).Handler(), "/patients/"+connEpic+"/"+fiveYearID)
	trends := sectionHTML(t, page, "trends")
	for _, want := range []string{
		`id="trend-bp-0" data-unit="mmHg"`, `id="trend-weight-0" data-unit="kg"`, `id="trend-weight-1" data-unit="kg/m2"`,
		`id="trend-temp-0" data-unit="Cel"`, `id="trend-lab-http-loinc-org-2345-7" data-unit="mmol/L"`,
		`id="trend-lab-http-loinc-org-6301-6"`, `id="timeline-meds"`, `id="timeline-encounters"`,
		`<div class="trend-card" id="trend-lab-http-loinc-org-2160-0-card">
  <h3>Creatinine and eGFR</h3>`,
	} {
		if !strings.Contains(trends, want) {
			t.Errorf("trends lack %s", want)
		}
	}
	card := trends[strings.Index(trends, `id="trend-lab-http-loinc-org-2160-0-card"`):]
	if j := strings.Index(card, `<div class="trend-card"`); j > 0 {
		card = card[:j]
	}
	if !strings.Contains(card, `id="trend-lab-http-loinc-org-33914-3"`) {
		t.Errorf("the eGFR plot is not in the creatinine card")
	}
	if strings.Contains(trends, `class="apart-pt"`) {
		t.Errorf("the five-year chart sets results apart; every unit there converts")
	}
}
