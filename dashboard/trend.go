package dashboard

import (
	"cmp"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"ehrgate/normalize"
	"ehrgate/terminology"
)

// The trends of a chart: vital signs and labs plotted over time in
// canonical units, with a medication and an encounter timeline on the same
// time axis. Everything is computed here from the normalized model and
// drawn as SVG by plot.go; no JavaScript is needed to read it.
//
// Units: a point is plotted in its canonical unit (normalize's
// Value.Canonical) when it has one, else in its unit as received. Each panel
// plots one unit: the canonical unit most of its points reach, or, when none
// converts, the most common unit as received. A point in any other unit is
// listed beside the plot with the reason, never drawn on the wrong scale.

// labTrendMin is the number of numeric results a lab needs to be plotted.
const labTrendMin = 2

// medTimelineLimit bounds the rows of the medication timeline.
const medTimelineLimit = 40

// obsRec is a decoded observation with what the chart needs of its record.
type obsRec struct {
	normalize.Observation
	ID         string
	Connection string
	Fetched    time.Time // when ehrgate received it; zero when unknown
}

// band is a reference range in a panel's unit; a missing bound is open.
type band struct {
	Low, High       float64
	HasLow, HasHigh bool
}

// contains reports whether v is inside the band.
func (b band) contains(v float64) bool {
	return (!b.HasLow || v >= b.Low) && (!b.HasHigh || v <= b.High)
}

// trendPoint is one numeric measurement of a series.
type trendPoint struct {
	ID         string
	At         time.Time
	Date       string  // effective time as received
	Value      float64 // in the panel's unit (plotted points)
	Received   string  // value as received, e.g. "154 lb"
	Comparator string  // "<", ">=", ... as received
	Connection string
	Fetched    time.Time
	Flag       string // "High", "Above reference range", ... ("" when normal)
	Abnormal   bool
	Range      *band  // reference range in the panel's unit, when known
	RangeText  string // reference range as received
	Derived    bool   // computed by ehrgate (BMI)
	Converted  bool   // Value is a canonical conversion of the received value
	Reason     string // why a point is not plotted (apart points only)
	dateText   string // Date for display
	fresh      string // "fetched 2 hours ago", set by trendsView.render

	keys      [2]string // folded unit code and unit as received
	canonical *normalize.Canonical
	number    float64
	loinc     string
}

// trendSeries is one line of a panel.
type trendSeries struct {
	Name   string
	Class  string // s0, s1: the CSS colour of the line and its points
	Points []trendPoint
}

// trendPanel is one plot with its y unit, and the points that could not be
// put on it.
type trendPanel struct {
	ID     string // DOM id
	Title  string
	Unit   string // the plotted unit ("" for unitless values such as INR)
	Series []*trendSeries
	Apart  []trendPoint
	HTML   template.HTML // figure, apart list and table view
	// Caption is set when the panel's title is not its chart's (weight
	// and BMI share a chart).
	Caption bool
}

// plotted counts the panel's plotted points.
func (p *trendPanel) plotted() int {
	n := 0
	for _, s := range p.Series {
		n += len(s.Points)
	}
	return n
}

// trendChart is one card of the trends: one or more panels (weight and
// BMI share a card).
type trendChart struct {
	ID     string
	Title  string
	Panels []*trendPanel
	code   string // a lab's code (the chart of one lab)
}

// medRow is one medication of the timeline: every order of one drug.
type medRow struct {
	Label       string
	First, Last time.Time // earliest and latest authoredOn
	Orders      []medOrder
	Status      string // status of the latest order
	Active      bool
	Stale       bool
	StaleReason string
	// End is the latest order's stop date as the source gave it
	// (normalize.MedicationRequest.End), EndAt its instant, EndFrom
	// which element it came from; empty when the source gave none.
	End     string
	EndAt   time.Time
	EndFrom string
}

// medOrder is one MedicationRequest on the timeline.
type medOrder struct {
	At     time.Time
	Date   string
	Status string
	Dosage string
	Stale  bool
	// Start and End are the order's period (dosage bounds or validity
	// period) when the source gave one; zero otherwise.
	Start, End time.Time
}

