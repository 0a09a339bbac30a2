package hl7

import (
	"fmt"
	"strconv"
	"strings"
)

// Path addresses a primitive value, written like "PID-3[2].1.2":
// segment name, optional segment occurrence in brackets or parentheses
// ("OBX[2]-5" or "OBX(2)-5"), field number, optional repetition in brackets,
// then optional component and sub-component numbers. All numbers are
// 1-based; omitted parts default to 1, so "PID-5" means "PID[1]-5[1].1.1"
// (the HAPI Terser convention: a path always names one primitive).
type Path struct {
	Segment      string
	Occurrence   int // which segment with that name, 1-based
	Field        int
	Repetition   int
	Component    int
	SubComponent int
}

// ParsePath parses a path such as "PID-3[1].1" or "OBX(2)-5.1".
func ParsePath(s string) (Path, error) {
	p := Path{Occurrence: 1, Repetition: 1, Component: 1, SubComponent: 1}
	bad := func() (Path, error) { return Path{}, fmt.Errorf("parsing path: %w", ErrBadPath) }
	dash := strings.IndexByte(s, '-')
	if dash < 3 {
		return bad()
	}
	name := s[:dash]
	if i := strings.IndexAny(name, "[("); i >= 0 {
		n, ok := bracketed(name[i:])
		if !ok {
			return bad()
		}
		p.Occurrence = n
		name = name[:i]
	}
	if len(name) != 3 {
		return bad()
	}
	p.Segment = name
	rest := s[dash+1:]
	end := strings.IndexAny(rest, "[.")
	if end < 0 {
		end = len(rest)
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil || n < 1 {
		return bad()
	}
	p.Field = n
	rest = rest[end:]
	if strings.HasPrefix(rest, "[") {
		close := strings.IndexByte(rest, ']')
		if close < 0 {
			return bad()
		}
		n, ok := bracketed(rest[:close+1])
		if !ok {
			return bad()
		}
		p.Repetition = n
		rest = rest[close+1:]
	}
	for i, dst := range []*int{&p.Component, &p.SubComponent} {
		_ = i
		if rest == "" {
			break
		}
		if rest[0] != '.' {
			return bad()
		}
		rest = rest[1:]
		end := strings.IndexByte(rest, '.')
		if end < 0 {
			end = len(rest)
		}
		n, err := strconv.Atoi(rest[:end])
		if err != nil || n < 1 {
			return bad()
		}
		*dst = n
		rest = rest[end:]
	}
	if rest != "" {
		return bad()
	}
	return p, nil
}

// bracketed parses "[n]" or "(n)".
func bracketed(s string) (int, bool) {
	if len(s) < 3 {
		return 0, false
	}
	if !(s[0] == '[' && s[len(s)-1] == ']') && !(s[0] == '(' && s[len(s)-1] == ')') {
		return 0, false
	}
	n, err := strconv.Atoi(s[1 : len(s)-1])
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// String formats the path in its full form, e.g. "PID[1]-3[1].1.1".
func (p Path) String() string {
	return fmt.Sprintf("%s[%d]-%d[%d].%d.%d", p.Segment, p.Occurrence, p.Field, p.Repetition, p.Component, p.SubComponent)
}

// Get returns the unescaped value at path, or "" when the path is malformed
// or the value absent. Use Lookup to tell those apart.
func (m *Message) Get(path string) string {
	v, _ := m.Lookup(path)
	return v
}

// Lookup returns the unescaped value at path and whether the path is valid
// and its segment and field are present.
func (m *Message) Lookup(path string) (string, bool) {
	p, err := ParsePath(path)
	if err != nil {
		return "", false
	}
	return m.GetPath(p)
}

// GetPath is Lookup for a pre-parsed path.
func (m *Message) GetPath(p Path) (string, bool) {
	s, ok := m.Segment(p.Segment, p.Occurrence)
	if !ok || p.Field < 1 || p.Field > s.NumFields() {
		return "", false
	}
	c := s.Field(p.Field).Repetition(p.Repetition).Component(p.Component)
	return c.SubComponent(p.SubComponent), true
}
