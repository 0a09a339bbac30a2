package dashboard

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"ehrgate/normalize"
)

// funcs are the template helpers.
func (d *Dashboard) funcs() template.FuncMap {
	return template.FuncMap{
		"chartURL": chartURL,
		"date":     displayDate,
		"day":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"ago":      func(t time.Time) string { return relative(t, d.now()) },
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"system":   systemName,
		"join":     strings.Join,
		"plural":   plural,
		"srcs":     d.sourceLabels,
	}
}

// chartURL is the path of a patient's chart.
func chartURL(connection, id string) string {
	return "/patients/" + url.PathEscape(connection) + "/" + url.PathEscape(id)
}

// plural returns "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// relative describes t relative to now in words ("3 hours ago").
func relative(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		if d > -time.Minute {
			return "just now"
		}
		return "in the future"
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute", "minutes") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour", "hours") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day", "days") + " ago"
	case d < 2*365*24*time.Hour:
		return plural(int(d/(30*24*time.Hour)), "month", "months") + " ago"
	default:
		return plural(int(d/(365*24*time.Hour)), "year", "years") + " ago"
	}
}

// fhirTime parses a FHIR date or dateTime of any precision.
func fhirTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// displayDate shortens a FHIR date or dateTime for display: dates stay as
// they are, dateTimes lose seconds and keep their own offset.
func displayDate(s string) string {
	if s == "" {
		return "—"
	}
	if len(s) <= len("2006-01-02") {
		return s
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.Format("2006-01-02 15:04")
	}
	return s
}

// newer reports whether FHIR time a sorts after b; unparseable values sort
// last, ties fall back to the strings.
func newer(a, b string) bool {
	ta, oka := fhirTime(a)
	tb, okb := fhirTime(b)
	switch {
	case oka && okb && !ta.Equal(tb):
		return ta.After(tb)
	case oka != okb:
		return oka
	default:
		return a > b
	}
}

// age returns the age at now of someone born on birthDate (YYYY-MM-DD),
// in years, or in months under two years; "" when unknown.
func age(birthDate string, now time.Time) string {
	b, err := time.Parse("2006-01-02", birthDate)
	if err != nil || b.After(now) {
		return ""
	}
	y, m, dd := now.Date()
	months := (y-b.Year())*12 + int(m) - int(b.Month())
	if dd < b.Day() {
		months--
	}
	if months < 24 {
		return plural(months, "month", "months")
	}
	return plural(months/12, "year", "years")
}

// systemName shortens well-known code system URIs.
func systemName(uri string) string {
	switch uri {
	case "http://snomed.info/sct":
		return "SNOMED CT"
	case "http://hl7.org/fhir/sid/icd-10-cm":
		return "ICD-10-CM"
	case "http://hl7.org/fhir/sid/icd-10":
		return "ICD-10"
	case "http://loinc.org":
		return "LOINC"
	case "http://www.nlm.nih.gov/research/umls/rxnorm":
		return "RxNorm"
	case "http://hl7.org/fhir/sid/cvx":
		return "CVX"
	case "http://www.ama-assn.org/go/cpt":
		return "CPT"
	case "":
		return ""
	}
	if i := strings.LastIndexAny(uri, "/:"); i >= 0 && i < len(uri)-1 {
		return uri[i+1:]
	}
	return uri
}

// number formats a decimal without trailing zeros.
func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// unit returns the human unit of v, falling back to its UCUM code.
func unit(v normalize.Value) string {
	if v.Unit != "" {
		return v.Unit
	}
	return v.UnitCode
}

// withUnit appends a unit to s when there is one.
func withUnit(s, u string) string {
	if u == "" {
		return s
	}
	return s + " " + u
}

// formatValue renders an observation value of any kind.
func formatValue(v normalize.Value) string {
	switch v.Kind {
	case "quantity", "integer":
		if v.Number != nil {
			return withUnit(v.Comparator+number(*v.Number), unit(v))
		}
	case "concept":
		if v.Concept != nil {
			return v.Concept.Label()
		}
	case "boolean":
		if v.Bool != nil {
			if *v.Bool {
				return "Yes"
			}
			return "No"
		}
	case "range":
		if v.Low != nil || v.High != nil {
			return withUnit(bound(v.Low)+"–"+bound(v.High), unit(v))
		}
	case "ratio":
		if v.Low != nil || v.High != nil {
			return bound(v.Low) + ":" + bound(v.High)
		}
	case "absent":
		if v.Text != "" {
			return "Not recorded (" + v.Text + ")"
		}
		return "Not recorded"
	}
	if v.Text != "" {
		return v.Text
	}
	if v.Number != nil {
		return withUnit(v.Comparator+number(*v.Number), unit(v))
	}
	return "—"
}

func bound(f *float64) string {
	if f == nil {
		return "?"
	}
	return number(*f)
}

// LOINC codes of the blood pressure panel and its parts.
const (
	loincBPPanel   = "85354-9"
	loincSystolic  = "8480-6"
	loincDiastolic = "8462-4"
)

// observationValue renders an observation's value, combining components
// when there is no single value: a blood pressure panel reads "120/80 mm[Hg]".
func observationValue(o normalize.Observation) string {
	if o.Value != nil && o.Value.Kind != "" && !(o.Value.Kind == "absent" && len(o.Components) > 0) {
		return formatValue(*o.Value)
	}
	if len(o.Components) == 0 {
		if o.Value != nil {
			return formatValue(*o.Value)
		}
		return "—"
	}
	var sys, dia *normalize.Value
	for i := range o.Components {
		switch o.Components[i].Code.Code {
		case loincSystolic:
			sys = &o.Components[i].Value
		case loincDiastolic:
			dia = &o.Components[i].Value
		}
	}
	if sys != nil && dia != nil && sys.Number != nil && dia.Number != nil {
		u := unit(*sys)
		if u == "" {
			u = unit(*dia)
		}
		return withUnit(number(*sys.Number)+"/"+number(*dia.Number), u)
	}
	parts := make([]string, 0, len(o.Components))
	for _, c := range o.Components {
		parts = append(parts, fmt.Sprintf("%s: %s", c.Code.Label(), formatValue(c.Value)))
	}
	return strings.Join(parts, "; ")
}

// interpretationFlag shortens an interpretation and says whether it is
// abnormal. Normal results return ("", false) so the table stays quiet.
func interpretationFlag(s string) (label string, abnormal bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "n", "normal":
		return "", false
	case "h", "high":
		return "High", true
	case "l", "low":
		return "Low", true
	case "hh", "critical high", "critically high":
		return "Critical high", true
	case "ll", "critical low", "critically low":
		return "Critical low", true
	case "a", "abnormal":
		return "Abnormal", true
	case "aa", "critical abnormal", "critically abnormal":
		return "Critical", true
	case "pos", "positive", "detected":
		return "Positive", true
	case "neg", "negative", "not detected", "nd":
		return "Negative", false
	}
	return s, true
}

// encounterClass expands the common v3 ActCode encounter classes.
func encounterClass(c string) string {
	switch c {
	case "AMB":
		return "Ambulatory"
	case "IMP":
		return "Inpatient"
	case "EMER":
		return "Emergency"
	case "VR":
		return "Virtual"
	case "HH":
		return "Home health"
	case "OBSENC":
		return "Observation"
	case "SS":
		return "Short stay"
	case "ACUTE":
		return "Inpatient acute"
	case "NONAC":
		return "Inpatient non-acute"
	case "PRENC":
		return "Pre-admission"
	case "FLD":
		return "Field"
	}
	return c
}

// capitalize upper-cases the first letter of a code such as "high".
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
