package fhirapi

import (
	"fmt"
	"strings"
	"time"
)

// span is the half-open time range [lo, hi) a FHIR date, dateTime,
// instant or Period covers: a date to the day covers the whole day
// (FHIR R4 search, section 3.1.1.4.3 "date": "the range of the value").
type span struct{ lo, hi time.Time }

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// parseSpan reads a FHIR date/dateTime/instant at its precision: YYYY,
// YYYY-MM, YYYY-MM-DD, or a time to the minute, second or fraction with a
// zone. A time without a zone (which FHIR forbids in resources but search
// values may omit) is read as UTC.
func parseSpan(s string) (span, error) {
	s = strings.TrimSpace(s)
	switch len(s) {
	case 4:
		t, err := time.Parse("2006", s)
		return span{t, t.AddDate(1, 0, 0)}, wrapDate(s, err)
	case 7:
		t, err := time.Parse("2006-01", s)
		return span{t, t.AddDate(0, 1, 0)}, wrapDate(s, err)
	case 10:
		t, err := time.Parse("2006-01-02", s)
		return span{t, t.AddDate(0, 0, 1)}, wrapDate(s, err)
	}
	if len(s) < 16 || s[10] != 'T' {
		return span{}, fmt.Errorf("%q is not a FHIR date or dateTime", s)
	}
	body, zone := splitZone(s[11:])
	loc := time.UTC
	if zone != "" && zone != "Z" {
		z, err := time.Parse("-07:00", zone)
		if err != nil {
			return span{}, fmt.Errorf("%q has a malformed time zone", s)
		}
		loc = z.Location()
	}
	var layout string
	var step time.Duration
	switch {
	case len(body) == 5:
		layout, step = "15:04", time.Minute
	case len(body) == 8:
		layout, step = "15:04:05", time.Second
	case len(body) > 9 && body[8] == '.':
		layout, step = "15:04:05."+strings.Repeat("0", len(body)-9), time.Millisecond
	default:
		return span{}, fmt.Errorf("%q is not a FHIR dateTime", s)
	}
	t, err := time.ParseInLocation("2006-01-02T"+layout, s[:11]+body, loc)
	if err != nil {
		return span{}, wrapDate(s, err)
	}
	return span{t, t.Add(step)}, nil
}

func wrapDate(s string, err error) error {
	if err != nil {
		return fmt.Errorf("%q is not a FHIR date: %w", s, err)
	}
	return nil
}

// splitZone splits "10:00:00+02:00" into the time and its zone.
func splitZone(s string) (body, zone string) {
	if strings.HasSuffix(s, "Z") {
		return s[:len(s)-1], "Z"
	}
	if i := strings.LastIndexAny(s, "+-"); i > 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// datePrefixes are the comparators a date search value may start with.
var datePrefixes = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

// dateTest is one date search value: a comparator and the searched range.
type dateTest struct {
	prefix string
	s      span
}

func parseDateTest(v string) (dateTest, error) {
	prefix := "eq"
	for _, p := range datePrefixes {
		if strings.HasPrefix(v, p) {
			prefix, v = p, v[2:]
			break
		}
	}
	s, err := parseSpan(v)
	return dateTest{prefix, s}, err
}

// matches applies the comparator to a target range as FHIR search defines
// them (R4 search 3.1.1.4.3, table of prefixes for ranges).
func (d dateTest) matches(t span, now time.Time) bool {
	s := d.s
	contains := !t.lo.Before(s.lo) && !t.hi.After(s.hi)
	switch d.prefix {
	case "eq":
		return contains
	case "ne":
		return !contains
	case "gt":
		return t.hi.After(s.hi)
	case "lt":
		return t.lo.Before(s.lo)
	case "ge":
		return t.hi.After(s.hi) || contains
	case "le":
		return t.lo.Before(s.lo) || contains
	case "sa":
		return !t.lo.Before(s.hi)
	case "eb":
		return !t.hi.After(s.lo)
	case "ap":
		// Approximately: within 10% of the distance between the value
		// and now, and at least a day, either side (the spec leaves the
		// margin to the server).
		gap := now.Sub(s.lo)
		if gap < 0 {
			gap = -gap
		}
		margin := max(gap/10, 24*time.Hour)
		return t.lo.Before(s.hi.Add(margin)) && t.hi.After(s.lo.Add(-margin))
	}
	return false
}
