package tofhir

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Resources are built as obj trees and written by marshal, which produces
// exactly the bytes encoding/json.Marshal produces for them (keys sorted,
// HTML-safe string escapes, invalid UTF-8 as U+FFFD, U+2028/U+2029
// escaped; Go's encoding/json encode.go, appendString) without reflection:
// the types tofhir puts in an obj (strings, bools, ints, nested objs and
// slices) are written directly, anything else through encoding/json
// itself. TestMarshalMatchesEncodingJSON holds the two to the same bytes.

// encBufs recycles encoding buffers; marshal returns an exact-size copy.
var encBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// marshal is json.Marshal(o) for the obj trees tofhir builds.
func marshal(o obj) ([]byte, error) {
	bp := encBufs.Get().(*[]byte)
	b, err := appendJSON((*bp)[:0], o)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(b)
	if cap(b) <= 1<<20 {
		*bp = b
		encBufs.Put(bp)
	}
	return out, nil
}

// appendJSON appends the encoding/json encoding of v.
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case obj:
		return appendObject(dst, v)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case []obj:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendObject(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, e)
		}
		return append(dst, ']'), nil
	}
	// Numbers other than int (json.Number validation, float formatting)
	// and any other type: encoding/json's own bytes.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// appendObject writes o with its keys sorted, as encoding/json writes maps.
func appendObject(dst []byte, o obj) ([]byte, error) {
	if o == nil {
		return append(dst, "null"...), nil
	}
	type kv struct {
		k string
		v any
	}
	var small [16]kv
	kvs := small[:0]
	for k, v := range o {
		kvs = append(kvs, kv{k, v})
	}
	slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	dst = append(dst, '{')
	for i, e := range kvs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, e.k)
		dst = append(dst, ':')
		var err error
		if dst, err = appendJSON(dst, e.v); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// appendString is encoding/json's appendString with escapeHTML set.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
