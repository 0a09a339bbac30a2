package dashboard

import (
	"html"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Plot geometry, in SVG user units: the viewBox is plotW × plotH; the
// plotting area leaves room for the readout band on top (where a point's
// details appear on hover and focus), y labels on the left and x labels
// below.
const (
	plotW      = 600.0
	plotH      = 196.0
	plotLeft   = 54.0
	plotRight  = 14.0
	plotTop    = 30.0
	plotBottom = 26.0
	yTickCount = 5
	rowH       = 30.0 // timeline row height
)

// linear maps a domain onto a pixel range.
type linear struct{ d0, d1, r0, r1 float64 }

func (l linear) at(v float64) float64 {
	if l.d1 == l.d0 {
		return (l.r0 + l.r1) / 2
	}
	return l.r0 + (v-l.d0)/(l.d1-l.d0)*(l.r1-l.r0)
}

// timeScale maps times onto the plots' x range.
type timeScale struct {
	from, to time.Time
	r0, r1   float64
}

func (s timeScale) at(t time.Time) float64 {
	span := s.to.Sub(s.from)
	if span <= 0 {
		return (s.r0 + s.r1) / 2
	}
	return s.r0 + float64(t.Sub(s.from))/float64(span)*(s.r1-s.r0)
}

// clamped is at, kept within the axis.
func (s timeScale) clamped(t time.Time) float64 {
	return min(max(s.at(t), s.r0), s.r1)
}

// niceTicks returns about n round tick values covering [lo, hi], and the
// domain they span. Steps are 1, 2, 2.5 or 5 times a power of ten.
func niceTicks(lo, hi float64, n int) (d0, d1 float64, ticks []float64) {
	if n < 2 {
		n = 2
	}
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 1, []float64{0, 1}
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	if lo == hi {
		pad := math.Abs(lo) * 0.1
		if pad == 0 {
			pad = 1
		}
		lo, hi = lo-pad, hi+pad
	}
	raw := (hi - lo) / float64(n-1)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	d0 = math.Floor(lo/step) * step
	d1 = math.Ceil(hi/step) * step
	for v := d0; v <= d1+step/2; v += step {
		ticks = append(ticks, roundTo(v, step))
	}
	return d0, d1, ticks
}

// roundTo removes floating-point noise from a multiple of step.
func roundTo(v, step float64) float64 {
	digits := max(int(math.Ceil(-math.Log10(step)))+1, 0)
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

// timeTick is one labelled tick of the time axis.
type timeTick struct {
	At    time.Time
	Label string
}

// timeTicks returns at most about seven ticks between from and to, on
// round calendar boundaries: years, quarters, months, weeks or days.
func timeTicks(from, to time.Time) []timeTick {
	if !to.After(from) {
		return nil
	}
	span := to.Sub(from)
	day := 24 * time.Hour
	var out []timeTick
	switch {
	case span > 3*365*day:
		step := 1
		for years := span.Hours() / (24 * 365); years/float64(step) > 7; {
			step = map[int]int{1: 2, 2: 5, 5: 10, 10: 20, 20: 50}[step]
			if step == 0 {
				step = 100
				break
			}
		}
		y := from.Year() + 1
		y += (step - y%step) % step
		for t := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC); !t.After(to); t = t.AddDate(step, 0, 0) {
			out = append(out, timeTick{t, strconv.Itoa(t.Year())})
		}
	case span > 60*day:
		step := 1
		for _, m := range []int{1, 2, 3, 6, 12} {
			step = m
			if span.Hours()/(24*30.44)/float64(m) <= 7 {
				break
			}
		}
		t := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
		for (int(t.Month())-1)%step != 0 {
			t = t.AddDate(0, 1, 0)
		}
		for ; !t.After(to); t = t.AddDate(0, step, 0) {
			label := t.Format("Jan")
			if t.Month() == time.January || len(out) == 0 {
				label = t.Format("Jan 2006")
			}
			out = append(out, timeTick{t, label})
		}
	default:
		step := 1
		for _, d := range []int{1, 2, 7, 14} {
			step = d
			if span.Hours()/24/float64(d) <= 7 {
				break
			}
		}
		t := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
		for ; !t.After(to); t = t.AddDate(0, 0, step) {
			out = append(out, timeTick{t, t.Format("2 Jan")})
		}
	}
	return out
}

// bandRect is a shaded reference range over part of the time axis.
type bandRect struct {
	X0, X1 float64
	Band   band
}

// bandRuns returns the reference-range shading of a series: one rectangle
// per run of consecutive points sharing a range, reaching halfway to the
// neighbouring points, or the whole width when every point has the same
// range. Points without a known range leave a gap.
func bandRuns(pts []trendPoint, xs []float64, left, right float64) []bandRect {
	var out []bandRect
	same := len(pts) > 0
	for i := range pts {
		if pts[i].Range == nil || *pts[i].Range != *pts[0].Range {
			same = false
			break
		}
	}
	if same {
		return []bandRect{{left, right, *pts[0].Range}}
	}
	for i := 0; i < len(pts); {
		if pts[i].Range == nil {
			i++
			continue
		}
		j := i
		for j+1 < len(pts) && pts[j+1].Range != nil && *pts[j+1].Range == *pts[i].Range {
			j++
		}
		x0, x1 := left, right
		if i > 0 {
			x0 = (xs[i-1] + xs[i]) / 2
		}
		if j+1 < len(pts) {
			x1 = (xs[j] + xs[j+1]) / 2
		}
		out = append(out, bandRect{x0, x1, *pts[i].Range})
		i = j + 1
	}
	return out
}

// svgWriter builds markup; every text and attribute value goes through esc.
type svgWriter struct{ b []byte }

func (w *svgWriter) s(parts ...string) {
	for _, p := range parts {
		w.b = append(w.b, p...)
	}
}

// esc writes text escaped for HTML and SVG content and attributes, as
// html.EscapeString does, without allocating.
func (w *svgWriter) esc(s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '&':
			rep = "&amp;"
		case '"':
			rep = "&#34;"
		case '\'':
			rep = "&#39;"
		default:
			continue
		}
		w.b = append(w.b, s[last:i]...)
		w.b = append(w.b, rep...)
		last = i + 1
	}
	w.b = append(w.b, s[last:]...)
}