// periodSource says in words where a medication stop date came from.
func periodSource(from string) string {
	switch from {
	case normalize.PeriodDosageBounds:
		return "dosage period"
	case normalize.PeriodValidity:
		return "prescription validity period"
	}
	return "source"
}

// encRow is one encounter class of the timeline.
type encRow struct {
	Label      string
	Encounters []encMark
}

// encMark is one encounter on the timeline.
type encMark struct {
	Start, End time.Time
	StartText  string
	EndText    string
	Type       string
	Class      string
	Status     string
}

// trendsView is the data of the chart's trends section.
type trendsView struct {
	From, To    time.Time // the shared time axis
	Vitals      []*trendChart
	Labs        []*trendChart
	Meds        []*medRow
	MedsHidden  int
	MedsUndated int
	Encounters  []*encRow
	EncUndated  int
	Timelines   template.HTML
	Empty       bool
	// Earlier counts the results, orders and encounters before the time
	// window (Spans says which is shown).
	Earlier int
	Spans   []spanLink
}

// spanLink offers one time window of the trends.
type spanLink struct {
	Label, Href string
	Current     bool
}

// trendSpans are the time windows the trends offer (?span=), widest last;
// "all" is the default.
var trendSpans = []struct {
	key, label string
	years      int
}{{"1y", "1 year", 1}, {"2y", "2 years", 2}, {"5y", "5 years", 5}, {"all", "All", 0}}

// trendSince returns the start of the window span names at now (zero for
// every result) and the span's key, "all" when span is unknown.
func trendSince(span string, now time.Time) (time.Time, string) {
	for _, s := range trendSpans {
		if s.key == span && s.years > 0 {
			return now.AddDate(-s.years, 0, 0), s.key
		}
	}
	return time.Time{}, "all"
}

// spanLinks links the windows of a chart at path; current is marked.
func spanLinks(path, current string) []spanLink {
	out := make([]spanLink, len(trendSpans))
	for i, s := range trendSpans {
		out[i] = spanLink{Label: s.label, Href: path + "?span=" + s.key + "#trends", Current: s.key == current}
	}
	return out
}

// vitalDef places a vital sign's LOINC code in a chart and panel.
type vitalDef struct {
	chart, panel int
	series       string
}

// vitalCharts are the vital-sign charts in clinical order: their titles
// and panel titles. vitalCodes routes LOINC codes to them.
var vitalCharts = []struct {
	id, title string
	panels    []string
}{
	{"trend-bp", "Blood pressure", []string{"Blood pressure"}},
	{"trend-hr", "Heart rate", []string{"Heart rate"}},
	{"trend-rr", "Respiratory rate", []string{"Respiratory rate"}},
	{"trend-temp", "Temperature", []string{"Body temperature"}},
	{"trend-spo2", "Oxygen saturation", []string{"SpO2"}},
	{"trend-weight", "Weight and BMI", []string{"Body weight", "BMI"}},
}

var vitalCodes = map[string]vitalDef{
	loincSystolic:  {0, 0, "Systolic"},
	loincDiastolic: {0, 0, "Diastolic"},
	"8867-4":       {1, 0, "Heart rate"},
	"9279-1":       {2, 0, "Respiratory rate"},
	"8310-5":       {3, 0, "Temperature"},
	"8331-1":       {3, 0, "Temperature"},
	"59408-5":      {4, 0, "SpO2"},
	"2708-6":       {4, 0, "SpO2"},
	"29463-7":      {5, 0, "Weight"},
	"3141-9":       {5, 0, "Weight"},
	"39156-5":      {5, 1, "BMI"},
}

// LOINC codes of serum creatinine and of eGFR, which share a card.
var (
	creatinineCodes = []string{"2160-0", "38483-4"}
	egfrCodes       = []string{"33914-3", "62238-1", "98979-8", "48642-3", "48643-1", "50210-4", "77147-7"}
)

// pairKidney puts the first eGFR chart under the first creatinine chart,
// as one card ("Creatinine and eGFR"): the two read together.
func pairKidney(labs []*trendChart) []*trendChart {
	cr, gfr := -1, -1
	for i, c := range labs {
		code := c.code
		switch {
		case cr < 0 && slices.Contains(creatinineCodes, code):
			cr = i
		case gfr < 0 && slices.Contains(egfrCodes, code):
			gfr = i
		}
	}
	if cr < 0 || gfr < 0 {
		return labs
	}
	c := labs[cr]
	c.Title = "Creatinine and eGFR"
	c.Panels = append(c.Panels, labs[gfr].Panels...)
	for _, p := range c.Panels {
		p.Caption = true
	}
	return slices.Delete(labs, gfr, gfr+1)
}

