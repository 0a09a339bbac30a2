package hl7store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

// Regression tests for the patient-safety defects of the HL7 feed: each
// failed before the acceptance rules, content-hash duplicates and
// per-occurrence result ids.

func parse(t *testing.T, segs ...string) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(strings.Join(segs, "\r")+"\r"), hl7.ParseOptions{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

// snapshot is every current resource of the feed, by type/id, as raw JSON.
func snapshot(t *testing.T, s *sqlite.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	pats, err := s.SearchPatients(ctx, store.PatientQuery{Connection: "hl7", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pats {
		out["Patient/"+p.ID] = string(p.Raw)
		for _, typ := range []string{"Encounter", "DiagnosticReport", "Observation", "Immunization"} {
			recs, err := s.ListByPatient(ctx, "hl7", p.ID, typ)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				out[typ+"/"+r.ID] = string(r.Raw)
			}
		}
	}
	return out
}

func refusal(t *testing.T, err error) *hl7.MessageError {
	t.Helper()
	var me *hl7.MessageError
	if !errors.As(err, &me) {
		t.Fatalf("HandleMessage = %v, want a refusal (*hl7.MessageError)", err)
	}
	return me
}

const mshA01 = `MSH|^~\&|REG|NORTHMC|EHRGATE|EHRGATE|20260301083100||ADT^A01^ADT_A01|%s|P|2.5.1`

func TestPlaceholderIdentifierChangesNoPatient(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	// A real patient first.
	first := parse(t, strings.Replace(mshA01, "%s", "C1", 1),
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F",
		"PV1|1|I|4W^412^B||||||||||||||||V5001^^^NORTHMC^VN")
	if err := h.HandleMessage(ctx, first); err != nil {
		t.Fatalf("valid A01: %v", err)
	}
	before := snapshot(t, s)
	cases := []struct {
		name, pid3 string
		loc        string // where the refusal points
	}{
		{"explicit null", `""`, "PID[1]-3"},
		{"explicit null with authority", `""^^^NORTHMC^MR`, "PID[1]-3"},
		{"blanks", `   ^^^NORTHMC^MR`, "PID[1]-3"},
		{"placeholder word", `UNKNOWN^^^NORTHMC^MR`, "PID[1]-3"},
		{"all zeros", `0000000^^^NORTHMC^MR`, "PID[1]-3"},
		{"control characters", "\x01\x02", "PID[1]-3"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Two different people with the same placeholder, each with a visit.
			for j, who := range []string{"Zed^Zack||19500101|M", "Young^Yara||20010203|F"} {
				m := parse(t, strings.Replace(mshA01, "%s", "P"+string(rune('a'+i))+string(rune('0'+j)), 1),
					"PID|1||"+tc.pid3+"||"+who,
					"PV1|1|I|4W^413^A||||||||||||||||V6"+string(rune('0'+i))+string(rune('0'+j))+"^^^NORTHMC^VN")
				me := refusal(t, h.HandleMessage(ctx, m))
				if me.AckCode() != hl7.AckApplicationError || me.Location.String() != tc.loc {
					t.Errorf("refusal = %s %q at %s, want AE at %s", me.AckCode(), me.Reason, me.Location, tc.loc)
				}
			}
		})
	}
	// A message truncated inside PID-3: no name, no visit.
	trunc := parse(t, strings.Replace(mshA01, "%s", "T1", 1), "PID|1||1002")
	if me := refusal(t, h.HandleMessage(ctx, trunc)); me.Condition != hl7.ErrRequiredFieldMissing {
		t.Errorf("truncated PID: condition %d, want 101", me.Condition)
	}
	if after := snapshot(t, s); len(after) != len(before) {
		t.Errorf("placeholder messages changed the store: %d resources before, %d after", len(before), len(after))
	} else {
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s changed by a refused message", k)
			}
		}
	}
	c, _ := s.HL7Counts(ctx, "hl7")
	if want := 1 + 2*len(cases) + 1; c.Messages != want || c.Failed != want-1 {
		t.Errorf("HL7Counts = %+v, want every refused message kept (%d messages, %d failed)", c, want, want-1)
	}
}