// f writes a coordinate with at most one decimal.
func (w *svgWriter) f(v float64) {
	w.b = strconv.AppendFloat(w.b, math.Round(v*10)/10, 'f', -1, 64)
}

// attr writes ` name="value"` with value escaped.
func (w *svgWriter) attr(name, value string) {
	w.s(" ", name, `="`)
	w.esc(value)
	w.b = append(w.b, '"')
}

// num writes ` name="v"` for a coordinate.
func (w *svgWriter) num(name string, v float64) {
	w.s(" ", name, `="`)
	w.f(v)
	w.b = append(w.b, '"')
}

// pointDate shows a point's date as received, shortened.
func pointDate(p trendPoint) string { return p.dateText }

// plottedText is a point's plotted value with its unit for people: a
// converted value to three significant digits (170 lb is 77.1 kg, not
// 77.1107), a value as received as it was written. The exact value is in
// the point's data-value.
func plottedText(p trendPoint, unit string) string {
	v := number(p.Value)
	if p.Converted {
		v = significant(p.Value, 3)
	}
	return withUnit(p.Comparator+v, unitLabel(unit))
}

// significant formats v with n significant digits, or all the digits of
// its integer part, without trailing zeros.
func significant(v float64, n int) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return number(v)
	}
	intDigits := int(math.Floor(math.Log10(math.Abs(v)))) + 1
	p := math.Pow10(max(n-intDigits, 0))
	return number(math.Round(v*p) / p)
}

// unitLabel shows a UCUM unit code the way clinicians write it.
func unitLabel(ucum string) string {
	switch ucum {
	case "Cel":
		return "°C"
	case "[degF]":
		return "°F"
	case "umol/L":
		return "µmol/L"
	case "kg/m2":
		return "kg/m²"
	case "mm[Hg]":
		return "mmHg"
	case "[lb_av]":
		return "lb"
	case "[in_i]":
		return "in"
	}
	return ucum
}

