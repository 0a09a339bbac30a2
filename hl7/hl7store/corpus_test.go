package hl7store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
)

type corpusCase struct {
	name, ack string
	cond      int
	loc       string
	raw       []byte
}

// readCorpus reads testdata/malformed.txt (format in its header).
func readCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open("testdata/malformed.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	var cur *corpusCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== "):
			parts := strings.Fields(line[4:])
			if len(parts) != 4 {
				t.Fatalf("bad case header %q", line)
			}
			cond, err := strconv.Atoi(parts[2])
			if err != nil {
				t.Fatalf("bad condition in %q", line)
			}
			out = append(out, corpusCase{name: parts[0], ack: parts[1], cond: cond, loc: strings.TrimPrefix(parts[3], "-")})
			cur = &out[len(out)-1]
		case cur == nil || strings.HasPrefix(line, "#"):
		case line == "":
		default:
			cur.raw = append(cur.raw, unescapeBytes(t, line)...)
			cur.raw = append(cur.raw, '\r')
		}
	}
	return out
}

// unescapeBytes turns \xNN into the byte; nothing else is special.
func unescapeBytes(t *testing.T, s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b = append(b, byte(n))
				i += 3
				continue
			}
		}
		b = append(b, s[i])
	}
	return b
}

// rawSender sends frames and reads ACKs on one MLLP connection.
type rawSender struct {
	t  *testing.T
	nc net.Conn
	r  *mllp.Reader
}

func (s *rawSender) send(raw []byte) *hl7.Message {
	s.t.Helper()
	if _, err := s.nc.Write(mllp.AppendFrame(nil, raw)); err != nil {
		s.t.Fatalf("write: %v", err)
	}
	s.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame, err := s.r.ReadFrame()
	if err != nil {
		s.t.Fatalf("reading ACK: %v", err)
	}
	ack, err := hl7.Parse(frame, hl7.ParseOptions{})
	if err != nil {
		s.t.Fatalf("ACK does not parse: %v", err)
	}
	return ack
}

func ackLocation(ack *hl7.Message) string {
	seg := ack.Get("ERR-2.1")
	if seg == "" {
		return ""
	}
	l := hl7.ErrorLocation{Segment: seg}
	l.Sequence, _ = strconv.Atoi(ack.Get("ERR-2.2"))
	l.Field, _ = strconv.Atoi(ack.Get("ERR-2.3"))
	return l.String()
}

// listen serves srv on a loopback port until the test ends and returns its address.
func listen(t *testing.T, srv *mllp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// TestMalformedCorpus: every malformed message gets its documented ACK,
// is kept (log or quarantine), and none creates or changes a Patient.
func TestMalformedCorpus(t *testing.T) {
	cases := readCorpus(t)
	if len(cases) < 30 {
		t.Fatalf("corpus has %d cases, want at least 30", len(cases))
	}
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	addr := listen(t, &mllp.Server{Handler: h, Quarantiner: h})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	snd := &rawSender{t: t, nc: nc, r: mllp.NewReader(nc, 0)}

	// One real patient, whom nothing below may touch.
	valid := "MSH|^~\\&|REG|NORTHMC|EHRGATE|EHRGATE|20260301083100||ADT^A01^ADT_A01|V1|P|2.5.1\r" +
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F\rPV1|1|I|4W^412^B||||||||||||||||V5001^^^NORTHMC^VN\r"
	if got := snd.send([]byte(valid)).Get("MSA-1"); got != "AA" {
		t.Fatalf("valid A01: %s, want AA", got)
	}
	before := snapshot(t, s)
	quarantined := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snd.t = t
			ack := snd.send(tc.raw)
			want := strings.TrimSuffix(tc.ack, "*")
			if got := ack.Get("MSA-1"); got != want {
				t.Fatalf("MSA-1 = %s, want %s (ERR %s at %s: %s)", got, want, ack.Get("ERR-3"), ackLocation(ack), ack.Get("ERR-8"))
			}
			if strings.HasSuffix(tc.ack, "*") {
				quarantined++
				return // unparseable: quarantined, generic ERR
			}
			if got := ack.Get("ERR-3"); got != strconv.Itoa(tc.cond) {
				t.Errorf("ERR-3 = %s, want %d (%s)", got, tc.cond, ack.Get("ERR-8"))
			}
			if got := ackLocation(ack); got != tc.loc {
				t.Errorf("ERR-2 = %s, want %s", got, tc.loc)
			}
			if ack.Get("ERR-8") == "" {
				t.Errorf("ERR-8 has no reason")
			}
			// A resend gets the same answer, not AA.
			if got := snd.send(tc.raw).Get("MSA-1"); got != want {
				t.Errorf("resend: MSA-1 = %s, want %s again", got, want)
			}
		})
	}
	snd.t = t
	after := snapshot(t, s)
	if len(after) != len(before) {
		t.Errorf("malformed messages changed the store: %d resources before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed by a malformed message", k)
		}
	}
	c, _ := s.HL7Counts(context.Background(), "hl7")
	if want := 1 + len(cases) - quarantined; c.Messages != want || c.Failed != want-1 {
		t.Errorf("HL7Counts = %+v, want every refused message kept (%d messages, %d refused)", c, want, want-1)
	}
	q, _ := s.Quarantined(context.Background(), "hl7", 100)
	if len(q) != quarantined {
		t.Errorf("quarantined = %d, want %d", len(q), quarantined)
	}

	// A 2 MB OBX-5 (an embedded PDF) is a valid result: kept whole.
	pdf := bytes.Repeat([]byte("%PDF-1.7 ehrgate "), 2<<20/17)
	big := "MSH|^~\\&|LAB|NORTHMC|EHRGATE|EHRGATE|20260301083100||ORU^R01^ORU_R01|BIG1|P|2.5.1\r" +
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F\rOBR|1|PL9|FL9^LAB|11502-2^Lab report^LN\r" +
		"OBX|1|ED|11502-2^Lab report^LN||^application^pdf^Base64^" + base64.StdEncoding.EncodeToString(pdf) + "||||||F\r"
	if got := snd.send([]byte(big)).Get("MSA-1"); got != "AA" {
		t.Fatalf("2 MB ED result: %s, want AA", got)
	}
	found := false
	for k, v := range snapshot(t, s) {
		if strings.HasPrefix(k, "DiagnosticReport/") && strings.Contains(v, base64.StdEncoding.EncodeToString(pdf)) {
			found = true
		}
	}
	if !found {
		t.Errorf("the 2 MB attachment is not in the stored report")
	}
}
