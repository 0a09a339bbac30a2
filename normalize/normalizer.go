package normalize

import (
	"context"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"ehrgate/terminology"
)

// LocalCodes looks a connection's local code up in its local-code map.
// *terminology.LocalMap (one file, rows per connection) and
// terminology.ConnectionMaps (one file per connection) implement it; it must
// be safe for concurrent use.
type LocalCodes interface {
	Lookup(connection, system, code string) (terminology.Target, bool)
}

// DefaultStaleAfter is the quiet period after which an "active" medication
// order with no activity is flagged stale.
const DefaultStaleAfter = 365 * 24 * time.Hour

// Normalizer normalizes resources with a configured terminology chain. The
// zero value is not usable; build one with New. A Normalizer is read-only
// after construction and safe for concurrent use (a LocalCodes map may
// reload underneath it).
type Normalizer struct {
	local      LocalCodes
	matcher    *terminology.TextMatcher
	threshold  float64
	drugs      *terminology.DrugTable
	ndc        terminology.NDCLookup
	ndcTimeout time.Duration
	conds      *terminology.ConditionTable
	units      *terminology.UnitTable
	now        func() time.Time
	staleAfter time.Duration
}

// Option configures a Normalizer.
type Option func(*Normalizer)

// WithLocalCodes sets the local-code map consulted after standard codes
// (typically a *terminology.LocalMap read from the file a person edits).
func WithLocalCodes(l LocalCodes) Option { return func(n *Normalizer) { n.local = l } }

// WithTextMatcher replaces the text matcher (default: the bundled LOINC
// matcher) and its threshold (default terminology.DefaultThreshold). A nil
// matcher turns text mapping off.
func WithTextMatcher(m *terminology.TextMatcher, threshold float64) Option {
	return func(n *Normalizer) { n.matcher, n.threshold = m, threshold }
}

// WithDrugs replaces the RxNorm/NDC table (default: the bundled one).
func WithDrugs(t *terminology.DrugTable) Option { return func(n *Normalizer) { n.drugs = t } }

// WithNDCLookup adds an online NDC lookup tried when the table has no
// answer, each call bounded by timeout. Off by default.
func WithNDCLookup(l terminology.NDCLookup, timeout time.Duration) Option {
	return func(n *Normalizer) { n.ndc, n.ndcTimeout = l, timeout }
}

// WithClock sets the clock stale-order detection uses (default time.Now).
func WithClock(now func() time.Time) Option { return func(n *Normalizer) { n.now = now } }

// WithStaleAfter sets the quiet period after which an active medication
// order is flagged stale (default DefaultStaleAfter; 0 turns it off).
func WithStaleAfter(d time.Duration) Option { return func(n *Normalizer) { n.staleAfter = d } }