// labOrder puts the labs clinicians look at first on top: HbA1c,
// creatinine and eGFR, LDL, potassium, INR; the others follow by name.
var labOrder = map[string]int{
	"4548-4": 1, "17856-6": 1, "2160-0": 2, "38483-4": 2, "33914-3": 3, "62238-1": 3, "98979-8": 3,
	"13457-7": 4, "18262-6": 4, "2089-1": 4, "2823-3": 5, "6298-4": 5, "6301-6": 6, "34714-6": 6,
}

// panelBuilder gathers the raw points of one panel, by series.
type panelBuilder struct {
	panel  *trendPanel
	series map[string]*trendSeries
	order  []string
	labels map[string]time.Time // lab titles by the newest result using them
}

func newPanelBuilder(id, title string) *panelBuilder {
	return &panelBuilder{panel: &trendPanel{ID: id, Title: title}, series: map[string]*trendSeries{}}
}

func (b *panelBuilder) add(series string, p trendPoint) {
	s := b.series[series]
	if s == nil {
		s = &trendSeries{Name: series}
		b.series[series] = s
		b.order = append(b.order, series)
	}
	s.Points = append(s.Points, p)
}

// buildTrends computes the trends of one patient's observations,
// medication orders and encounters, from since on (zero: all of them).
// fallback is the freshness of records whose fetch time is unknown.
func buildTrends(obs []obsRec, meds []normalize.MedicationRequest, encs []normalize.Encounter, fallback, since time.Time) *trendsView {
	v := &trendsView{}
	vitals := make([][]*panelBuilder, len(vitalCharts))
	for i, c := range vitalCharts {
		for j, t := range c.panels {
			vitals[i] = append(vitals[i], newPanelBuilder(c.id+"-"+strconv.Itoa(j), t))
		}
	}
	labs := map[string]*panelBuilder{}
	var labKeys []string
	for i := range obs {
		o := &obs[i]
		if o.Status == "entered-in-error" || o.Status == "cancelled" {
			continue
		}
		loinc := ""
		if o.Code.System == terminology.SystemLOINC {
			loinc = o.Code.Code
		}
		switch {
		case slices.Contains(o.Category, "vital-signs") || o.Derived:
			for _, part := range vitalParts(o, loinc) {
				def, ok := vitalCodes[part.code]
				if !ok {
					continue
				}
				if p, ok := newTrendPoint(o, part.value, part.code, fallback); ok {
					if p.Reason == "" && p.At.Before(since) {
						v.Earlier++
						continue
					}
					p.Derived = o.Derived
					vitals[def.chart][def.panel].add(def.series, p)
				}
			}
		case slices.Contains(o.Category, "laboratory"):
			if o.Value == nil {
				continue
			}
			p, ok := newTrendPoint(o, o.Value, loinc, fallback)
			if !ok {
				continue
			}
			if p.Reason == "" && p.At.Before(since) {
				v.Earlier++
				continue
			}
			key := o.Code.System + "|" + o.Code.Code
			if o.Code.Code == "" {
				key = "|" + strings.ToLower(strings.TrimSpace(o.Code.Label()))
			}
			b := labs[key]
			if b == nil {
				b = newPanelBuilder("trend-lab-"+domID(key), "")
				b.labels = map[string]time.Time{}
				labs[key] = b
				labKeys = append(labKeys, key)
			}
			label := cmp.Or(o.Code.Label(), "(no description)")
			if p.At.After(b.labels[label]) || b.labels[label].IsZero() {
				b.labels[label] = p.At
			}
			b.add(label, p)
		}
	}
	for i, c := range vitalCharts {
		ch := &trendChart{ID: c.id, Title: c.title}
		for _, b := range vitals[i] {
			if p := b.finish(); p.plotted()+len(p.Apart) > 0 {
				ch.Panels = append(ch.Panels, p)
			}
		}
		for _, p := range ch.Panels {
			p.Caption = len(ch.Panels) > 1
		}
		if len(ch.Panels) > 0 {
			v.Vitals = append(v.Vitals, ch)
		}
	}
	type labChart struct {
		order int
		chart *trendChart
	}
	var lcs []labChart
	for _, key := range labKeys {
		b := labs[key]
		n := 0
		for _, s := range b.series {
			n += len(s.Points)
		}
		if n < labTrendMin {
			continue
		}
		// One series per lab: the same code under several labels is one
		// line, titled by the newest label.
		title, newest := "", time.Time{}
		for l, at := range b.labels {
			if title == "" || at.After(newest) || (at.Equal(newest) && l < title) {
				title, newest = l, at
			}
		}
		merged := &trendSeries{Name: title}
		for _, name := range b.order {
			merged.Points = append(merged.Points, b.series[name].Points...)
		}
		b.series, b.order = map[string]*trendSeries{title: merged}, []string{title}
		b.panel.Title = title
		p := b.finish()
		code := "" // the LOINC code, for the order and pairing of labs
		if after, ok := strings.CutPrefix(key, terminology.SystemLOINC+"|"); ok {
			code = after
		}
		lcs = append(lcs, labChart{cmp.Or(labOrder[code], 100), &trendChart{ID: p.ID, Title: title, Panels: []*trendPanel{p}, code: code}})
	}
	slices.SortStableFunc(lcs, func(a, b labChart) int {
		return cmp.Or(cmp.Compare(a.order, b.order), strings.Compare(a.chart.Title, b.chart.Title))
	})
	for _, lc := range lcs {
		v.Labs = append(v.Labs, lc.chart)
	}
	v.Labs = pairKidney(v.Labs)
	v.Meds, v.MedsHidden, v.MedsUndated = medTimeline(meds)
	v.Encounters, v.EncUndated = encTimeline(encs)
	if !since.IsZero() {
		v.window(since)
	}
	v.From, v.To = v.span()
	if !since.IsZero() && v.From.Before(since) {
		v.From = since // an order still active from before the window
	}
	v.Empty = len(v.Vitals)+len(v.Labs)+len(v.Meds)+len(v.Encounters) == 0
	return v
}

