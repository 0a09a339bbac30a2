package dashboard_test

import (
	"math"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"ehrgate/dashboard/browsertest"
)

// domPoint is a plotted point as the browser sees it.
type domPoint struct {
	Figure, Unit, Series, ID, Date, Received, Flag, Label string
	Value                                                 float64
	X, Y                                                  float64 // centre of the mark, SVG user units
}

// domApart is a result listed beside a plot instead of on it.
type domApart struct {
	Figure, ID, Date, Received, Reason string
}

const readPoints = `Array.from(document.querySelectorAll('#trends figure.trend g.pt')).map(g => {
  const fig = g.closest('figure'), b = g.querySelector('.mark').getBBox();
  return {Figure: fig.id, Unit: fig.dataset.unit, Series: g.dataset.series, ID: g.dataset.id,
    Date: g.dataset.date, Received: g.dataset.received, Flag: g.dataset.flag || '',
    Label: g.querySelector('title').textContent, Value: parseFloat(g.dataset.value),
    X: b.x + b.width / 2, Y: b.y + b.height / 2};
})`

const readApart = `Array.from(document.querySelectorAll('#trends li.apart-pt')).map(li => ({
  Figure: li.closest('figure').id, ID: li.dataset.id, Date: li.dataset.date,
  Received: li.dataset.received, Reason: li.dataset.reason}))`

