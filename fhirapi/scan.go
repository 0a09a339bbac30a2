package fhirapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"ehrgate/store"
)

// errScan is a resource the scanner could not follow (it is not valid
// JSON); served then reports the stored resource as unreadable.
var errScan = errors.New("malformed JSON")

// editsByScan finds the edits served makes (the top-level id, every
// "reference" string, the top-level meta, where to insert a meta) in one
// pass over the bytes, without allocating per token: encoding/json's
// tokenizer (editsByTokens, which the fuzz test holds this to) costs
// several times more, and every served resource goes through here.
func editsByScan(rec *store.Record, baseURL string) (edits []edit, metaRaw []byte, insertAt int, err error) {
	raw := rec.Raw
	type frame struct {
		object, wantKey bool
		key             []byte
	}
	stack := make([]frame, 0, 16)
	insertAt = -1
	metaStart := -1
	i := 0
	n := len(raw)
	keyIs := func(k []byte, s string) bool { return string(k) == s }
	// value handles a scalar or string value at [start, end).
	value := func(start, end int, str bool) error {
		depth := len(stack)
		if depth == 0 {
			return nil
		}
		key := stack[depth-1].key
		if depth == 1 && keyIs(key, "meta") && metaRaw == nil {
			metaRaw = raw[start:end]
			edits = append(edits, edit{start, end, nil})
			return nil
		}
		if !str {
			return nil
		}
		switch {
		case depth == 1 && keyIs(key, "id"):
			s, err := unquote(raw[start:end])
			if err != nil {
				return err
			}
			edits = append(edits, edit{start, end, quote(ServedID(rec.Connection, s))})
		case depth == 1 && keyIs(key, "resourceType"):
			insertAt = end
		case keyIs(key, "reference"):
			s, err := unquote(raw[start:end])
			if err != nil {
				return err
			}
			if r, ok := servedReference(rec.Connection, baseURL, s); ok {
				edits = append(edits, edit{start, end, quote(r)})
			}
		}
		return nil
	}
	afterValue := func() {
		if d := len(stack); d > 0 && stack[d-1].object {
			stack[d-1].wantKey = false
		}
	}
	for i < n {
		c := raw[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
		case ':':
			i++
		case ',':
			if d := len(stack); d > 0 && stack[d-1].object {
				stack[d-1].wantKey = true
			}
			i++
		case '{', '[':
			if d := len(stack); d == 1 && keyIs(stack[0].key, "meta") && metaRaw == nil && metaStart < 0 {
				metaStart = i
			}
			stack = append(stack, frame{object: c == '{', wantKey: c == '{'})
			i++
		case '}', ']':
			if len(stack) == 0 {
				return nil, nil, -1, errScan
			}
			stack = stack[:len(stack)-1]
			i++
			if len(stack) == 1 && metaStart >= 0 && metaRaw == nil {
				metaRaw = raw[metaStart:i]
				edits = append(edits, edit{metaStart, i, nil})
			}
			afterValue()
		case '"':
			j := i + 1
			escaped := false
			// Most strings hold no escape: the closing quote is the next
			// one (found by bytes.IndexByte, many bytes at a time).
			if k := bytes.IndexByte(raw[j:], '"'); k >= 0 && bytes.IndexByte(raw[j:j+k], '\\') < 0 {
				j += k
			} else {
				for j < n && raw[j] != '"' {
					if raw[j] == '\\' {
						escaped = true
						j++
					}
					j++
				}
			}
			if j >= n {
				return nil, nil, -1, errScan
			}
			j++ // past the closing quote
			d := len(stack)
			if d > 0 && stack[d-1].object && stack[d-1].wantKey {
				k := raw[i+1 : j-1]
				if escaped {
					s, err := unquote(raw[i:j])
					if err != nil {
						return nil, nil, -1, err
					}
					k = []byte(s)
				}
				stack[d-1].key = k
				stack[d-1].wantKey = false
			} else {
				if err := value(i, j, true); err != nil {
					return nil, nil, -1, err
				}
				afterValue()
			}
			i = j
		default:
			j := i
		scalar:
			for ; j < n; j++ {
				switch raw[j] {
				case ',', '}', ']', ' ', '\t', '\r', '\n':
					break scalar
				}
			}
			if j == i {
				return nil, nil, -1, errScan
			}
			if err := value(i, j, false); err != nil {
				return nil, nil, -1, err
			}
			afterValue()
			i = j
		}
	}
	if len(stack) != 0 {
		return nil, nil, -1, fmt.Errorf("stored %s/%s: %w", rec.Type, rec.ID, errScan)
	}
	return edits, metaRaw, insertAt, nil
}

// unquote decodes a JSON string token.
func unquote(tok []byte) (string, error) {
	if bytes.IndexByte(tok, '\\') < 0 && utf8.Valid(tok) {
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", errScan
	}
	return s, nil
}

// topLevel indexes a resource's top-level elements (name → the value's
// bytes) in one pass without decoding them. Malformed input gives what was
// found before the damage.
func topLevel(raw []byte) map[string][]byte {
	fs := topFields(raw, nil)
	out := make(map[string][]byte, len(fs))
	for _, f := range fs {
		out[string(f.name)] = f.value
	}
	return out
}

// field is one top-level element: its name (decoded) and its value's
// bytes.
type field struct{ name, value []byte }

// topFields appends raw's top-level elements to fs in order, without
// decoding the values or allocating for names without escapes
// (subject.values decodes only the elements a search asks about).
// Malformed input gives what was found before the damage.
func topFields(raw []byte, fs []field) []field {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return fs
	}
	i++
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return fs
		}
		kend := skipString(raw, i)
		if kend < 0 {
			return fs
		}
		name := raw[i+1 : kend-1]
		if bytes.IndexByte(name, '\\') >= 0 || !utf8.Valid(name) {
			key, err := unquote(raw[i:kend])
			if err != nil {
				return fs
			}
			name = []byte(key)
		}
		i = skipSpace(raw, kend)
		if i >= len(raw) || raw[i] != ':' {
			return fs
		}
		vstart := skipSpace(raw, i+1)
		vend := skipValue(raw, vstart)
		if vend < 0 {
			return fs
		}
		fs = append(fs, field{name, raw[vstart:vend]})
		i = skipSpace(raw, vend)
		if i >= len(raw) || raw[i] != ',' {
			return fs
		}
		i++
	}
}

// lookupField returns the value of the element called name (the last one,
// as a decoder keeps, when a resource repeats a name).
func lookupField(fs []field, name string) ([]byte, bool) {
	for i := len(fs) - 1; i >= 0; i-- {
		if string(fs[i].name) == name {
			return fs[i].value, true
		}
	}
	return nil, false
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at raw[i] (a
// quote), or -1.
func skipString(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at raw[i], or -1.
func skipValue(raw []byte, i int) int {
	if i >= len(raw) {
		return -1
	}
	switch raw[i] {
	case '"':
		return skipString(raw, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(raw); j++ {
			switch raw[j] {
			case '"':
				end := skipString(raw, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(raw) && raw[j] != ',' && raw[j] != '}' && raw[j] != ']' && raw[j] != ' ' && raw[j] != '\n' && raw[j] != '\t' && raw[j] != '\r' {
			j++
		}
		return j
	}
}