// window drops the medications and encounters that ended before since; a
// medication still active stays.
func (v *trendsView) window(since time.Time) {
	meds := v.Meds[:0]
	for _, r := range v.Meds {
		if r.Active || !r.Last.Before(since) {
			meds = append(meds, r)
			continue
		}
		v.Earlier += len(r.Orders)
	}
	v.Meds = meds
	rows := v.Encounters[:0]
	for _, r := range v.Encounters {
		kept := r.Encounters[:0]
		for _, e := range r.Encounters {
			if e.End.Before(since) {
				v.Earlier++
				continue
			}
			kept = append(kept, e)
		}
		if r.Encounters = kept; len(kept) > 0 {
			rows = append(rows, r)
		}
	}
	v.Encounters = rows
}

// vitalPart is one numeric value of a vital-sign observation and the LOINC
// code it stands for.
type vitalPart struct {
	code  string
	value *normalize.Value
}

// vitalParts splits a blood pressure into its systolic and diastolic values
// (from normalize's BloodPressure, or the components when it is absent);
// other vital signs are their own value.
func vitalParts(o *obsRec, loinc string) []vitalPart {
	if bp := o.BloodPressure; bp != nil {
		var out []vitalPart
		if bp.Systolic != nil {
			out = append(out, vitalPart{loincSystolic, bp.Systolic})
		}
		if bp.Diastolic != nil {
			out = append(out, vitalPart{loincDiastolic, bp.Diastolic})
		}
		return out
	}
	if len(o.Components) > 0 && (o.Value == nil || o.Value.Kind == normalize.KindAbsent) {
		var out []vitalPart
		for i := range o.Components {
			if c := o.Components[i].Code.Code; c == loincSystolic || c == loincDiastolic {
				out = append(out, vitalPart{c, &o.Components[i].Value})
			}
		}
		return out
	}
	if o.Value == nil {
		return nil
	}
	code := loinc
	if code == "" && o.Derived {
		code = o.Code.Code
	}
	return []vitalPart{{code, o.Value}}
}

