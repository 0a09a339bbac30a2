// Package fhirdate is FHIR date search for the simulated EHR: the range a
// date, dateTime or instant of any precision stands for, and the comparators
// of http://hl7.org/fhir/R4/search.html#prefix. The REST search and the Bulk
// Data _typeFilter of the simulator share it.
package fhirdate

import (
	"fmt"
	"strings"
	"time"
)

// Span is the half-open instant range [Lo, Hi) a FHIR date value stands
// for: "2024" is the whole year, "2024-03-01T10:00:00Z" one second.
type Span struct {
	Lo, Hi time.Time
}

// MinTime and MaxTime stand for the open ends of a Period.
var (
	MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// layouts are the FHIR date, dateTime and instant shapes with the size of
// the range each precision covers. Dates without a zone are taken as UTC;
// time.Parse accepts a fraction after the seconds of any layout.
var layouts = []struct {
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

// ParseSpan parses a FHIR date, dateTime or instant of any precision into
// the range it covers.
func ParseSpan(s string) (Span, error) {
	if len(s) >= 4 {
		for _, l := range layouts {
			if t, err := time.Parse(l.layout, s); err == nil {
				t = t.UTC()
				hi := l.step(t).UTC()
				if strings.Contains(s, ".") {
					hi = t.Add(time.Millisecond) // instants: millisecond precision
				}
				return Span{Lo: t, Hi: hi}, nil
			}
		}
	}
	return Span{}, fmt.Errorf("not a FHIR date: %q", s)
}

// Query is one date search value: a comparator and the range of the given
// value.
type Query struct {
	Prefix string
	Span   Span
}

// ParseQuery parses a date search value such as "ge2024-01" or
// "2024-03-01T10:00:00Z".
func ParseQuery(v string) (Query, error) {
	q := Query{Prefix: "eq"}
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		switch p := v[:2]; p {
		case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap":
			q.Prefix, v = p, v[2:]
		default:
			return q, fmt.Errorf("unknown date prefix %q", p)
		}
	}
	// A '+' in a zone offset arrives as a space when the client did not
	// escape it.
	sp, err := ParseSpan(strings.Replace(v, " ", "+", 1))
	if err != nil {
		return q, err
	}
	q.Span = sp
	return q, nil
}

// Matches reports whether a resource value range satisfies the query, with
// the range semantics of FHIR R4 search: eq means the value lies within the
// given range, gt that the value extends after it, sa that it starts after
// it, and so on.
func (q Query) Matches(v Span) bool {
	p := q.Span
	eq := !v.Lo.Before(p.Lo) && !v.Hi.After(p.Hi)
	switch q.Prefix {
	case "eq":
		return eq
	case "ne":
		return !eq
	case "gt":
		return v.Hi.After(p.Hi)
	case "lt":
		return v.Lo.Before(p.Lo)
	case "ge":
		return eq || v.Hi.After(p.Hi)
	case "le":
		return eq || v.Lo.Before(p.Lo)
	case "sa":
		return !v.Lo.Before(p.Hi)
	case "eb":
		return !v.Hi.After(p.Lo)
	case "ap":
		return v.Lo.Before(p.Hi) && v.Hi.After(p.Lo)
	}
	return false
}
