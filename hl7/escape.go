package hl7

import (
	"bytes"
	"fmt"
)

// Escape encodes s for use as a primitive value under d: delimiter
// characters become \F\ \S\ \R\ \T\ \E\ (and \P\ for the v2.7 truncation
// character) and CR and LF, which would end the segment, become \X0D\ and
// \X0A\.
func Escape(s string, d Delimiters) string {
	need := false
	for i := 0; i < len(s); i++ {
		if escapeCode(s[i], &d) != "" {
			need = true
			break
		}
	}
	if !need {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		code := escapeCode(c, &d)
		if code == "" {
			b = append(b, c)
			continue
		}
		b = append(b, d.Escape)
		b = append(b, code...)
		b = append(b, d.Escape)
	}
	return string(b)
}

func escapeCode(c byte, d *Delimiters) string {
	switch {
	case c == 0:
		return ""
	case c == d.Field:
		return "F"
	case c == d.Component:
		return "S"
	case c == d.SubComponent:
		return "T"
	case c == d.Repetition:
		return "R"
	case c == d.Escape:
		return "E"
	case d.Truncation != 0 && c == d.Truncation:
		return "P"
	case c == '\r':
		return "X0D"
	case c == '\n':
		return "X0A"
	}
	return ""
}

// Unescape decodes the escape sequences of a primitive value encoded under
// d, leniently: \F\ \S\ \T\ \R\ \E\ (\P\ in v2.7+) become the delimiter,
// \Xhh..\ the bytes hh.., \.br\ a line feed; formatting and unknown
// sequences (\H\ \N\ \.sp\ \Zxx\ ...) and an unterminated escape pass
// through unchanged.
func Unescape(s string, d Delimiters) string {
	if d.Escape == 0 || len(s) == 0 || bytes.IndexByte([]byte(s), d.Escape) < 0 {
		return s
	}
	return string(unescape(nil, []byte(s), &d))
}

// UnescapeStrict is Unescape that fails with ErrBadEscape on an
// unterminated escape or an unknown escape code. The formatting commands of
// the standard (\H\ \N\ \.sp\ \.in\ \.ti\ \.sk\ \.fi\ \.nf\ \.ce\) and the
// character-set and locally defined escapes (\Cxxyy\ \Mxxyyzz\ \Zxx\) are
// known and passed through.
func UnescapeStrict(s string, d Delimiters) (string, error) {
	for i := 0; i < len(s); i++ {
		if d.Escape == 0 || s[i] != d.Escape {
			continue
		}
		j := bytes.IndexByte([]byte(s[i+1:]), d.Escape)
		if j < 0 {
			return "", fmt.Errorf("unescaping at byte %d: %w", i, ErrBadEscape)
		}
		if !knownEscape([]byte(s[i+1:i+1+j]), &d) {
			return "", fmt.Errorf("unescaping at byte %d: %w", i, ErrBadEscape)
		}
		i += j + 1
	}
	return Unescape(s, d), nil
}

// knownEscape reports whether seq (the text between two escape characters)
// is an escape defined by the standard.
func knownEscape(seq []byte, d *Delimiters) bool {
	if len(seq) == 0 {
		return false
	}
	switch string(seq) {
	case "F", "S", "T", "R", "E", "H", "N", ".br", ".fi", ".nf":
		return true
	case "P":
		return d.Truncation != 0
	}
	switch seq[0] {
	case 'X':
		_, ok := decodeHex(nil, seq[1:])
		return ok
	case 'C', 'M', 'Z':
		return len(seq) > 1
	case '.':
		// .sp <n>, .in <n>, .ti <n>, .sk <n>, .ce
		if len(seq) >= 3 {
			switch string(seq[1:3]) {
			case "sp", "in", "ti", "sk", "ce":
				return true
			}
		}
	}
	return false
}

func unescape(dst, src []byte, d *Delimiters) []byte {
	if d.Escape == 0 || bytes.IndexByte(src, d.Escape) < 0 {
		return append(dst, src...)
	}
	for i := 0; i < len(src); {
		c := src[i]
		if c != d.Escape {
			dst = append(dst, c)
			i++
			continue
		}
		j := bytes.IndexByte(src[i+1:], d.Escape)
		if j < 0 {
			return append(dst, src[i:]...)
		}
		seq := src[i+1 : i+1+j]
		end := i + j + 2
		switch string(seq) {
		case "F":
			dst = append(dst, d.Field)
		case "S":
			dst = append(dst, d.Component)
		case "T":
			dst = append(dst, d.SubComponent)
		case "R":
			dst = append(dst, d.Repetition)
		case "E":
			dst = append(dst, d.Escape)
		case ".br":
			dst = append(dst, '\n')
		case "P":
			if d.Truncation != 0 {
				dst = append(dst, d.Truncation)
			} else {
				dst = append(dst, src[i:end]...)
			}
		default:
			if len(seq) > 1 && seq[0] == 'X' {
				if out, ok := decodeHex(dst, seq[1:]); ok {
					dst = out
					break
				}
			}
			dst = append(dst, src[i:end]...)
		}
		i = end
	}
	return dst
}

func decodeHex(dst, h []byte) ([]byte, bool) {
	if len(h) == 0 || len(h)%2 != 0 {
		return dst, false
	}
	for i := 0; i < len(h); i += 2 {
		hi, ok1 := hexVal(h[i])
		lo, ok2 := hexVal(h[i+1])
		if !ok1 || !ok2 {
			return dst, false
		}
		dst = append(dst, hi<<4|lo)
	}
	return dst, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
