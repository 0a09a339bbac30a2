package ehrsim

import (
	"fmt"
	"strings"
	"time"
)

// span is the half-open instant range [lo, hi) a FHIR date value stands
// for: "2024" is the whole year, "2024-03-01T10:00:00Z" one second. A zero
// lo or hi is unbounded (an open Period end).
type span struct {
	lo, hi time.Time
}

var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// dateLayouts are the FHIR date, dateTime and instant shapes with the size
// of the range each precision covers. Dates without a zone are taken as UTC;
// time.Parse accepts a fraction after the seconds of any layout.
var dateLayouts = []struct {
	layout string
	step   func(time.Time) time.Time
}{
	{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
	{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
	{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
	{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
}

// parseSpan parses a FHIR date, dateTime or instant of any precision into
// the range it covers.
func parseSpan(s string) (span, error) {
	for _, l := range dateLayouts {
		if len(s) < 4 {
			break
		}
		if t, err := time.Parse(l.layout, s); err == nil {
			t = t.UTC()
			hi := l.step(t).UTC()
			if strings.Contains(s, ".") {
				hi = t.Add(time.Millisecond) // instants: millisecond precision
			}
			return span{lo: t, hi: hi}, nil
		}
	}
	return span{}, fmt.Errorf("not a FHIR date: %q", s)
}

// spansOf turns a date element (a string, or a Period object) into spans.
func spansOf(v any) []span {
	switch x := v.(type) {
	case string:
		if sp, err := parseSpan(x); err == nil {
			return []span{sp}
		}
	case map[string]any:
		start, _ := x["start"].(string)
		end, _ := x["end"].(string)
		if start == "" && end == "" {
			return nil
		}
		sp := span{lo: minTime, hi: maxTime}
		if s, err := parseSpan(start); err == nil {
			sp.lo = s.lo
		}
		if e, err := parseSpan(end); err == nil {
			sp.hi = e.hi
		}
		return []span{sp}
	}
	return nil
}

// datePrefixes are the comparators of http://hl7.org/fhir/R4/search.html#prefix.
var datePrefixes = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

// dateQuery is one date search value: a comparator and the range of the
// given value.
type dateQuery struct {
	prefix string
	span   span
}

// parseDateQuery parses a date search value such as "ge2024-01" or
// "2024-03-01T10:00:00Z".
func parseDateQuery(v string) (dateQuery, error) {
	q := dateQuery{prefix: "eq"}
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		p := v[:2]
		known := false
		for _, k := range datePrefixes {
			known = known || k == p
		}
		if !known {
			return q, fmt.Errorf("unknown date prefix %q", p)
		}
		q.prefix, v = p, v[2:]
	}
	// A '+' in a zone offset arrives as a space when the client did not
	// escape it.
	sp, err := parseSpan(strings.Replace(v, " ", "+", 1))
	if err != nil {
		return q, err
	}
	q.span = sp
	return q, nil
}

// matches reports whether a resource value range satisfies the query, with
// the range semantics of FHIR R4 search: eq means the value lies within the
// given range, gt that the value extends after it, sa that it starts after
// it, and so on.
func (q dateQuery) matches(v span) bool {
	p := q.span
	eq := !v.lo.Before(p.lo) && !v.hi.After(p.hi)
	switch q.prefix {
	case "eq":
		return eq
	case "ne":
		return !eq
	case "gt":
		return v.hi.After(p.hi)
	case "lt":
		return v.lo.Before(p.lo)
	case "ge":
		return eq || v.hi.After(p.hi)
	case "le":
		return eq || v.lo.Before(p.lo)
	case "sa":
		return !v.lo.Before(p.hi)
	case "eb":
		return !v.hi.After(p.lo)
	case "ap":
		return v.lo.Before(p.hi) && v.hi.After(p.lo)
	}
	return false
}
