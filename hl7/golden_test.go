package hl7

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ehrgate/internal/golden"
)

// checkGolden compares got with testdata/<name>, rewriting it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got)
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// TestGoldenParse records, for every lenient-parseable table case, the
// segments and every primitive value, and checks the encoder reproduces
// the segments.
func TestGoldenParse(t *testing.T) {
	for _, tt := range parseCases {
		if tt.lenErr != nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, tt.in, ParseOptions{})
			var b strings.Builder
			fmt.Fprintf(&b, "input: %q\ndelimiters: %q\nencoded: %q\n", tt.in, m.Delimiters().EncodingCharacters(), m.Encode())
			for _, v := range valuesOf(m) {
				fmt.Fprintf(&b, "%q\n", v)
			}
			checkGolden(t, filepath.Join("parse", strings.Trim(nonWord.ReplaceAllString(strings.ToLower(tt.name), "-"), "-")+".golden"), []byte(b.String()))
		})
	}
}

// TestGoldenACK records exact ACK bytes for v2.3 and v2.5.1 messages.
func TestGoldenACK(t *testing.T) {
	now := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	msgs := map[string]string{
		"v2.3":   "MSH|^~\\&|NES|NINTENDO|TESTSYSTEM|TESTFACILITY|20010101000000||ADT^A04|Q123|P|2.3\r",
		"v2.5.1": "MSH|^~\\&|SEND^1.2.3^ISO|SFAC|RECV|RFAC|20240101||ORU^R01^ORU_R01|C-9|T|2.5.1\r",
	}
	for version, in := range msgs {
		for _, code := range []AckCode{AckApplicationAccept, AckApplicationError, AckApplicationReject, AckCommitAccept} {
			t.Run(version+"/"+string(code), func(t *testing.T) {
				m := mustParse(t, in, ParseOptions{Strict: true})
				text := ""
				if code.IsError() {
					text = "message not stored; retry later"
				}
				ack := BuildACKWith(m, ACKOptions{Code: code, Text: text, Now: now, ControlID: "ACK1"})
				got := strings.ReplaceAll(string(ack), "\r", "\n")
				checkGolden(t, filepath.Join("ack", version+"-"+string(code)+".golden"), []byte(got))
			})
		}
	}
}
