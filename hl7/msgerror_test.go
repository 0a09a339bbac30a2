package hl7

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestContentHash(t *testing.T) {
	base := "MSH|^~\\&|LAB|NORTH|||20260101120000||ORU^R01|77|P|2.5.1\rPID|||1^^^N\rOBX|1|NM|x||5\r"
	hash := func(s string) []byte {
		t.Helper()
		m, err := Parse([]byte(s), ParseOptions{})
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		return ContentHash(m)
	}
	h := hash(base)
	same := []struct{ name, msg string }{
		{"new MSH-7", strings.Replace(base, "20260101120000", "20260102080000", 1)},
		{"empty MSH-7", strings.Replace(base, "20260101120000", "", 1)},
		{"LF terminators", strings.ReplaceAll(base, "\r", "\n")},
		{"CRLF terminators", strings.ReplaceAll(base, "\r", "\r\n")},
	}
	for _, tc := range same {
		if got := hash(tc.msg); !bytes.Equal(got, h) {
			t.Errorf("ContentHash(%s) differs from the original, want the same", tc.name)
		}
	}
	other := []struct{ name, msg string }{
		{"other value", strings.Replace(base, "||5", "||6", 1)},
		{"other patient", strings.Replace(base, "PID|||1^", "PID|||2^", 1)},
		{"other type", strings.Replace(base, "ORU^R01", "ORU^R30", 1)},
		{"MSH-8 moved into MSH-7", strings.Replace(base, "20260101120000||", "|20260101120000|", 1)},
	}
	for _, tc := range other {
		if got := hash(tc.msg); bytes.Equal(got, h) {
			t.Errorf("ContentHash(%s) equals the original's, want different", tc.name)
		}
	}
}

func TestMessageErrorACK(t *testing.T) {
	e := &MessageError{Condition: ErrRequiredFieldMissing, Location: ErrorLocation{Segment: "PID", Sequence: 1, Field: 3},
		Reason: "PID-3 has no usable patient identifier"}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, v := range []string{"2.3", "2.5.1"} {
		msg, err := Parse([]byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|Q1|P|"+v+"\r"), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := Parse(BuildMessageErrorACK(msg, e, "", now), ParseOptions{})
		if err != nil {
			t.Fatalf("v%s: ACK does not parse: %v", v, err)
		}
		if got := ack.Get("MSA-1"); got != "AE" {
			t.Errorf("v%s: MSA-1 = %q, want AE", v, got)
		}
		var loc, code string
		if v == "2.3" {
			loc, code = ack.Get("ERR-1.1")+"^"+ack.Get("ERR-1.2")+"^"+ack.Get("ERR-1.3"), ack.Get("ERR-1.4.1")
		} else {
			loc, code = ack.Get("ERR-2.1")+"^"+ack.Get("ERR-2.2")+"^"+ack.Get("ERR-2.3"), ack.Get("ERR-3.1")
		}
		if loc != "PID^1^3" || code != "101" {
			t.Errorf("v%s: ERR location %q code %q, want PID^1^3 and 101", v, loc, code)
		}
	}
	e.Reject = true
	if e.AckCode() != AckApplicationReject {
		t.Errorf("AckCode() of a permanent refusal = %s, want AR", e.AckCode())
	}
	if got, want := e.Error(), "PID[1]-3: PID-3 has no usable patient identifier (HL7 101 Required field missing)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
