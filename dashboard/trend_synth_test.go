package dashboard_test

import (
	"encoding/json"
	"html"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ehrgate/normalize"
	"ehrgate/synth"
)

// synthStore stores synthetic patients 0..n-1 (seed 1), every resource
// normalized by the real normalizer, and returns their ids.
func synthStore(t *testing.T, n int) (*fakeStore, []string) {
	t.Helper()
	f := newFakeStore()
	g := synth.New(synth.Options{Patients: n, Seed: 1})
	var ids []string
	for i := range n {
		for _, r := range g.Resources(i) {
			var h struct{ ID string }
			if err := json.Unmarshal(r.JSON, &h); err != nil {
				t.Fatal(err)
			}
			res, err := normalize.Normalize(normalize.Ref{Connection: connEpic, Type: r.Type, ID: h.ID}, r.JSON)
			if err != nil {
				t.Fatalf("normalizing synthetic %s/%s: %v", r.Type, h.ID, err)
			}
			if p, ok := res.(*normalize.Patient); ok {
				f.addPatient(connEpic, h.ID, *p)
				ids = append(ids, h.ID)
				continue
			}
			var c struct {
				PatientID string `json:"patientId"`
			}
			b := mustJSON(res)
			_ = json.Unmarshal(b, &c)
			f.add(connEpic, r.Type, h.ID, c.PatientID, res)
		}
	}
	return f, ids
}

var pointRE = regexp.MustCompile(`<g class="pt[^"]*" tabindex="0" role="listitem" data-id="([^"]*)" data-series="([^"]*)" data-date="([^"]*)" data-value="([^"]*)"`)

// TestTrendsMatchStoreSynthetic renders the charts of synthetic patients
// (weights in lb or kg, temperatures in °F or °C, glucose in mg/dL, BP
// panels) and checks every plotted point against the store: the value is
// the stored canonical value, else the number as received, on the stored
// date.
func TestTrendsMatchStoreSynthetic(t *testing.T) {
	f, ids := synthStore(t, 8)
	h := newDashboard(f).Handler()
	converted := 0
	for _, id := range ids {
		_, page := get(t, h, "/patients/"+connEpic+"/"+id)
		ms := pointRE.FindAllStringSubmatch(page, -1)
		if len(ms) == 0 {
			t.Errorf("patient %s: no plotted points", id)
		}
		for _, m := range ms {
			oid, series, date := html.UnescapeString(m[1]), html.UnescapeString(m[2]), html.UnescapeString(m[3])
			got, err := strconv.ParseFloat(m[4], 64)
			if err != nil {
				t.Fatalf("patient %s point %s: data-value %q", id, oid, m[4])
			}
			rec, ok := f.recs[[3]string{connEpic, "Observation", oid}]
			if !ok {
				continue // derived BMI: computed here, not stored
			}
			var o normalize.Observation
			if err := json.Unmarshal(rec.Normalized, &o); err != nil {
				t.Fatal(err)
			}
			v := o.Value
			if bp := o.BloodPressure; bp != nil {
				v = map[string]*normalize.Value{"Systolic": bp.Systolic, "Diastolic": bp.Diastolic}[series]
			}
			if v == nil || v.Number == nil {
				t.Errorf("patient %s: %s plotted from no stored number", id, oid)
				continue
			}
			want := *v.Number
			if v.Canonical != nil {
				want = v.Canonical.Number
				if v.Canonical.Number != *v.Number {
					converted++
				}
			}
			if got != want || date != o.Effective {
				t.Errorf("patient %s: %s (%s) plotted %v on %s, want %v on %s", id, oid, series, got, date, want, o.Effective)
			}
			if _, err := time.Parse(time.RFC3339, date); err != nil {
				t.Errorf("patient %s: %s has date %q", id, oid, date)
			}
		}
	}
	if converted == 0 {
		t.Errorf("no plotted point was converted to a canonical unit; the synthetic data has lb, °F and mg/dL")
	}
	t.Logf("%d points converted to canonical units", converted)
}

// TestTrendsSpan: ?span= narrows the trends to a time window, says how
// much is left out, and falls back to every result for unknown values.
func TestTrendsSpan(t *testing.T) {
	h := newDashboard(trendFixture(t)).Handler()
	tests := []struct {
		span, current string
		want, wantNot []string
	}{
		{"1y", "1 year", []string{`data-id="o-wt-3"`, `data-id="o-glu-3"`, "outside this time window"},
			[]string{`data-id="o-wt-1"`, `data-id="o-wt-2"`, `data-id="o-glu-1"`, `id="trend-lab-http-loinc-org-2160-0"`}},
		{"all", "All", []string{`data-id="o-wt-1"`, `data-id="o-cr-1"`}, []string{"outside this time window"}},
		{"<script>", "All", []string{`data-id="o-wt-1"`}, []string{"<script>"}},
	}
	for _, tt := range tests {
		t.Run(tt.span, func(t *testing.T) {
			_, page := get(t, h, "/patients/"+connEpic+"/"+trendID+"?span="+url.QueryEscape(tt.span))
			trends := sectionHTML(t, page, "trends")
			if !strings.Contains(trends, `aria-current="true">`+tt.current+`</a>`) {
				t.Errorf("span %q: %q is not the current window", tt.span, tt.current)
			}
			for _, s := range tt.want {
				if !strings.Contains(trends, s) {
					t.Errorf("span %q: trends lack %s", tt.span, s)
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(trends, s) {
					t.Errorf("span %q: trends have %s", tt.span, s)
				}
			}
		})
	}
}
