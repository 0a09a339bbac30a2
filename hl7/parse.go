package hl7

import (
	"bytes"
	"math"
)

// ParseOptions select how forgiving Parse is.
type ParseOptions struct {
	// Strict rejects, with a *ParseError, what lenient mode tolerates:
	// anything before the MSH (byte-order mark, blank lines, FHS/BHS batch
	// headers), MSH-2 other than 4 or 5 distinct delimiters, segment names
	// that are not [A-Z][A-Z0-9]{2}, and unterminated or unknown escape
	// sequences. Lenient mode (the default) accepts those when the message is
	// still navigable, skips whitespace-only lines, fills missing encoding
	// characters from the defaults, keeps odd segments as they are, and
	// treats a bare LF that is not followed by a segment name as part of
	// the field text (line-wrapped notes) rather than a terminator.
	Strict bool
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// Parse parses one HL7 v2 message. Segments may end in CR, LF or CRLF. The
// returned Message refers to data, which the caller must not modify
// afterwards. Errors are *ParseError values wrapping the package sentinels.
func Parse(data []byte, opts ParseOptions) (*Message, error) {
	if uint64(len(data)) > math.MaxUint32 {
		return nil, &ParseError{Err: ErrTooLarge}
	}
	m := &Message{raw: data}
	m.segs = m.inline[:0]
	p := data
	if !opts.Strict {
		p = bytes.TrimPrefix(p, bom)
		p = skipToHeader(p)
		if len(p) == 0 && len(bytes.TrimSpace(data)) > 0 {
			return nil, &ParseError{Segment: 1, Err: ErrNoMSH}
		}
	}
	if len(bytes.TrimSpace(p)) == 0 {
		return nil, &ParseError{Err: ErrEmpty}
	}
	if len(p) < 4 || !isHeaderName(p[:3]) || (opts.Strict && string(p[:3]) != "MSH") {
		return nil, &ParseError{Segment: 1, Err: ErrNoMSH}
	}
	d, err := parseDelimiters(p, opts.Strict)
	if err != nil {
		return nil, err
	}
	m.delims = d

	// Segment splitting. nextCR/nextLF cache the absolute position of the
	// next terminator of each kind so LF-only input stays linear.
	off := len(data) - len(p)
	nextCR, nextLF := -2, -2
	for off < len(data) {
		from := off
		var end int
		for {
			if nextCR != -1 && nextCR < from {
				nextCR = indexFrom(data, from, '\r')
			}
			if nextLF != -1 && nextLF < from {
				nextLF = indexFrom(data, from, '\n')
			}
			end = len(data)
			if nextCR >= 0 {
				end = nextCR
			}
			if nextLF >= 0 && nextLF < end {
				end = nextLF
			}
			// Lenient: a bare LF not followed by something that looks like
			// a segment is line-wrapped text inside a field (senders that
			// put multi-line notes in OBX-5/NTE-3); keep it in the segment.
			if !opts.Strict && end < len(data) && data[end] == '\n' && !segmentStartsAt(data[end+1:], d.Field) {
				from = end + 1
				continue
			}
			break
		}
		line := data[off:end]
		off = end + 1
		if end < len(data) && data[end] == '\r' && off < len(data) && data[off] == '\n' {
			off++
		}
		if len(line) == 0 {
			continue
		}
		idx := len(m.segs) + 1
		if opts.Strict {
			if err := checkSegment(line, &d, idx); err != nil {
				return nil, err
			}
		} else if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m.segs = append(m.segs, segEntry{off: uint32(end - len(line)), end: uint32(end)})
	}
	return m, nil
}

func indexFrom(b []byte, off int, c byte) int {
	i := bytes.IndexByte(b[off:], c)
	if i < 0 {
		return -1
	}
	return off + i
}

func isHeaderName(p []byte) bool {
	switch string(p) {
	case "MSH", "FHS", "BHS":
		return true
	}
	return false
}

// skipToHeader drops anything before the first line starting with a header
// segment name (lenient mode only).
func skipToHeader(p []byte) []byte {
	for len(p) > 0 {
		t := bytes.TrimLeft(p, " \t\r\n\x00")
		if len(t) >= 3 && isHeaderName(t[:3]) {
			return t
		}
		i := bytes.IndexAny(t, "\r\n")
		if i < 0 {
			return p
		}
		p = t[i+1:]
	}
	return p
}

// parseDelimiters reads MSH-1 and MSH-2 from the start of a header segment.
func parseDelimiters(p []byte, strict bool) (Delimiters, error) {
	fs := p[3]
	if !validDelimiter(fs) {
		return Delimiters{}, &ParseError{Segment: 1, Field: 1, Err: ErrBadDelimiters}
	}
	enc := p[4:]
	if i := bytes.IndexByte(enc, fs); i >= 0 {
		enc = enc[:i]
	} else if i := bytes.IndexAny(enc, "\r\n"); i >= 0 {
		enc = enc[:i]
	}
	if strict && (len(enc) < 4 || len(enc) > 5) {
		return Delimiters{}, &ParseError{Segment: 1, Field: 2, Err: ErrBadDelimiters}
	}
	d := Delimiters{Field: fs}
	def := [4]byte{DefaultDelimiters.Component, DefaultDelimiters.Repetition, DefaultDelimiters.Escape, DefaultDelimiters.SubComponent}
	var got [5]byte
	for i := range got {
		switch {
		case i < len(enc):
			got[i] = enc[i]
		case i < 4:
			got[i] = def[i] // lenient: fill from defaults; conflicts caught by Validate
		}
	}
	d.Component, d.Repetition, d.Escape, d.SubComponent, d.Truncation = got[0], got[1], got[2], got[3], got[4]
	if err := d.Validate(); err != nil {
		if strict {
			return Delimiters{}, &ParseError{Segment: 1, Field: 2, Err: ErrBadDelimiters}
		}
		// Lenient: a 5th character that is not a usable truncation
		// character (some senders put data there) is ignored.
		d.Truncation = 0
		if d.Validate() != nil {
			return Delimiters{}, &ParseError{Segment: 1, Field: 2, Err: ErrBadDelimiters}
		}
	}
	return d, nil
}

// checkSegment validates a segment in strict mode.
func checkSegment(line []byte, d *Delimiters, idx int) error {
	if len(line) < 3 || !(line[0] >= 'A' && line[0] <= 'Z') || !nameChar(line[1]) || !nameChar(line[2]) ||
		(len(line) > 3 && line[3] != d.Field) {
		return &ParseError{Segment: idx, Err: ErrBadSegmentName}
	}
	body := line[3:]
	field := 0
	if len(body) > 0 && (idx == 1 || isHeaderName(line[:3])) {
		// Skip MSH-1 and MSH-2: they contain the escape character itself.
		rest := body[1:]
		i := bytes.IndexByte(rest, d.Field)
		if i < 0 {
			return nil
		}
		body = rest[i:]
		field = 2
	}
	if d.Escape == 0 || bytes.IndexByte(body, d.Escape) < 0 {
		return nil
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == d.Field:
			field++
		case c == d.Escape:
			j := i + 1
			for j < len(body) && body[j] != d.Escape && !d.isDelim(body[j]) {
				j++
			}
			if j >= len(body) || body[j] != d.Escape || !knownEscape(body[i+1:j], d) {
				return &ParseError{Segment: idx, Field: field, Err: ErrBadEscape}
			}
			i = j
		}
	}
	return nil
}

// segmentStartsAt reports whether p (the bytes after a bare LF) starts a new
// segment: a three-character alphanumeric name followed by the field
// separator or a line end, or a blank line, or the end of the data.
func segmentStartsAt(p []byte, fs byte) bool {
	i := 0
	for i < len(p) && (p[i] == ' ' || p[i] == '\t') {
		i++
	}
	if i == len(p) || p[i] == '\r' || p[i] == '\n' {
		return true
	}
	if len(p) < 3 || !alnum(p[0]) || !alnum(p[1]) || !alnum(p[2]) {
		return false
	}
	return len(p) == 3 || p[3] == fs || p[3] == '\r' || p[3] == '\n'
}

func alnum(c byte) bool { return nameChar(c) || (c >= 'a' && c <= 'z') }

func nameChar(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') }