// pointSummary is what a point says on hover, focus and to screen readers.
func pointSummary(series string, p trendPoint, unit string) string {
	var b strings.Builder
	b.WriteString(series)
	b.WriteString(", ")
	b.WriteString(pointDate(p))
	b.WriteString(": ")
	b.WriteString(p.Received)
	if p.Converted {
		b.WriteString(" (" + plottedText(p, unit) + ")")
	}
	if p.Flag != "" {
		b.WriteString(", " + p.Flag)
	}
	if p.Derived {
		b.WriteString(", calculated by ehrgate")
	}
	b.WriteString(" · " + p.Connection + " · " + p.fresh)
	return b.String()
}

// freshness says when a record was fetched.
func freshness(t, now time.Time) string {
	if t.IsZero() {
		return "fetch time unknown"
	}
	return "fetched " + relative(t, now)
}

// renderPanel draws a panel's figure (SVG), the list of points not
// plotted and a table view of the same data.
func renderPanel(p *trendPanel, xs timeScale) template.HTML {
	w := &svgWriter{b: make([]byte, 0, 4096+(p.plotted()+len(p.Apart))*1100)}
	unit := p.Unit
	// y domain: every plotted value and every reference bound.
	lo, hi := math.Inf(1), math.Inf(-1)
	see := func(v float64) { lo, hi = math.Min(lo, v), math.Max(hi, v) }
	var first, last time.Time
	n, abnormal := 0, 0
	for _, s := range p.Series {
		for _, pt := range s.Points {
			see(pt.Value)
			if pt.Range != nil {
				if pt.Range.HasLow {
					see(pt.Range.Low)
				}
				if pt.Range.HasHigh {
					see(pt.Range.High)
				}
			}
			if first.IsZero() || pt.At.Before(first) {
				first = pt.At
			}
			if pt.At.After(last) {
				last = pt.At
			}
			n++
			if pt.Abnormal {
				abnormal++
			}
		}
	}
	w.s(`<figure class="trend" id="`)
	w.esc(p.ID)
	w.s(`" data-unit="`)
	w.esc(unit)
	w.s(`"><figcaption>`)
	if p.Caption {
		w.s(`<span class="trend-title">`)
		w.esc(p.Title)
		w.s(`</span> `)
	}
	w.s(`<span class="muted">`)
	if unit != "" {
		w.esc("in " + unitLabel(unit))
	} else {
		w.s("no unit")
	}
	w.s(`</span></figcaption>`)
	if n > 0 {
		d0, d1, ticks := niceTicks(lo, hi, yTickCount)
		ys := linear{d0, d1, plotH - plotBottom, plotTop}
		w.s(`<svg class="plot" viewBox="0 0 `)
		w.f(plotW)
		w.s(" ")
		w.f(plotH)
		w.s(`" role="group" aria-labelledby="`, html.EscapeString(p.ID), `-t" aria-describedby="`, html.EscapeString(p.ID), `-d">`)
		w.s(`<title id="`, html.EscapeString(p.ID), `-t">`)
		w.esc(p.Title + " over time")
		w.s(`</title><desc id="`, html.EscapeString(p.ID), `-d">`)
		w.esc(panelDesc(p, n, abnormal, first, last))
		w.s(`</desc>`)
		// grid and axes
		w.s(`<g class="axis" aria-hidden="true">`)
		for _, t := range ticks {
			y := ys.at(t)
			w.s(`<line class="grid"`)
			w.num("x1", plotLeft)
			w.num("x2", plotW-plotRight)
			w.num("y1", y)
			w.num("y2", y)
			w.s(`/><text class="ytick"`)
			w.num("x", plotLeft-6)
			w.num("y", y+4)
			w.s(`>`)
			w.esc(number(t))
			w.s(`</text>`)
		}
		for _, t := range timeTicks(xs.from, xs.to) {
			x := xs.at(t.At)
			w.s(`<line class="xgrid"`)
			w.num("x1", x)
			w.num("x2", x)
			w.num("y1", plotTop)
			w.num("y2", plotH-plotBottom)
			w.s(`/><text class="xtick"`)
			w.num("x", x)
			w.num("y", plotH-8)
			w.s(`>`)
			w.esc(t.Label)
			w.s(`</text>`)
		}
		w.s(`</g>`)
		// reference ranges
		for _, s := range p.Series {
			xpos := make([]float64, len(s.Points))
			for i, pt := range s.Points {
				xpos[i] = xs.at(pt.At)
			}
			for _, r := range bandRuns(s.Points, xpos, plotLeft, plotW-plotRight) {
				top, bottom := plotTop, plotH-plotBottom
				if r.Band.HasHigh {
					top = ys.at(r.Band.High)
				}
				if r.Band.HasLow {
					bottom = ys.at(r.Band.Low)
				}
				w.s(`<rect class="ref `, s.Class, `" aria-hidden="true"`)
				w.num("x", r.X0)
				w.num("y", top)
				w.num("width", math.Max(r.X1-r.X0, 1))
				w.num("height", math.Max(bottom-top, 0))
				w.s(`/>`)
			}
		}
		// lines, then points
		for _, s := range p.Series {
			if len(s.Points) < 2 {
				continue
			}
			w.s(`<polyline class="line `, s.Class, `" aria-hidden="true" points="`)
			for i, pt := range s.Points {
				if i > 0 {
					w.s(" ")
				}
				w.f(xs.at(pt.At))
				w.s(",")
				w.f(ys.at(pt.Value))
			}
			w.s(`"/>`)
		}
		for _, s := range p.Series {
			w.s(`<g class="series `, s.Class, `" aria-label="`)
			w.esc(s.Name)
			w.s(`" role="list">`)
			r := markRadius(len(s.Points))
			for _, pt := range s.Points {
				writePoint(w, s, pt, unit, xs.at(pt.At), ys.at(pt.Value), r)
			}
			w.s(`</g>`)
		}
		w.s(`</svg>`)
		if len(p.Series) > 1 {
			w.s(`<ul class="legend">`)
			for _, s := range p.Series {
				w.s(`<li><span class="key `, s.Class, `" aria-hidden="true"></span>`)
				w.esc(s.Name)
				w.s(`</li>`)
			}
			w.s(`</ul>`)
		}
	}
	if len(p.Apart) > 0 {
		w.s(`<div class="apart"><p class="note warn">`)
		w.esc(plural(len(p.Apart), "result is", "results are"))
		w.s(` not plotted:</p><ul>`)
		for _, pt := range p.Apart {
			w.s(`<li class="apart-pt"`)
			w.attr("data-id", pt.ID)
			w.attr("data-date", pt.Date)
			w.attr("data-received", pt.Received)
			w.attr("data-value", number(pt.number))
			w.attr("data-reason", pt.Reason)
			w.s(`><span class="nowrap">`)
			w.esc(pointDate(pt))
			w.s(`</span> <strong>`)
			w.esc(pt.Received)
			w.s(`</strong>`)
			if pt.Flag != "" {
				w.s(` <span class="badge alert">`)
				w.esc(pt.Flag)
				w.s(`</span>`)
			}
			w.s(`: not plotted because `)
			w.esc(pt.Reason)
			w.s(`. <span class="muted">`)
			w.esc(pt.Connection + " · " + pt.fresh)
			w.s(`</span></li>`)
		}
		w.s(`</ul></div>`)
	}
	writeTable(w, p)
	w.s(`</figure>`)
	return template.HTML(w.b) //nolint:gosec // every value is escaped by svgWriter
}

