package fhirapi

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// decodeAny decodes one JSON value into what encoding/json's Unmarshal
// into an `any` gives (map[string]any, []any, string, float64, bool,
// nil). Searches decode the few elements they test of every candidate
// resource, so this is on the hot path: the common clean shapes are read
// by hand (one string allocation for the whole value, every string a
// substring of it), and anything else (escapes, invalid UTF-8, deep
// nesting, a syntax error) is left to jsonv1, then encoding/json, which
// decide what it means. FuzzDecodeAny checks the hand-read path agrees
// with encoding/json.
func decodeAny(raw []byte) any {
	d := anyDecoder{src: string(raw)}
	if v, ok := d.value(0); ok && d.end() {
		return v
	}
	var v any
	if jsonv1.Unmarshal(raw, &v) != nil {
		v = nil
		_ = json.Unmarshal(raw, &v)
	}
	return v
}

// anyDecoder reads src from i; every method reports false to give up.
type anyDecoder struct {
	src string
	i   int
}

const maxAnyDepth = 64

func (d *anyDecoder) ws() {
	for d.i < len(d.src) {
		switch d.src[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *anyDecoder) end() bool {
	d.ws()
	return d.i == len(d.src)
}

func (d *anyDecoder) value(depth int) (any, bool) {
	if depth > maxAnyDepth {
		return nil, false
	}
	d.ws()
	if d.i >= len(d.src) {
		return nil, false
	}
	switch c := d.src[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, false
}

func (d *anyDecoder) literal(lit string) bool {
	if len(d.src)-d.i >= len(lit) && d.src[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// str reads a string without escapes or control characters whose bytes
// are valid UTF-8 (encoding/json would replace invalid bytes).
func (d *anyDecoder) str() (string, bool) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.src); j++ {
		switch b := d.src[j]; {
		case b == '"':
			s := d.src[start:j]
			if !ascii && !utf8.ValidString(s) {
				return "", false
			}
			d.i = j + 1
			return s, true
		case b == '\\' || b < 0x20:
			return "", false
		case b >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// number reads a number in JSON's grammar as a float64.
func (d *anyDecoder) number() (any, bool) {
	s, j := d.src, d.i
	if j < len(s) && s[j] == '-' {
		j++
	}
	switch {
	case j < len(s) && s[j] == '0':
		j++
	case j < len(s) && s[j] >= '1' && s[j] <= '9':
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
	default:
		return nil, false
	}
	if j < len(s) && s[j] == '.' {
		j++
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == k {
			return nil, false
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		j++
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == k {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(s[d.i:j], 64)
	if err != nil {
		return nil, false // out of range: encoding/json reports an error
	}
	d.i = j
	return f, true
}

func (d *anyDecoder) object(depth int) (any, bool) {
	d.i++ // {
	m := map[string]any{}
	d.ws()
	if d.i < len(d.src) && d.src[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.ws()
		if d.i >= len(d.src) || d.src[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if d.i >= len(d.src) || d.src[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v // a duplicate key: the last wins, as in encoding/json
		d.ws()
		if d.i >= len(d.src) {
			return nil, false
		}
		switch d.src[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *anyDecoder) array(depth int) (any, bool) {
	d.i++ // [
	out := []any{}
	d.ws()
	if d.i < len(d.src) && d.src[d.i] == ']' {
		d.i++
		return out, true
	}
	for {
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		out = append(out, v)
		d.ws()
		if d.i >= len(d.src) {
			return nil, false
		}
		switch d.src[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return out, true
		default:
			return nil, false
		}
	}
}
