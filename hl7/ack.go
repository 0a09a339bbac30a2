package hl7

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// AckCode is MSA-1, the acknowledgment code (HL7 table 0008).
type AckCode string

// Acknowledgment codes. The A* codes are original-mode and application
// acknowledgments; the C* codes are enhanced-mode commit acknowledgments.
const (
	AckApplicationAccept AckCode = "AA"
	AckApplicationError  AckCode = "AE"
	AckApplicationReject AckCode = "AR"
	AckCommitAccept      AckCode = "CA"
	AckCommitError       AckCode = "CE"
	AckCommitReject      AckCode = "CR"
)

// IsError reports whether c is an error or reject code.
func (c AckCode) IsError() bool {
	switch c {
	case AckApplicationAccept, AckCommitAccept:
		return false
	}
	return true
}

// ErrorCondition is an HL7 table 0357 message error condition code, used in
// the ERR segment.
type ErrorCondition int

// Error condition codes (HL7 table 0357).
const (
	ErrSegmentSequence          ErrorCondition = 100
	ErrRequiredFieldMissing     ErrorCondition = 101
	ErrDataType                 ErrorCondition = 102
	ErrTableValueNotFound       ErrorCondition = 103
	ErrUnsupportedMessageType   ErrorCondition = 200
	ErrUnsupportedEventCode     ErrorCondition = 201
	ErrUnsupportedProcessingID  ErrorCondition = 202
	ErrUnsupportedVersionID     ErrorCondition = 203
	ErrUnknownKeyIdentifier     ErrorCondition = 204
	ErrDuplicateKeyIdentifier   ErrorCondition = 205
	ErrApplicationRecordLocked  ErrorCondition = 206
	ErrApplicationInternalError ErrorCondition = 207
)

var conditionText = map[ErrorCondition]string{
	100: "Segment sequence error",
	101: "Required field missing",
	102: "Data type error",
	103: "Table value not found",
	200: "Unsupported message type",
	201: "Unsupported event code",
	202: "Unsupported processing id",
	203: "Unsupported version id",
	204: "Unknown key identifier",
	205: "Duplicate key identifier",
	206: "Application record locked",
	207: "Application internal error",
}

// ACKOptions describe an acknowledgment for BuildACKWith.
type ACKOptions struct {
	Code AckCode
	// Condition goes into the ERR segment for error codes; zero means
	// ErrApplicationInternalError for AE/CE and ErrDataType for AR/CR.
	Condition ErrorCondition
	// Text is a human-readable error description for MSA-3 (v2.3/2.4) and
	// ERR (all versions). It must not contain patient data.
	Text string
	// Now stamps MSH-7 and seeds the generated control ID.
	Now time.Time
	// ControlID for the ACK's MSH-10; generated when empty.
	ControlID string
	// Location, optional, says where in the message the error is: ERR-2
	// (v2.5 and later) or the segment^sequence^field of ERR-1 (v2.3, v2.4).
	Location ErrorLocation
}

// BuildMessageErrorACK acknowledges msg with e's code, condition, location
// and reason (AE or AR in original mode; code overrides it when not empty,
// e.g. for enhanced mode's application acknowledgment).
func BuildMessageErrorACK(msg *Message, e *MessageError, code AckCode, now time.Time) []byte {
	if code == "" {
		code = e.AckCode()
	}
	return BuildACKWith(msg, ACKOptions{Code: code, Condition: e.Condition, Text: e.Reason, Location: e.Location, Now: now})
}

var ackSeq atomic.Uint64

// BuildACK returns an acknowledgment of msg with the given code. The ACK
// swaps sending and receiving application and facility, carries MSH-9
// ACK^<trigger>^ACK, a new control ID, the original processing ID and
// version, MSA-1 code and MSA-2 the original control ID, and for error codes
// an ERR segment in the style of the message's version: ERR-1 (v2.3, v2.4)
// or ERR-3/ERR-4/ERR-8 (v2.5 and later). msg may be nil when the input could
// not be parsed at all; the ACK then uses default delimiters, version 2.5.1
// and an empty MSA-2. errText must not contain patient data.
func BuildACK(msg *Message, code AckCode, errText string, now time.Time) []byte {
	return BuildACKWith(msg, ACKOptions{Code: code, Text: errText, Now: now})
}

// BuildACKWith is BuildACK with every option.
func BuildACKWith(msg *Message, o ACKOptions) []byte {
	d := DefaultDelimiters
	var h Segment
	version := "2.5.1"
	if msg != nil {
		d = msg.Delimiters()
		h = msg.Header()
		if v := msg.Version(); v != "" {
			version = v
		}
	}
	raw := func(n int) string { return string(h.Field(n).Raw()) }
	id := o.ControlID
	if id == "" {
		id = strconv.FormatInt(o.Now.UnixNano(), 36) + strconv.FormatUint(ackSeq.Add(1)%(36*36*36), 36)
	}
	versionField := raw(12)
	if versionField == "" {
		versionField = version
	}
	processing := raw(11)
	if processing == "" {
		processing = "P"
	}
	msgType := d.Join("ACK", h.Field(9).Component(2).Value())
	if versionAtLeast(version, 2, 3, 1) {
		msgType = d.Join("ACK", h.Field(9).Component(2).Value(), "ACK")
	}
	b := NewBuilder(d)
	b.Segment("MSH", raw(5), raw(6), raw(3), raw(4), o.Now.Format("20060102150405-0700"), "",
		msgType, Escape(id, d), processing, versionField)
	old := !versionAtLeast(version, 2, 5, 0)
	msaText := ""
	if old && o.Code.IsError() {
		msaText = Escape(o.Text, d)
	}
	b.Segment("MSA", string(o.Code), raw(10), msaText)
	if o.Code.IsError() {
		cond := o.Condition
		if cond == 0 {
			cond = ErrApplicationInternalError
			if o.Code == AckApplicationReject || o.Code == AckCommitReject {
				cond = ErrDataType
			}
		}
		condText := conditionText[cond]
		if old {
			// ERR-1 ELD: segment^sequence^field^code (CE as sub-components).
			text := condText
			if o.Text != "" {
				text = o.Text
			}
			ce := strings.Join([]string{strconv.Itoa(int(cond)), Escape(text, d), "HL70357"}, string(d.SubComponent))
			l := o.Location
			loc := strings.Join([]string{Escape(l.Segment, d), num(l.Sequence), num(l.Field)}, string(d.Component))
			b.Segment("ERR", loc+string(d.Component)+ce)
		} else {
			b.Segment("ERR", "", o.Location.erl(d), d.Join(strconv.Itoa(int(cond)), condText, "HL70357"), "E", "", "", "", Escape(o.Text, d))
		}
	}
	return b.Bytes()
}

// versionAtLeast compares an HL7 version string such as "2.5.1".
func versionAtLeast(v string, major, minor, patch int) bool {
	parts := strings.SplitN(v, ".", 3)
	nums := [3]int{}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return false
		}
		nums[i] = n
	}
	want := [3]int{major, minor, patch}
	for i := range nums {
		if nums[i] != want[i] {
			return nums[i] > want[i]
		}
	}
	return true
}
