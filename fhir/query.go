package fhir

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Prefix is a FHIR search comparison prefix for dates and numbers.
type Prefix string

// Search prefixes (http://hl7.org/fhir/R4/search.html#prefix).
const (
	EQ Prefix = "eq"
	NE Prefix = "ne"
	GT Prefix = "gt"
	LT Prefix = "lt"
	GE Prefix = "ge"
	LE Prefix = "le"
	SA Prefix = "sa"
	EB Prefix = "eb"
)

// Query is a set of typed FHIR search parameters. The zero value is empty
// and ready to use; methods return the Query so calls chain.
type Query struct {
	v url.Values
}

// NewQuery returns an empty query.
func NewQuery() *Query { return &Query{v: url.Values{}} }

func (q *Query) values() url.Values {
	if q.v == nil {
		q.v = url.Values{}
	}
	return q.v
}

// Add appends a raw parameter value (repeating a name means AND).
func (q *Query) Add(name, value string) *Query {
	q.values().Add(name, value)
	return q
}

// Set replaces a parameter.
func (q *Query) Set(name, value string) *Query {
	q.values().Set(name, value)
	return q
}

// Del removes a parameter.
func (q *Query) Del(name string) *Query {
	q.values().Del(name)
	return q
}

// Get returns the first value of a parameter.
func (q *Query) Get(name string) string { return q.values().Get(name) }

// Has reports whether the parameter is set.
func (q *Query) Has(name string) bool { return q.values().Has(name) }

// Names returns the parameter names, sorted.
func (q *Query) Names() []string {
	names := make([]string, 0, len(q.values()))
	for n := range q.values() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Patient restricts to one patient's compartment (the `patient` parameter).
func (q *Query) Patient(id string) *Query { return q.Add("patient", id) }

// Token adds a token parameter: system|code, or just code when system is "".
// Several codes in one call are ORed.
func (q *Query) Token(name, system string, codes ...string) *Query {
	parts := make([]string, len(codes))
	for i, c := range codes {
		if system != "" {
			parts[i] = system + "|" + c
		} else {
			parts[i] = c
		}
	}
	return q.Add(name, strings.Join(parts, ","))
}

// Date adds a date parameter with a prefix; the date is written with the
// precision of layout (time.DateOnly or time.RFC3339).
func (q *Query) Date(name string, p Prefix, t time.Time, layout string) *Query {
	return q.Add(name, string(p)+t.UTC().Format(layout))
}

// LastUpdated restricts by meta.lastUpdated.
func (q *Query) LastUpdated(p Prefix, t time.Time) *Query {
	return q.Date("_lastUpdated", p, t, time.RFC3339)
}

// Count sets the page size.
func (q *Query) Count(n int) *Query { return q.Set("_count", strconv.Itoa(n)) }

// Include adds an _include such as "DiagnosticReport:result".
func (q *Query) Include(spec string) *Query { return q.Add("_include", spec) }

// Clone returns an independent copy.
func (q *Query) Clone() *Query {
	c := NewQuery()
	for k, vs := range q.values() {
		c.v[k] = append([]string(nil), vs...)
	}
	return c
}

// Encode returns the URL-encoded query string, parameters sorted by name.
func (q *Query) Encode() string { return q.values().Encode() }
