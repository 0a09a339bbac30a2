package hl7

import (
	"crypto/sha256"
	"strconv"
	"strings"
)

// ErrorLocation points at a position in a message, as the ERR segment's
// error location (ERR-2, data type ERL: segment ID, segment sequence, field
// position, field repetition, component, sub-component). Zero numbers are
// left out.
type ErrorLocation struct {
	Segment      string // segment ID, e.g. "PID"
	Sequence     int    // 1-based occurrence of that segment in the message
	Field        int
	Repetition   int
	Component    int
	SubComponent int
}

// String renders the location as "PID[1]-3.1", never content.
func (l ErrorLocation) String() string {
	if l.Segment == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.Sequence > 0 {
		b.WriteString("[" + strconv.Itoa(l.Sequence) + "]")
	}
	if l.Field > 0 {
		b.WriteString("-" + strconv.Itoa(l.Field))
		if l.Component > 0 {
			b.WriteString("." + strconv.Itoa(l.Component))
			if l.SubComponent > 0 {
				b.WriteString("." + strconv.Itoa(l.SubComponent))
			}
		}
	}
	return b.String()
}

// MessageError says why a message that parsed cannot be accepted: the
// content of an application acknowledgment's ERR segment. Reason is
// user-safe (rules and positions, never message content), so it can be sent
// back to the sender, logged and shown to operators.
type MessageError struct {
	// Condition is the HL7 table 0357 code: 100 segment sequence, 101
	// required field missing, 102 data type error, 103 table value not
	// found, 200/201 unsupported message type or event, 207 internal.
	Condition ErrorCondition
	// Location is where the problem is (empty when not tied to a position).
	Location ErrorLocation
	// Reason says what is wrong, without quoting the message.
	Reason string
	// Reject marks a message that can never succeed as sent (AR rather than
	// AE): no control id, a structure ehrgate does not accept at all.
	Reject bool
}

// Error implements error.
func (e *MessageError) Error() string {
	var b strings.Builder
	if loc := e.Location.String(); loc != "" {
		b.WriteString(loc)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	if t := conditionText[e.Condition]; t != "" {
		b.WriteString(" (HL7 " + strconv.Itoa(int(e.Condition)) + " " + t + ")")
	}
	return b.String()
}

// AckCode returns the original-mode acknowledgment code for e: AR when it
// can never succeed, AE otherwise.
func (e *MessageError) AckCode() AckCode {
	if e.Reject {
		return AckApplicationReject
	}
	return AckApplicationError
}

// erl encodes an ErrorLocation as an ERL field value (v2.5+ ERR-2).
func (l ErrorLocation) erl(d Delimiters) string {
	if l.Segment == "" {
		return ""
	}
	parts := []string{l.Segment, num(l.Sequence), num(l.Field), num(l.Repetition), num(l.Component), num(l.SubComponent)}
	for len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return d.Join(parts...)
}

func num(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// ContentHash returns the SHA-256 of m's content for duplicate detection:
// every segment, joined by carriage returns (so the segment terminator a
// sender used does not matter), without MSH-7 (the time of the message,
// which a resend may restamp). Two messages with the same control id and
// the same hash are the same message.
func ContentHash(m *Message) []byte {
	h := sha256.New()
	for i := 0; i < m.Len(); i++ {
		raw := m.SegmentAt(i).Raw()
		if i > 0 {
			h.Write([]byte{'\r'})
		}
		if i == 0 && len(raw) > 3 && isHeaderName(raw[:3]) {
			// MSH-1 is raw[3]; MSH-7 lies between the 6th and 7th separator.
			sep, n, start, end := raw[3], 0, -1, len(raw)
			for j := 3; j < len(raw); j++ {
				if raw[j] != sep {
					continue
				}
				n++
				if n == 6 {
					start = j + 1
				} else if n == 7 {
					end = j
					break
				}
			}
			if start >= 0 {
				h.Write(raw[:start])
				h.Write(raw[end:])
				continue
			}
		}
		h.Write(raw)
	}
	return h.Sum(nil)
}