// markRadius shrinks the marks of dense series so that they stay apart.
func markRadius(n int) float64 {
	switch {
	case n <= 40:
		return 4
	case n <= 120:
		return 3
	default:
		return 2.5
	}
}

// panelDesc summarises a panel for screen readers.
func panelDesc(p *trendPanel, n, abnormal int, first, last time.Time) string {
	var b strings.Builder
	b.WriteString(plural(n, "result", "results"))
	b.WriteString(" from " + first.Format("2006-01-02") + " to " + last.Format("2006-01-02"))
	for _, s := range p.Series {
		l := s.Points[len(s.Points)-1]
		b.WriteString("; latest " + s.Name + " " + plottedText(l, p.Unit) + " on " + pointDate(l))
	}
	if abnormal > 0 {
		b.WriteString("; " + plural(abnormal, "abnormal result", "abnormal results") + " marked")
	}
	if len(p.Apart) > 0 {
		b.WriteString("; " + plural(len(p.Apart), "result", "results") + " not plotted, listed below")
	}
	b.WriteString(". The table below has every value.")
	return b.String()
}

// writePoint draws one focusable point: a circle (a diamond when abnormal,
// hollow when the value has a comparator), a <title> for hover and a
// readout shown on hover and keyboard focus.
func writePoint(w *svgWriter, s *trendSeries, p trendPoint, unit string, x, y, r float64) {
	summary := pointSummary(s.Name, p, unit)
	w.s(`<g class="pt`)
	if p.Abnormal {
		w.s(` abn`)
	}
	if p.Comparator != "" {
		w.s(` cmp`)
	}
	if p.Derived {
		w.s(` derived`)
	}
	// The <title> is the point's accessible name and its tooltip.
	w.s(`" tabindex="0" role="listitem"`)
	w.attr("data-id", p.ID)
	w.attr("data-series", s.Name)
	w.attr("data-date", p.Date)
	w.attr("data-value", number(p.Value))
	w.attr("data-received", p.Received)
	w.attr("data-connection", p.Connection)
	if p.Abnormal {
		w.attr("data-flag", p.Flag)
	}
	w.s(`><title>`)
	w.esc(summary)
	w.s(`</title>`)
	if p.Abnormal {
		d := r * 1.5 // a diamond, larger than the circles: shape, not only colour
		w.s(`<path class="mark" d="M`)
		w.f(x)
		w.s(",")
		w.f(y - d)
		w.s("l")
		w.f(d)
		w.s(",")
		w.f(d)
		w.s("l-")
		w.f(d)
		w.s(",")
		w.f(d)
		w.s("l-")
		w.f(d)
		w.s(",-")
		w.f(d)
		w.s(`z"/>`)
	} else {
		w.s(`<circle class="mark"`)
		w.num("cx", x)
		w.num("cy", y)
		w.num("r", r)
		w.s(`/>`)
	}
	// the readout: two lines in the band above the plot
	w.s(`<g class="tip" aria-hidden="true"><rect`)
	w.num("x", plotLeft)
	w.s(` y="1"`)
	w.num("width", plotW-plotLeft-plotRight)
	w.s(` height="27" rx="3"/><text`)
	w.num("x", plotLeft+6)
	w.s(` y="12">`)
	line1 := pointDate(p) + " · " + p.Received
	if p.Converted {
		line1 += " → " + plottedText(p, unit)
	}
	if p.Flag != "" {
		line1 += " · " + p.Flag
	}
	w.esc(line1)
	w.s(`</text><text class="sub"`)
	w.num("x", plotLeft+6)
	w.s(` y="24">`)
	line2 := s.Name + " · " + p.Connection + " · " + p.fresh
	if p.Derived {
		line2 += " · calculated by ehrgate"
	}
	w.esc(line2)
	w.s(`</text></g></g>`)
}