// newTrendPoint makes a point of a numeric value; ok is false for values
// that are not numbers (text, codes, ranges, absent values).
func newTrendPoint(o *obsRec, v *normalize.Value, loinc string, fallback time.Time) (trendPoint, bool) {
	if v == nil || v.Number == nil || (v.Kind != normalize.KindQuantity && v.Kind != normalize.KindInteger) {
		return trendPoint{}, false
	}
	p := trendPoint{
		ID: o.ID, Date: o.Effective, dateText: displayDate(o.Effective), Received: formatValue(*v), Comparator: v.Comparator,
		Connection: cmp.Or(o.Source.Connection, o.Connection), Fetched: o.Fetched,
		RangeText: o.ReferenceRange, canonical: v.Canonical, number: *v.Number, loinc: loinc,
		keys: [2]string{foldUnit(v.UnitCode), foldUnit(v.Unit)},
	}
	if p.Fetched.IsZero() {
		p.Fetched = fallback
	}
	if t, ok := fhirTime(o.Effective); ok {
		p.At = t
	} else {
		p.Reason = "it has no usable date"
	}
	p.Flag, p.Abnormal = interpretationFlag(o.Interpretation)
	return p, true
}

// foldUnit folds a unit spelling for comparison.
func foldUnit(u string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(u), " ", ""))
}

// primary is the unit key a point is counted under when no canonical
// value exists: its UCUM code, else its unit text.
func (p *trendPoint) primary() string { return cmp.Or(p.keys[0], p.keys[1]) }

// finish chooses the panel's unit, sets each point's plotted value, range
// and flag, and moves the points that cannot be plotted apart.
func (b *panelBuilder) finish() *trendPanel {
	panel := b.panel
	// The plotted unit: the canonical unit most points reach, else the most
	// common unit as received.
	canon, raw := map[string]int{}, map[string]int{}
	display := map[string]string{}
	for _, name := range b.order {
		for i := range b.series[name].Points {
			p := &b.series[name].Points[i]
			if p.canonical != nil {
				canon[p.canonical.Unit]++
			} else {
				raw[p.primary()]++
				if display[p.primary()] == "" {
					display[p.primary()] = unitText(p.Received, p.Comparator, p.number)
				}
			}
		}
	}
	unitKey, fromCanon := most(canon), true
	if len(canon) == 0 {
		unitKey, fromCanon = most(raw), false
	}
	panel.Unit = unitKey
	if !fromCanon {
		panel.Unit = display[unitKey]
	}
	for i, name := range b.order {
		s := b.series[name]
		s.Class = "s" + strconv.Itoa(i%4)
		kept := s.Points[:0]
		for _, p := range s.Points {
			switch {
			case p.Reason != "":
			case fromCanon && p.canonical != nil && p.canonical.Unit == unitKey:
				p.Value, p.Converted = p.canonical.Number, !sameUnit(p.keys, unitKey)
			case fromCanon && p.canonical == nil && sameUnit(p.keys, unitKey):
				p.Value = p.number
			case fromCanon && p.canonical == nil:
				p.Reason = "its unit (" + cmp.Or(unitText(p.Received, p.Comparator, p.number), "none") + ") could not be converted to " + cmp.Or(unitKey, "the plotted unit")
			case fromCanon:
				p.Reason = "it converts to " + p.canonical.Unit + ", not " + unitKey
			case p.primary() == unitKey || sameUnit(p.keys, unitKey):
				p.Value = p.number
			default:
				p.Reason = "its unit (" + cmp.Or(unitText(p.Received, p.Comparator, p.number), "none") + ") differs from " + cmp.Or(panel.Unit, "the other results") + " and no conversion is known"
			}
			if p.Reason != "" {
				p.Value = p.number
				panel.Apart = append(panel.Apart, p)
				continue
			}
			p.Range = rangeIn(p.RangeText, unitKey, p.loinc, p.keys)
			if p.Range != nil && !p.Abnormal && !p.Range.contains(p.Value) {
				p.Abnormal = true
				if p.Range.HasHigh && p.Value > p.Range.High {
					p.Flag = "Above reference range"
				} else {
					p.Flag = "Below reference range"
				}
			}
			kept = append(kept, p)
		}
		s.Points = kept
		slices.SortStableFunc(s.Points, func(a, b trendPoint) int { return a.At.Compare(b.At) })
		if len(s.Points) > 0 {
			panel.Series = append(panel.Series, s)
		}
	}
	slices.SortStableFunc(panel.Apart, func(a, b trendPoint) int { return a.At.Compare(b.At) })
	return panel
}