// TestBrowserTrendsMatchStore drives headless Chromium over the trend
// patient's chart and checks every plotted point against the store: the
// value (canonical where normalize converted it: weight lb → kg, glucose
// mg/dL → mmol/L, creatinine mg/dL → umol/L), its date, its position on the
// plot (x linear in time, y linear in value within each plot), the
// abnormal marks, the unconvertible glucose in mg/L listed apart, and the
// readout a keyboard user gets on focus.
func TestBrowserTrendsMatchStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	f := trendFixture(t)
	ctx := browsertest.NewBrowser(t)
	srv := httptest.NewServer(newDashboard(f).Handler())
	defer srv.Close()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/patients/"+connEpic+"/"+trendID),
		chromedp.WaitVisible(chromedp.ID("trends")),
	); err != nil {
		t.Fatalf("opening the chart: %v", err)
	}
	points, err := chromedp.Run(ctx, chromedp.Evaluate[[]domPoint](readPoints))
	if err != nil {
		t.Fatalf("reading points: %v", err)
	}
	apart, err := chromedp.Run(ctx, chromedp.Evaluate[[]domApart](readApart))
	if err != nil {
		t.Fatalf("reading results not plotted: %v", err)
	}

	byID := map[string]domPoint{}
	for _, p := range points {
		byID[p.ID] = p
	}
	wantUnit := map[string]string{"29463-7": "kg", "8867-4": "/min", "2345-7": "mmol/L", "2160-0": "umol/L"}
	for _, o := range trendObservations {
		if o.id == glucoseMgL {
			continue
		}
		p, ok := byID[o.id]
		if !ok {
			t.Errorf("%v is not plotted", o)
			continue
		}
		value, _, date := storedValue(t, f, o.id)
		if math.Abs(p.Value-value) > 1e-9 || p.Date != date {
			t.Errorf("%v plotted as %v on %s, want %v on %s (the store's canonical value)", o, p.Value, p.Date, value, date)
		}
		if p.Unit != wantUnit[o.loinc] {
			t.Errorf("%v plotted in %q, want %q", o, p.Unit, wantUnit[o.loinc])
		}
		if !strings.Contains(p.Received, number(o.value)) || !strings.Contains(p.Received, o.unit) {
			t.Errorf("%v: value as received = %q", o, p.Received)
		}
		for _, want := range []string{displayDay(o.date), connEpic, "fetched"} {
			if !strings.Contains(p.Label, want) {
				t.Errorf("%v: title %q lacks %q", o, p.Label, want)
			}
		}
	}
	// the lb weight really is converted: 170 lb = 77.1107 kg
	if p := byID["o-wt-2"]; math.Abs(p.Value-77.1107) > 1e-4 || !strings.Contains(p.Label, "170 lb (77.1 kg)") {
		t.Errorf("170 lb plotted as %v, label %q; want 77.1107 kg", p.Value, p.Label)
	}
	// abnormal: glucose 140 mg/dL flagged H by the source; creatinine 1.9
	// mg/dL above its range (converted to umol/L) with no flag sent.
	for id, flag := range map[string]string{"o-glu-3": "High", "o-cr-2": "Above reference range"} {
		if got := byID[id].Flag; got != flag {
			t.Errorf("%s flag = %q, want %q", id, got, flag)
		}
	}
	for _, id := range []string{"o-glu-1", "o-glu-2", "o-cr-1", "o-wt-1"} {
		if got := byID[id].Flag; got != "" {
			t.Errorf("%s flag = %q, want none", id, got)
		}
	}
	if _, plotted := byID[glucoseMgL]; plotted {
		t.Errorf("glucose in mg/L was plotted; it has no conversion to mmol/L and must be shown apart")
	}
	if len(apart) != 1 || apart[0].ID != glucoseMgL || apart[0].Received != "1200 mg/L" ||
		!strings.Contains(apart[0].Reason, "could not be converted to mmol/L") {
		t.Errorf("results shown apart = %+v, want only %s (1200 mg/L, could not be converted to mmol/L)", apart, glucoseMgL)
	} else if apart[0].Figure != byID["o-glu-1"].Figure {
		t.Errorf("the unconvertible glucose is listed with %s, want beside the glucose plot %s", apart[0].Figure, byID["o-glu-1"].Figure)
	}

	// geometry: within each plot, y is one linear function of the value;
	// across every plot, x is one linear function of time.
	figures := map[string][]domPoint{}
	for _, p := range points {
		figures[p.Figure] = append(figures[p.Figure], p)
	}
	for fig, ps := range figures {
		checkLinear(t, fig+" y", ps, func(p domPoint) (float64, float64) { return p.Value, p.Y })
	}
	checkLinear(t, "x", points, func(p domPoint) (float64, float64) {
		at, _ := time.Parse(time.RFC3339, p.Date)
		return float64(at.Unix()), p.X
	})

	// keyboard: focusing a point shows its readout (a headless page has
	// no system focus, so :focus would never match without emulating it)
	if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("emulating focus: %v", err)
	}
	sel := chromedp.CSS(`#trends g.pt[data-id="o-wt-2"]`)
	if err := chromedp.Do(ctx, chromedp.Focus(sel)); err != nil {
		t.Fatalf("focusing a point: %v", err)
	}
	tip, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(() => {
  const g = document.activeElement, tip = g && g.querySelector('.tip');
  return {id: g ? (g.dataset.id || '') : '', display: tip ? getComputedStyle(tip).display : '', text: tip ? tip.textContent : ''};
})()`))
	if err != nil {
		t.Fatalf("reading the focused point: %v", err)
	}
	if tip["id"] != "o-wt-2" || tip["display"] == "none" || !strings.Contains(tip["text"], "2025-03-01") ||
		!strings.Contains(tip["text"], "170 lb") || !strings.Contains(tip["text"], connEpic) {
		t.Errorf("focused point readout = %v, want o-wt-2 shown with its date, 170 lb and %s", tip, connEpic)
	}
}

// checkLinear fails unless every (v, px) of ps lies on the line through
// the two points with the most distant values, within half a unit.
func checkLinear(t *testing.T, what string, ps []domPoint, xy func(domPoint) (float64, float64)) {
	t.Helper()
	if len(ps) < 2 {
		return
	}
	lo, hi := ps[0], ps[0]
	for _, p := range ps {
		if v, _ := xy(p); v < func() float64 { v, _ := xy(lo); return v }() {
			lo = p
		}
		if v, _ := xy(p); v > func() float64 { v, _ := xy(hi); return v }() {
			hi = p
		}
	}
	v0, p0 := xy(lo)
	v1, p1 := xy(hi)
	if v0 == v1 {
		return
	}
	for _, p := range ps {
		v, px := xy(p)
		want := p0 + (v-v0)/(v1-v0)*(p1-p0)
		if math.Abs(px-want) > 0.5 {
			t.Errorf("%s: point %s (%v) at %.2f, want %.2f on the line through %s and %s", what, p.ID, v, px, want, lo.ID, hi.ID)
		}
	}
}

// number formats like the dashboard: no trailing zeros.
func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// displayDay is the date part of a FHIR dateTime.
func displayDay(s string) string { return s[:10] }