// writeTable writes the table view of a panel inside a <details>.
func writeTable(w *svgWriter, p *trendPanel) {
	w.s(`<details class="data"><summary>Table of `)
	w.esc(p.Title)
	w.s(`</summary><div class="table-scroll"><table class="trend-table"><caption>`)
	w.esc(p.Title)
	if p.Unit != "" {
		w.esc(", plotted in " + unitLabel(p.Unit))
	}
	w.s(`</caption><thead><tr><th scope="col">Date</th><th scope="col">Series</th><th scope="col">Plotted</th><th scope="col">As received</th><th scope="col">Flag</th><th scope="col">Reference range</th><th scope="col">Source</th><th scope="col">Fetched</th></tr></thead><tbody>`)
	row := func(series string, pt trendPoint, plotted string) {
		w.s(`<tr><th scope="row" class="nowrap">`)
		w.esc(pointDate(pt))
		w.s(`</th><td>`)
		w.esc(series)
		w.s(`</td><td>`)
		w.esc(plotted)
		w.s(`</td><td>`)
		w.esc(pt.Received)
		if pt.Derived {
			w.s(`<span class="note">calculated by ehrgate</span>`)
		}
		w.s(`</td><td>`)
		if pt.Flag != "" {
			w.s(`<span class="badge`)
			if pt.Abnormal {
				w.s(` alert`)
			}
			w.s(`">`)
			w.esc(pt.Flag)
			w.s(`</span>`)
		}
		w.s(`</td><td>`)
		w.esc(pt.RangeText)
		w.s(`</td><td>`)
		w.esc(pt.Connection)
		w.s(`</td><td class="nowrap">`)
		w.esc(pt.fresh)
		w.s(`</td></tr>`)
	}
	for _, s := range p.Series {
		for i := len(s.Points) - 1; i >= 0; i-- {
			row(s.Name, s.Points[i], plottedText(s.Points[i], p.Unit))
		}
	}
	for _, pt := range p.Apart {
		row(p.Title, pt, "not plotted: "+pt.Reason)
	}
	w.s(`</tbody></table></div></details>`)
}