// sameUnit reports whether a point's unit, as received, is unit.
func sameUnit(keys [2]string, unit string) bool {
	u := foldUnit(unit)
	return u != "" && (keys[0] == u || keys[1] == u) || u == "" && keys == [2]string{}
}

// unitText is the unit part of a received value ("lb" of "154 lb").
func unitText(received, comparator string, n float64) string {
	return strings.TrimSpace(strings.TrimPrefix(received, comparator+number(n)))
}

// most returns the key with the highest count, the smallest on ties.
func most(counts map[string]int) string {
	best, n := "", -1
	for k, c := range counts {
		if c > n || c == n && k < best {
			best, n = k, c
		}
	}
	return best
}

// rangeIn parses a reference range as normalize renders it ("3.5–5.1
// mmol/L", "≥40 mg/dL", "≤99 mg/dL", "0.6–1.3") and returns it in unit, or
// nil when it cannot be read or converted. A range without a unit is in
// the value's unit as received (keys).
func rangeIn(text, unit, loinc string, keys [2]string) *band {
	lo, hi, hasLo, hasHi, ru, ok := parseRange(text)
	if !ok {
		return nil
	}
	b := &band{Low: lo, High: hi, HasLow: hasLo, HasHigh: hasHi}
	from := ru
	if from == "" {
		from = cmp.Or(keys[0], keys[1])
	}
	if foldUnit(from) == foldUnit(unit) || (ru == "" && sameUnit(keys, unit)) {
		return b
	}
	conv, ok := terminology.BundledUnits().Find(loinc, "", from)
	if !ok || conv.To != unit {
		return nil
	}
	b.Low, b.High = conv.Apply(b.Low), conv.Apply(b.High)
	return b
}

// parseRange reads "lo–hi unit", "≥lo unit", "≤hi unit" (also with "-",
// ">=", "<=", ">" and "<").
func parseRange(s string) (lo, hi float64, hasLo, hasHi bool, unit string, ok bool) {
	s = strings.TrimSpace(s)
	prefix := ""
	for _, p := range []string{"≥", "≤", ">=", "<=", ">", "<"} {
		if strings.HasPrefix(s, p) {
			prefix, s = p, strings.TrimSpace(s[len(p):])
			break
		}
	}
	first, rest, ok := leadingNumber(s)
	if !ok {
		return 0, 0, false, false, "", false
	}
	rest = strings.TrimSpace(rest)
	switch prefix {
	case "≥", ">=", ">":
		return first, 0, true, false, rest, true
	case "≤", "<=", "<":
		return 0, first, false, true, rest, true
	}
	for _, dash := range []string{"–", "-", "—"} {
		if strings.HasPrefix(rest, dash) {
			second, tail, ok := leadingNumber(strings.TrimSpace(rest[len(dash):]))
			if !ok || second < first {
				return 0, 0, false, false, "", false
			}
			return first, second, true, true, strings.TrimSpace(tail), true
		}
	}
	return 0, 0, false, false, "", false
}

// leadingNumber parses the decimal at the start of s.
func leadingNumber(s string) (float64, string, bool) {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	digits := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
		digits++
	}
	if digits == 0 {
		return 0, s, false
	}
	f, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, s, false
	}
	return f, s[i:], true
}

