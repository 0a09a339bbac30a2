package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// errSlowPath sends parseHeaderFast's caller to encoding/json.
var errSlowPath = errors.New("fhir: header needs the full decoder")

// parseHeaderFast reads resourceType, id and meta from the top level of a
// resource without decoding (or validating) the rest of it: ingest reads
// every resource's header before normalization, which decodes and validates
// the whole resource anyway, and a full encoding/json pass here cost about
// a sixth of bulk-ingest CPU. Anything unusual (escaped keys or values,
// duplicate keys, non-object input) returns errSlowPath and the caller uses
// encoding/json, so results never differ for valid JSON.
func parseHeaderFast(raw []byte) (Header, error) {
	var h Header
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return h, errSlowPath
	}
	i++
	seen := 0
	for {
		i = skipWS(raw, i)
		if i >= len(raw) {
			return h, errSlowPath
		}
		if raw[i] == '}' {
			if rest := skipWS(raw, i+1); rest != len(raw) {
				return h, errSlowPath
			}
			return h, nil
		}
		if seen > 0 {
			if raw[i] != ',' {
				return h, errSlowPath
			}
			i = skipWS(raw, i+1)
		}
		key, next, ok := plainString(raw, i)
		if !ok {
			return h, errSlowPath
		}
		i = skipWS(raw, next)
		if i >= len(raw) || raw[i] != ':' {
			return h, errSlowPath
		}
		i = skipWS(raw, i+1)
		end, ok := skipValue(raw, i)
		if !ok {
			return h, errSlowPath
		}
		switch string(key) {
		case "resourceType", "id", "meta":
		default:
			// encoding/json matches keys case-insensitively ("ID" sets id).
			if bytes.EqualFold(key, []byte("resourceType")) || bytes.EqualFold(key, []byte("id")) || bytes.EqualFold(key, []byte("meta")) {
				return h, errSlowPath
			}
		}
		switch string(key) {
		case "resourceType", "id":
			v, n, ok := plainString(raw, i)
			if !ok || n != end {
				return h, errSlowPath
			}
			if key[0] == 'r' {
				if h.ResourceType != "" {
					return h, errSlowPath
				}
				h.ResourceType = string(v)
			} else {
				if h.ID != "" {
					return h, errSlowPath
				}
				h.ID = string(v)
			}
		case "meta":
			if h.Meta != nil {
				return h, errSlowPath
			}
			if string(raw[i:end]) == "null" { // encoding/json leaves the pointer nil
				break
			}
			m, ok := parseMetaFast(raw[i:end])
			if !ok {
				m = &Meta{}
				if err := json.Unmarshal(raw[i:end], m); err != nil {
					return h, errSlowPath
				}
			}
			h.Meta = m
		}
		seen++
		i = end
	}
}

// metaFields are the keys encoding/json would match (case-insensitively)
// to a Meta field.
var metaFields = [][]byte{[]byte("versionId"), []byte("lastUpdated"), []byte("source"), []byte("profile"),
	[]byte("security"), []byte("tag")}

// parseMetaFast reads a meta object whose Meta fields are plain strings
// (versionId, lastUpdated, source: the usual meta of an EHR's resource),
// skipping keys Meta has no field for. Anything else (profile, tag,
// security, escapes, duplicates, other spellings) reports !ok and the caller
// decodes meta with encoding/json.
func parseMetaFast(b []byte) (*Meta, bool) {
	m := &Meta{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i++
	var seenV, seenL, seenS bool
	for n := 0; ; n++ {
		i = skipWS(b, i)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == '}' {
			return m, skipWS(b, i+1) == len(b)
		}
		if n > 0 {
			if b[i] != ',' {
				return nil, false
			}
			i = skipWS(b, i+1)
		}
		key, next, ok := plainString(b, i)
		if !ok {
			return nil, false
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipWS(b, i+1)
		end, ok := skipValue(b, i)
		if !ok {
			return nil, false
		}
		var dst *string
		var seen *bool
		switch string(key) {
		case "versionId":
			dst, seen = &m.VersionID, &seenV
		case "lastUpdated":
			dst, seen = &m.LastUpdated, &seenL
		case "source":
			dst, seen = &m.Source, &seenS
		default:
			for _, f := range metaFields {
				if bytes.EqualFold(key, f) {
					return nil, false
				}
			}
		}
		if dst != nil {
			v, vend, ok := plainString(b, i)
			if !ok || vend != end || *seen {
				return nil, false
			}
			*dst, *seen = string(v), true
		}
		i = end
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] that has no escapes, returning its
// content and the index after the closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	j := bytes.IndexByte(b[i+1:], '"')
	if j < 0 {
		return nil, 0, false
	}
	s := b[i+1 : i+1+j]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, 0, false
	}
	for _, c := range s {
		if c < 0x20 {
			return nil, 0, false
		}
	}
	if !utf8.Valid(s) { // encoding/json replaces invalid bytes with U+FFFD
		return nil, 0, false
	}
	return s, i + 2 + j, true
}

// skipValue returns the index just after the JSON value starting at b[i].
// It tracks nesting and strings (with escapes) but does not validate
// literals and numbers beyond their extent.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return 0, false
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipValue(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\r' && b[j] != '\t' {
			j++
		}
		if j == i {
			return 0, false
		}
		return j, true
	}
}