// renderTimelines draws the medication and encounter timelines on the
// shared time axis, each with a table view.
func renderTimelines(v *trendsView, xs timeScale) template.HTML {
	w := &svgWriter{b: make([]byte, 0, 8192)}
	right := plotW - plotRight
	axis := func(h float64) {
		w.s(`<g class="axis" aria-hidden="true">`)
		for _, t := range timeTicks(xs.from, xs.to) {
			x := xs.at(t.At)
			w.s(`<line class="xgrid"`)
			w.num("x1", x)
			w.num("x2", x)
			w.s(` y1="0"`)
			w.num("y2", h-18)
			w.s(`/><text class="xtick"`)
			w.num("x", x)
			w.num("y", h-4)
			w.s(`>`)
			w.esc(t.Label)
			w.s(`</text>`)
		}
		w.s(`</g>`)
	}
	if len(v.Meds) > 0 {
		h := float64(len(v.Meds))*rowH + 22
		w.s(`<figure class="trend timeline" id="timeline-meds"><figcaption><span class="trend-title">Medications</span> <span class="muted">(each order at its date; a bar runs to the stop date the source gave, or to today for active orders without one)</span></figcaption>`)
		w.s(`<svg class="plot" viewBox="0 0 `)
		w.f(plotW)
		w.s(" ")
		w.f(h)
		w.s(`" role="list" aria-label="Medication timeline">`)
		axis(h)
		for i, r := range v.Meds {
			y := float64(i) * rowH
			status := capitalize(r.Status)
			if r.Stale {
				status += ", possibly stale"
			}
			label := r.Label + " · " + status + " · " + plural(len(r.Orders), "order", "orders") +
				" from " + r.First.Format("2006-01-02")
			if len(r.Orders) > 1 {
				label += " to " + r.Last.Format("2006-01-02")
			}
			switch {
			case r.End != "":
				label += " · stop date " + displayDate(r.End) + " (" + periodSource(r.EndFrom) + ")"
			case !r.Active:
				label += " (no stop date given by the source)"
			}
			w.s(`<g class="med`)
			if r.Active {
				w.s(` active`)
			}
			if r.Stale {
				w.s(` stale`)
			}
			w.s(`" role="listitem" tabindex="0"`)
			w.attr("aria-label", label)
			w.attr("data-status", r.Status)
			w.s(`><title>`)
			w.esc(label)
			if r.Stale && r.StaleReason != "" {
				w.esc(" (" + r.StaleReason + ")")
			}
			w.s(`</title><text class="rowlabel"`)
			w.num("x", plotLeft)
			w.num("y", y+11)
			w.s(`>`)
			w.esc(r.Label + " — " + status)
			w.s(`</text>`)
			x0, x1 := xs.clamped(r.First), xs.clamped(r.Last)
			switch {
			case !r.EndAt.IsZero():
				// The stop date the source gave: the bar runs to it and
				// stops there, whatever the status.
				xe := xs.clamped(r.EndAt)
				w.s(`<line class="bar`)
				if r.Active {
					w.s(` ongoing`)
				}
				if r.Stale {
					w.s(` stale`)
				}
				w.s(`"`)
				w.num("x1", x0)
				w.num("x2", math.Max(math.Max(x1, xe), x0+2))
				w.num("y1", y+20)
				w.num("y2", y+20)
				w.s(`/><line class="stop given"`)
				w.num("x1", xe)
				w.num("x2", xe)
				w.num("y1", y+14)
				w.num("y2", y+26)
				w.attr("data-stop", r.End)
				w.s(`/>`)
			case r.Active:
				w.s(`<line class="bar"`)
				w.num("x1", x0)
				w.num("x2", math.Max(x1, x0+2))
				w.num("y1", y+20)
				w.num("y2", y+20)
				w.s(`/><line class="bar ongoing`)
				if r.Stale {
					w.s(` stale`)
				}
				w.s(`"`)
				w.num("x1", x1)
				w.num("x2", right)
				w.num("y1", y+20)
				w.num("y2", y+20)
				w.s(`/>`)
			default:
				w.s(`<line class="bar"`)
				w.num("x1", x0)
				w.num("x2", math.Max(x1, x0+2))
				w.num("y1", y+20)
				w.num("y2", y+20)
				w.s(`/><line class="stop"`)
				w.num("x1", x1+1)
				w.num("x2", x1+1)
				w.num("y1", y+15)
				w.num("y2", y+25)
				w.s(`/>`)
			}
			for _, o := range r.Orders {
				if o.At.Before(xs.from) {
					continue // before the window
				}
				w.s(`<circle class="order`)
				if o.Stale {
					w.s(` stale`)
				}
				w.s(`"`)
				w.num("cx", xs.at(o.At))
				w.num("cy", y+20)
				w.s(` r="3"><title>`)
				title := "Ordered " + displayDate(o.Date) + " · " + o.Status
				if !o.End.IsZero() {
					title += " · until " + o.End.Format("2006-01-02")
				}
				if o.Dosage != "" {
					title += " · " + o.Dosage
				}
				w.esc(title)
				w.s(`</title></circle>`)
			}
			w.s(`</g>`)
		}
		w.s(`</svg>`)
		if v.MedsHidden > 0 {
			w.s(`<p class="note">`)
			w.esc(plural(v.MedsHidden, "more medication", "more medications") + " not shown")
			w.s(`</p>`)
		}
		if v.MedsUndated > 0 {
			w.s(`<p class="note warn">`)
			w.esc(plural(v.MedsUndated, "order has", "orders have") + " no date and cannot be placed on the timeline")
			w.s(`</p>`)
		}
		w.s(`<details class="data"><summary>Table of medications</summary><div class="table-scroll"><table><thead><tr><th scope="col">Medication</th><th scope="col">First order</th><th scope="col">Latest order</th><th scope="col">Orders</th><th scope="col">Status</th><th scope="col">Stop date</th></tr></thead><tbody>`)
		for _, r := range v.Meds {
			w.s(`<tr><th scope="row">`)
			w.esc(r.Label)
			w.s(`</th><td class="nowrap">`)
			w.esc(r.First.Format("2006-01-02"))
			w.s(`</td><td class="nowrap">`)
			w.esc(r.Last.Format("2006-01-02"))
			w.s(`</td><td>`)
			w.esc(strconv.Itoa(len(r.Orders)))
			w.s(`</td><td>`)
			w.esc(capitalize(r.Status))
			if r.Stale {
				w.s(` <span class="badge alert">Possibly stale</span>`)
				if r.StaleReason != "" {
					w.s(`<span class="note">`)
					w.esc(r.StaleReason)
					w.s(`</span>`)
				}
			}
			w.s(`</td><td class="nowrap">`)
			if r.End != "" {
				w.esc(displayDate(r.End))
				w.s(`<span class="note">`)
				w.esc(periodSource(r.EndFrom))
				w.s(`</span>`)
			} else {
				w.s(`<span class="muted">not given</span>`)
			}
			w.s(`</td></tr>`)
		}
		w.s(`</tbody></table></div></details></figure>`)
	}
	if len(v.Encounters) > 0 {
		h := float64(len(v.Encounters))*rowH + 22
		w.s(`<figure class="trend timeline" id="timeline-encounters"><figcaption><span class="trend-title">Encounters</span></figcaption>`)
		w.s(`<svg class="plot" viewBox="0 0 `)
		w.f(plotW)
		w.s(" ")
		w.f(h)
		w.s(`" role="list" aria-label="Encounter timeline">`)
		axis(h)
		for i, r := range v.Encounters {
			y := float64(i) * rowH
			w.s(`<text class="rowlabel" aria-hidden="true"`)
			w.num("x", plotLeft)
			w.num("y", y+11)
			w.s(`>`)
			w.esc(r.Label + " (" + strconv.Itoa(len(r.Encounters)) + ")")
			w.s(`</text>`)
			for _, e := range r.Encounters {
				label := displayDate(e.StartText)
				if e.EndText != "" && e.End.After(e.Start) {
					label += " to " + displayDate(e.EndText)
				}
				label += " · " + e.Class
				if e.Type != "" {
					label += " · " + e.Type
				}
				if e.Status != "" {
					label += " · " + e.Status
				}
				w.s(`<g class="enc" role="listitem" tabindex="0"`)
				w.attr("aria-label", label)
				w.attr("data-date", e.StartText)
				w.s(`><title>`)
				w.esc(label)
				w.s(`</title><rect`)
				x0 := xs.clamped(e.Start)
				w.num("x", x0-2)
				w.num("y", y+15)
				w.num("width", math.Max(xs.clamped(e.End)-x0, 0)+4)
				w.s(` height="10" rx="2"/></g>`)
			}
		}
		w.s(`</svg>`)
		if v.EncUndated > 0 {
			w.s(`<p class="note warn">`)
			w.esc(plural(v.EncUndated, "encounter has", "encounters have") + " no start date and cannot be placed on the timeline")
			w.s(`</p>`)
		}
		w.s(`<details class="data"><summary>Table of encounters</summary><div class="table-scroll"><table><thead><tr><th scope="col">Start</th><th scope="col">End</th><th scope="col">Class</th><th scope="col">Type</th><th scope="col">Status</th></tr></thead><tbody>`)
		for _, r := range v.Encounters {
			for _, e := range r.Encounters {
				w.s(`<tr><th scope="row" class="nowrap">`)
				w.esc(displayDate(e.StartText))
				w.s(`</th><td class="nowrap">`)
				w.esc(displayDate(e.EndText))
				w.s(`</td><td>`)
				w.esc(e.Class)
				w.s(`</td><td>`)
				w.esc(e.Type)
				w.s(`</td><td>`)
				w.esc(capitalize(e.Status))
				w.s(`</td></tr>`)
			}
		}
		w.s(`</tbody></table></div></details></figure>`)
	}
	return template.HTML(w.b) //nolint:gosec // every value is escaped by svgWriter
}

// render draws every panel and the timelines of the view.
func (v *trendsView) render(now time.Time) {
	xs := timeScale{from: v.From, to: v.To, r0: plotLeft, r1: plotW - plotRight}
	// Freshness in words, once per fetch time (a sync fetches many
	// records at once).
	fresh := map[time.Time]string{}
	say := func(p *trendPoint) {
		s, ok := fresh[p.Fetched]
		if !ok {
			s = freshness(p.Fetched, now)
			fresh[p.Fetched] = s
		}
		p.fresh = s
	}
	for _, c := range slices.Concat(v.Vitals, v.Labs) {
		for _, p := range c.Panels {
			for _, s := range p.Series {
				for i := range s.Points {
					say(&s.Points[i])
				}
			}
			for i := range p.Apart {
				say(&p.Apart[i])
			}
		}
	}
	for _, c := range v.Vitals {
		for _, p := range c.Panels {
			p.HTML = renderPanel(p, xs)
		}
	}
	for _, c := range v.Labs {
		for _, p := range c.Panels {
			p.HTML = renderPanel(p, xs)
		}
	}
	v.Timelines = renderTimelines(v, xs)
}