// New returns a Normalizer with the bundled tables and the given options.
func New(opts ...Option) *Normalizer {
	n := &Normalizer{
		matcher:    terminology.BundledMatcher(),
		threshold:  terminology.DefaultThreshold,
		drugs:      terminology.BundledDrugs(),
		conds:      terminology.BundledConditions(),
		units:      terminology.BundledUnits(),
		now:        time.Now,
		staleAfter: DefaultStaleAfter,
		ndcTimeout: 5 * time.Second,
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

var defaultNormalizer atomic.Pointer[Normalizer]

// Default returns the Normalizer the package-level Normalize uses.
func Default() *Normalizer {
	if n := defaultNormalizer.Load(); n != nil {
		return n
	}
	defaultNormalizer.CompareAndSwap(nil, New())
	return defaultNormalizer.Load()
}

// SetDefault makes n the Normalizer the package-level Normalize uses.
func SetDefault(n *Normalizer) { defaultNormalizer.Store(n) }

// Normalize is the package-level Normalize with this Normalizer's chain.
func (n *Normalizer) Normalize(ref Ref, raw []byte) (Resource, error) {
	res, err := decodeAs(ref, raw)
	if err != nil {
		return nil, err
	}
	conn := res.Base().Source.Connection
	switch r := res.(type) {
	case *Observation:
		n.observation(conn, r)
	case *Condition:
		n.mapConcept(conn, terminology.ConditionCode, &r.Code)
		r.Groups = n.groups(&r.Code)
	case *MedicationRequest:
		n.medication(conn, r)
	case *Immunization:
		n.mapConcept(conn, terminology.ImmunizationVaccine, &r.Vaccine)
	case *AllergyIntolerance:
		n.mapConcept(conn, terminology.AllergySubstance, &r.Substance)
	case *Procedure:
		n.mapConcept(conn, terminology.ProcedureCode, &r.Code)
	case *DiagnosticReport:
		n.mapConcept(conn, terminology.DiagnosticReportCode, &r.Code)
	}
	return res, nil
}

// mapConcept runs the terminology chain on c: standard code as is, local-code
// map, NDC to RxNorm (medications), text matcher (Observation.code), else
// unmapped. Nothing below the matcher's threshold is mapped.
func (n *Normalizer) mapConcept(conn string, ctx terminology.Context, c *Concept) {
	if c.Code == "" && c.Text == "" && len(c.Original) == 0 {
		return
	}
	if c.Standard {
		c.Mapping, c.Confidence = MappingStandard, 1
		return
	}
	if n.local != nil {
		for _, o := range c.Original {
			if o.Code == "" {
				continue
			}
			if t, ok := n.local.Lookup(conn, o.System, o.Code); ok {
				c.System, c.Code, c.Display = t.System, t.Code, t.Display
				c.Standard, c.Mapping, c.Confidence = true, MappingLocal, 1
				return
			}
		}
	}
	if ctx == terminology.MedicationCode {
		for _, o := range c.Original {
			if terminology.Canonical(o.System) != terminology.SystemNDC {
				continue
			}
			if cui, ok := n.rxcuiForNDC(o.Code); ok {
				c.System, c.Code, c.Display = terminology.SystemRxNorm, cui, ""
				if d, ok := n.drugs.Drug(cui); ok {
					c.Display = d.Name
				}
				c.Standard, c.Mapping, c.Confidence = true, MappingNDC, 1
				return
			}
		}
	}
	if ctx == terminology.ObservationCode && n.matcher != nil {
		text := c.Text
		if text == "" {
			for _, o := range c.Original {
				if o.Display != "" {
					text = o.Display
					break
				}
			}
		}
		if text != "" {
			if m, ok := n.matcher.Match(text); ok && m.Confidence >= n.threshold {
				c.System, c.Code, c.Display = m.System, m.Code, m.Display
				c.Standard, c.Mapping, c.Confidence = true, MappingText, m.Confidence
				return
			}
		}
	}
	c.Mapping, c.Confidence = MappingUnmapped, 0
}

func (n *Normalizer) rxcuiForNDC(ndc string) (string, bool) {
	if n.drugs != nil {
		if cui, ok := n.drugs.RxCUIForNDC(ndc); ok {
			return cui, true
		}
	}
	if n.ndc == nil {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.ndcTimeout)
	defer cancel()
	cui, ok, err := n.ndc.LookupNDC(ctx, ndc)
	if err != nil {
		return "", false // an unreachable service leaves the code unmapped
	}
	return cui, ok
}

// groups returns the clinical groups of every coding of a condition code.
func (n *Normalizer) groups(c *Concept) []string {
	var out []string
	add := func(system, code string) {
		for _, g := range n.conds.Categories(system, code) {
			if !contains(out, g) {
				out = append(out, g)
			}
		}
	}
	add(c.System, c.Code)
	for _, o := range c.Original {
		add(o.System, o.Code)
	}
	sortStrings(out)
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// LOINC codes of blood-pressure observations.
const (
	loincBPPanel     = "85354-9"
	loincBPPanelOld  = "55284-4"
	loincSystolic    = "8480-6"
	loincDiastolic   = "8462-4"
	loincBodyWeight  = "29463-7"
	loincBodyHeight  = "8302-2"
	loincBMI         = "39156-5"
	systemLOINC      = terminology.SystemLOINC
	systemUCUM       = terminology.SystemUCUM
	bpFromComponents = "components"
	bpFromObs        = "observation"
)

func (n *Normalizer) observation(conn string, o *Observation) {
	n.mapConcept(conn, terminology.ObservationCode, &o.Code)
	for i := range o.Components {
		n.mapConcept(conn, terminology.ObservationCode, &o.Components[i].Code)
	}
	code := ""
	if o.Code.System == systemLOINC {
		code = o.Code.Code
	}
	n.canonical(code, o.Value)
	var bp BP
	for i := range o.Components {
		c := &o.Components[i]
		cc := ""
		if c.Code.System == systemLOINC {
			cc = c.Code.Code
		}
		n.canonical(cc, &c.Value)
		switch cc {
		case loincSystolic:
			bp.Systolic = &c.Value
		case loincDiastolic:
			bp.Diastolic = &c.Value
		}
	}
	switch {
	case bp.Systolic != nil || bp.Diastolic != nil:
		bp.From = bpFromComponents
		o.BloodPressure = &bp
	case code == loincSystolic && o.Value != nil:
		o.BloodPressure = &BP{Systolic: o.Value, From: bpFromObs}
	case code == loincDiastolic && o.Value != nil:
		o.BloodPressure = &BP{Diastolic: o.Value, From: bpFromObs}
	}
}

// canonical sets v.Canonical for a quantity whose unit the table knows.
func (n *Normalizer) canonical(loinc string, v *Value) {
	if v == nil || v.Kind != KindQuantity || v.Number == nil || n.units == nil {
		return
	}
	conv, ok := n.units.Find(loinc, v.UnitCode, v.Unit)
	if !ok {
		return
	}
	v.Canonical = &Canonical{Number: round(conv.Apply(*v.Number), 4), Unit: conv.To}
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

func (n *Normalizer) medication(conn string, m *MedicationRequest) {
	n.mapConcept(conn, terminology.MedicationCode, &m.Medication)
	if m.Medication.System == terminology.SystemRxNorm && n.drugs != nil {
		if d, ok := n.drugs.Drug(m.Medication.Code); ok {
			m.DrugLevel = d.Level()
			if d.IngredientCUI != "" {
				m.Ingredient = &Coding{System: terminology.SystemRxNorm, Code: d.IngredientCUI, Display: d.IngredientName}
			}
		}
	}
	if !m.Active {
		return
	}
	// An active order whose own period (dosage bounds or validity) has
	// ended is stale whatever the quiet period.
	if end, ok := parseFHIRTime(m.End); ok && n.now().After(periodEnd(m.End, end)) {
		m.Stale = true
		what := "its dosage period"
		if m.PeriodFrom == PeriodValidity {
			what = "its prescription's validity period"
		}
		m.StaleReason = "status " + m.Status + " but " + what + " ended on " + m.End
		return
	}
	if n.staleAfter <= 0 {
		return
	}
	last, ok := parseFHIRTime(m.AuthoredOn)
	if !ok {
		return
	}
	if quiet := n.now().Sub(last); quiet > n.staleAfter {
		m.Stale = true
		m.StaleReason = "status " + m.Status + " but no activity since authoredOn for over " + humanDays(n.staleAfter)
	}
}

func humanDays(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	if days%365 == 0 {
		if days == 365 {
			return "1 year"
		}
		return formatInt(days/365) + " years"
	}
	return formatInt(days) + " days"
}

func formatInt(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	p := len(b)
	for ; i > 0; i /= 10 {
		p--
		b[p] = byte('0' + i%10)
	}
	return string(b[p:])
}

// parseFHIRTime parses a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD,
// or a full timestamp).
// periodEnd is the instant a period's end s (parsed as t) is over: a date
// or partial date ends with its last day, a dateTime at itself.
func periodEnd(s string, t time.Time) time.Time {
	switch len(strings.TrimSpace(s)) {
	case 4:
		return t.AddDate(1, 0, 0)
	case 7:
		return t.AddDate(0, 1, 0)
	case 10:
		return t.AddDate(0, 0, 1)
	}
	return t
}

func parseFHIRTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Interface guards.
var (
	_ LocalCodes = (*terminology.LocalMap)(nil)
	_ LocalCodes = terminology.ConnectionMaps(nil)
)
