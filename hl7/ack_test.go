package hl7

import (
	"strings"
	"testing"
	"time"
)

func TestBuildACK(t *testing.T) {
	now := time.Date(2024, 3, 4, 5, 6, 7, 0, time.FixedZone("", -5*3600))
	v23 := "MSH|^~\\&|NES|NINTENDO|TESTSYSTEM|TESTFACILITY|20010101000000||ADT^A04|Q123|P|2.3\rPID|1\r"
	v251 := "MSH|^~\\&|SEND^1.2.3^ISO|SFAC|RECV|RFAC|20240101||ORU^R01^ORU_R01|C-9|T|2.5.1\rPID|1\r"
	tests := []struct {
		name string
		in   string
		code AckCode
		text string
		want map[string]string // path -> value; "" asserts absent/empty
	}{
		{"v2.3 AA", v23, AckApplicationAccept, "", map[string]string{
			"MSH-3": "TESTSYSTEM", "MSH-4": "TESTFACILITY", "MSH-5": "NES", "MSH-6": "NINTENDO",
			"MSH-7": "20240304050607-0500", "MSH-9": "ACK", "MSH-9.2": "A04", "MSH-9.3": "",
			"MSH-11": "P", "MSH-12": "2.3", "MSA-1": "AA", "MSA-2": "Q123", "ERR-1": "",
		}},
		{"v2.3 AE", v23, AckApplicationError, "store unavailable", map[string]string{
			"MSA-1": "AE", "MSA-2": "Q123", "MSA-3": "store unavailable",
			"ERR-1.4": "207", "ERR-1.4.2": "store unavailable", "ERR-1.4.3": "HL70357",
		}},
		{"v2.5.1 AA", v251, AckApplicationAccept, "", map[string]string{
			"MSH-3": "RECV", "MSH-5": "SEND", "MSH-5.2": "1.2.3", "MSH-5.3": "ISO", "MSH-6": "SFAC",
			"MSH-9": "ACK", "MSH-9.2": "R01", "MSH-9.3": "ACK", "MSH-11": "T", "MSH-12": "2.5.1",
			"MSA-1": "AA", "MSA-2": "C-9",
		}},
		{"v2.5.1 AR", v251, AckApplicationReject, "parse | failure", map[string]string{
			"MSA-1": "AR", "MSA-2": "C-9", "MSA-3": "",
			"ERR-1": "", "ERR-3": "102", "ERR-3.2": "Data type error", "ERR-3.3": "HL70357",
			"ERR-4": "E", "ERR-8": "parse | failure",
		}},
		{"v2.5.1 CA", v251, AckCommitAccept, "", map[string]string{"MSA-1": "CA", "MSA-2": "C-9"}},
		{"v2.5.1 CE", v251, AckCommitError, "x", map[string]string{"MSA-1": "CE", "ERR-3": "207", "ERR-4": "E"}},
		{"nil message", "", AckApplicationReject, "unparseable", map[string]string{
			"MSH-9": "ACK", "MSH-12": "2.5.1", "MSA-1": "AR", "MSA-2": "", "ERR-8": "unparseable",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msg *Message
			if tt.in != "" {
				msg = mustParse(t, tt.in, ParseOptions{Strict: true})
			}
			raw := BuildACK(msg, tt.code, tt.text, now)
			ack, err := Parse(raw, ParseOptions{Strict: true})
			if err != nil {
				t.Fatalf("Parse(BuildACK()) error = %v; ack %q", err, raw)
			}
			for path, want := range tt.want {
				if got := ack.Get(path); got != want {
					t.Errorf("ack.Get(%q) = %q, want %q", path, got, want)
				}
			}
			if msg != nil && ack.ControlID() == msg.ControlID() || ack.ControlID() == "" {
				t.Errorf("ack control id %q must be new and non-empty", ack.ControlID())
			}
			if strings.Contains(string(raw), "\n") {
				t.Errorf("ack contains LF: %q", raw)
			}
		})
	}
	a := BuildACK(nil, AckApplicationAccept, "", now)
	b := BuildACK(nil, AckApplicationAccept, "", now)
	ma, _ := Parse(a, ParseOptions{})
	mb, _ := Parse(b, ParseOptions{})
	if ma.ControlID() == mb.ControlID() {
		t.Errorf("two ACKs at the same instant share control id %q", ma.ControlID())
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{{"2.3", false}, {"2.4", false}, {"2.5", true}, {"2.5.1", true}, {"2.8", true}, {"x", false}, {"", false}}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, 2, 5, 0); got != tt.want {
			t.Errorf("versionAtLeast(%q, 2.5) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