// A newborn-screening style ORU: three OBRs with one placer number and no
// filler number, results coded only in the alternate triplet (CWE-4..6)
// with the same OBX-4.
func screeningORU(t *testing.T, control, status, when string) *hl7.Message {
	segs := []string{
		`MSH|^~\&|NBS|STATELAB|EHRGATE|EHRGATE|` + when + `||ORU^R01^ORU_R01|` + control + `|P|2.5.1`,
		`PID|1||NB778^^^STATELAB^MR||Baby^Girl||20260301|F`,
	}
	for i, panel := range []string{"54089-8^Newborn screening panel^LN", "57128-1^Newborn screen card^LN", "57717-1^Newborn screen short^LN"} {
		segs = append(segs, `OBR|`+string(rune('1'+i))+`|PL-42^STATELAB||`+panel+`|||20260302`)
		for j, code := range []string{"^^^TSH^Thyroid stimulating^L", "^^^PKU^Phenylalanine^L", "^^^CF^Cystic fibrosis^L"} {
			val := "Normal"
			if i == 2 && j == 2 {
				val = "POSITIVE"
			}
			segs = append(segs, `OBX|`+string(rune('1'+j))+`|ST|`+code+`|1|`+val+`||||||`+status)
		}
	}
	return parse(t, segs...)
}

func TestORUKeepsEveryResult(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	if err := h.HandleMessage(ctx, screeningORU(t, "NBS-1", "P", "20260302080000")); err != nil {
		t.Fatalf("ORU: %v", err)
	}
	if n := count(t, s, "DiagnosticReport"); n != 3 {
		t.Errorf("DiagnosticReports = %d, want 3 (one per OBR)", n)
	}
	if n := count(t, s, "Observation"); n != 9 {
		t.Errorf("Observations = %d, want 9 (one per OBX)", n)
	}
	// Every Observation hangs off exactly one report, and the positive
	// result is among them.
	snap := snapshot(t, s)
	refs := map[string]int{}
	for k, v := range snap {
		if !strings.HasPrefix(k, "DiagnosticReport/") {
			continue
		}
		var d struct{ Result []struct{ Reference string } }
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Result {
			refs[r.Reference]++
		}
	}
	positive := 0
	for k, v := range snap {
		if strings.HasPrefix(k, "Observation/") {
			if refs[k] != 1 {
				t.Errorf("%s is referenced by %d reports, want 1", k, refs[k])
			}
			if strings.Contains(v, "POSITIVE") {
				positive++
			}
		}
	}
	if positive != 1 {
		t.Errorf("positive results stored = %d, want 1", positive)
	}
	// A resend (new MSH-7) is a duplicate; the final results of the same
	// message structure update the same resources instead of adding more.
	if err := h.HandleMessage(ctx, screeningORU(t, "NBS-1", "P", "20260302090000")); err == nil || refusalOrNil(err) != nil {
		t.Errorf("resend with a new MSH-7 = %v, want a duplicate", err)
	}
	if err := h.HandleMessage(ctx, screeningORU(t, "NBS-2", "F", "20260303080000")); err != nil {
		t.Fatalf("final ORU: %v", err)
	}
	if d, o := count(t, s, "DiagnosticReport"), count(t, s, "Observation"); d != 3 || o != 9 {
		t.Errorf("after the final results: %d reports and %d observations, want the same 3 and 9 updated", d, o)
	}
}