// domID makes a string safe and short for an HTML id.
func domID(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 48 {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// medTimeline groups medication orders by drug, newest activity first.
func medTimeline(meds []normalize.MedicationRequest) (rows []*medRow, hidden, undated int) {
	byLabel := map[string]*medRow{}
	for _, m := range meds {
		if m.Status == "entered-in-error" {
			continue
		}
		t, ok := fhirTime(m.AuthoredOn)
		if !ok {
			undated++
			continue
		}
		label := cmp.Or(m.Medication.Label(), "(no description)")
		r := byLabel[label]
		if r == nil {
			r = &medRow{Label: label}
			byLabel[label] = r
			rows = append(rows, r)
		}
		o := medOrder{At: t, Date: m.AuthoredOn, Status: m.Status, Dosage: m.Dosage, Stale: m.Stale}
		o.Start, _ = fhirTime(m.Start)
		o.End, _ = fhirTime(m.End)
		r.Orders = append(r.Orders, o)
		first := t
		if !o.Start.IsZero() && o.Start.Before(first) {
			first = o.Start
		}
		if r.First.IsZero() || first.Before(r.First) {
			r.First = first
		}
		if !t.Before(r.Last) {
			r.Last, r.Status, r.Active, r.Stale, r.StaleReason = t, m.Status, m.Active, m.Stale, m.StaleReason
			r.End, r.EndAt, r.EndFrom = "", time.Time{}, ""
			if !o.End.IsZero() {
				r.End, r.EndAt, r.EndFrom = m.End, o.End, m.PeriodFrom
			}
		}
	}
	for _, r := range rows {
		slices.SortStableFunc(r.Orders, func(a, b medOrder) int { return a.At.Compare(b.At) })
	}
	slices.SortStableFunc(rows, func(a, b *medRow) int {
		if a.Active != b.Active {
			if a.Active {
				return -1
			}
			return 1
		}
		return cmp.Or(b.Last.Compare(a.Last), strings.Compare(a.Label, b.Label))
	})
	if len(rows) > medTimelineLimit {
		hidden = len(rows) - medTimelineLimit
		rows = rows[:medTimelineLimit]
	}
	return rows, hidden, undated
}

// encTimeline groups encounters by class.
func encTimeline(encs []normalize.Encounter) (rows []*encRow, undated int) {
	byClass := map[string]*encRow{}
	for _, e := range encs {
		if e.Status == "entered-in-error" || e.Status == "cancelled" {
			continue
		}
		start, ok := fhirTime(e.Start)
		if !ok {
			undated++
			continue
		}
		m := encMark{Start: start, End: start, StartText: e.Start, EndText: e.End, Type: e.Type.Label(),
			Class: cmp.Or(encounterClass(e.Class), "Unknown class"), Status: e.Status}
		if end, ok := fhirTime(e.End); ok && end.After(start) {
			m.End = end
		}
		if e.Telehealth && e.Class != "VR" {
			m.Class += " (telehealth)"
		}
		r := byClass[m.Class]
		if r == nil {
			r = &encRow{Label: m.Class}
			byClass[m.Class] = r
			rows = append(rows, r)
		}
		r.Encounters = append(r.Encounters, m)
	}
	for _, r := range rows {
		slices.SortStableFunc(r.Encounters, func(a, b encMark) int { return a.Start.Compare(b.Start) })
	}
	slices.SortStableFunc(rows, func(a, b *encRow) int {
		return cmp.Or(cmp.Compare(len(b.Encounters), len(a.Encounters)), strings.Compare(a.Label, b.Label))
	})
	return rows, undated
}

// span is the time axis shared by every plot and timeline: from the first
// to the last dated item, padded so that points do not sit on the edges.
func (v *trendsView) span() (from, to time.Time) {
	see := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if from.IsZero() || t.Before(from) {
			from = t
		}
		if to.IsZero() || t.After(to) {
			to = t
		}
	}
	for _, c := range slices.Concat(v.Vitals, v.Labs) {
		for _, p := range c.Panels {
			for _, s := range p.Series {
				for _, pt := range s.Points {
					see(pt.At)
				}
			}
		}
	}
	for _, r := range v.Meds {
		see(r.First)
		see(r.Last)
	}
	for _, r := range v.Encounters {
		for _, e := range r.Encounters {
			see(e.Start)
			see(e.End)
		}
	}
	return padSpan(from, to)
}

// padSpan widens [from, to] by 3% on each side, and to at least 30 days.
func padSpan(from, to time.Time) (time.Time, time.Time) {
	if from.IsZero() {
		return from, to
	}
	d := to.Sub(from)
	if d < 30*24*time.Hour {
		mid := from.Add(d / 2)
		return mid.Add(-15 * 24 * time.Hour), mid.Add(15 * 24 * time.Hour)
	}
	pad := d * 3 / 100
	return from.Add(-pad), to.Add(pad)
}