func refusalOrNil(err error) *hl7.MessageError {
	var me *hl7.MessageError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

func TestReusedControlIDWithOtherContentIsProcessed(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	a := parse(t, strings.Replace(mshA01, "%s", "1", 1),
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F", "PV1|1|I|4W^412^B||||||||||||||||V5001^^^NORTHMC^VN")
	// The sender restarted and reused control id 1 for another patient.
	b := parse(t, strings.Replace(mshA01, "%s", "1", 1),
		"PID|1||300400^^^NORTHMC^MR||Roe^Rex||19600101|M", "PV1|1|E|ED^1^1||||||||||||||||V7001^^^NORTHMC^VN")
	for _, m := range []*hl7.Message{a, b} {
		if err := h.HandleMessage(ctx, m); err != nil {
			t.Fatalf("HandleMessage: %v", err)
		}
	}
	if n := count(t, s, "Patient"); n != 2 {
		t.Errorf("Patients = %d, want 2 (the second message is not a duplicate)", n)
	}
	if n := count(t, s, "Encounter"); n != 2 {
		t.Errorf("Encounters = %d, want 2", n)
	}
	// Resending the first one with a new timestamp is a duplicate.
	resent := parse(t, strings.Replace(strings.Replace(mshA01, "%s", "1", 1), "20260301083100", "20260301090000", 1),
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F", "PV1|1|I|4W^412^B||||||||||||||||V5001^^^NORTHMC^VN")
	if err := h.HandleMessage(ctx, resent); err == nil {
		t.Errorf("resend = nil, want a duplicate")
	}
	c, _ := s.HL7Counts(ctx, "hl7")
	if c.Messages != 2 || c.Processed != 2 || c.Reused != 1 {
		t.Errorf("HL7Counts = %+v, want 2 messages, both processed, 1 control-id reuse", c)
	}
}

func TestJunkRefused(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	junk := parse(t, strings.Replace(mshA01, "%s", "J1", 1), "PID|this is not|\x01\x02", "GARBAGE|x")
	me := refusal(t, h.HandleMessage(ctx, junk))
	if me.AckCode() != hl7.AckApplicationError {
		t.Errorf("junk: %s, want AE", me.AckCode())
	}
	// Without the unknown segment, the control characters are refused.
	junk2 := parse(t, strings.Replace(mshA01, "%s", "J2", 1), "PID|this is not|\x01\x02", "PV1|1|I")
	if me := refusal(t, h.HandleMessage(ctx, junk2)); me.Condition != hl7.ErrDataType || me.Location.String() != "PID[1]-2" {
		t.Errorf("control characters: %d at %s, want 102 at PID[1]-2", me.Condition, me.Location)
	}
	if n := count(t, s, "Patient"); n != 0 {
		t.Errorf("Patients = %d, want 0", n)
	}
	// Each kept with its raw bytes and reason for a person to see.
	c, _ := s.HL7Counts(ctx, "hl7")
	if c.Messages != 2 || c.Failed != 2 {
		t.Errorf("HL7Counts = %+v, want both kept as refused", c)
	}
}

// Over a real MLLP connection, a refused message is answered AE with an
// ERR segment naming segment, field and HL7 error code; a resend gets the
// same answer, not AA.
func TestRefusalACKOverMLLP(t *testing.T) {
	s := newStore(t)
	addr := listen(t, &mllp.Server{Handler: New(s, Options{Clock: clock})})
	cl, err := mllp.Dial(context.Background(), addr, mllp.ClientOptions{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	raw := []byte(strings.Replace(mshA01, "%s", "X1", 1) + "\rPID|1||\"\"^^^NORTHMC^MR||Zed^Zack||19500101|M\rPV1|1|I\r")
	for i := 0; i < 2; i++ {
		ack, err := cl.Send(context.Background(), raw)
		var nak *mllp.NAKError
		if !errors.As(err, &nak) || nak.Code != hl7.AckApplicationError {
			t.Fatalf("send #%d = %v, want AE", i+1, err)
		}
		if got, want := ack.Get("ERR-2.1")+"^"+ack.Get("ERR-2.2")+"^"+ack.Get("ERR-2.3"), "PID^1^3"; got != want {
			t.Errorf("ERR-2 = %q, want %q", got, want)
		}
		if got, want := ack.Get("ERR-3"), "101"; got != want {
			t.Errorf("ERR-3.1 = %q, want %q", got, want)
		}
		if got := ack.Get("ERR-8"); !strings.Contains(got, "explicit null") {
			t.Errorf("ERR-8 = %q, want the reason", got)
		}
	}
	if n := count(t, s, "Patient"); n != 0 {
		t.Errorf("Patients = %d, want 0", n)
	}
}
