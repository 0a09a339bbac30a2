package hl7store

import (
	"context"
	"errors"
	"testing"

	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
	"ehrgate/hl7/tofhir"
)

// noAuthority is an ADT^A01 whose PID-3 has no assigning authority (CX-4).
const noAuthority = "MSH|^~\\&|ADT|NORTH|||20260301||ADT^A01|R-1|P|2.5.1\r" +
	"EVN|A01\rPID|1||12345||Doe^Jane||19800101|F\rPV1|1|I\r"

// TestReplayAfterConfigurationFix: a message refused under a feed's
// configuration is logged with its ACK code; once the configuration is
// fixed, a replay converts it.
func TestReplayAfterConfigurationFix(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	m, err := hl7.Parse([]byte(noAuthority), hl7.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	strict := New(s, Options{Clock: clock, Connection: "north", Convert: tofhir.Options{RequireAuthority: true}})
	var me *hl7.MessageError
	if err := strict.HandleMessage(ctx, m); !errors.As(err, &me) {
		t.Fatalf("HandleMessage = %v, want a refusal", err)
	}
	probs, err := s.HL7Problems(ctx, "north", 10)
	if err != nil || len(probs) != 1 || probs[0].Ack != string(me.AckCode()) || probs[0].ControlID != "R-1" {
		t.Fatalf("HL7Problems = %+v, %v; want the refused message with ACK %s", probs, err, me.AckCode())
	}
	fixed := New(s, Options{Clock: clock, Connection: "north", Convert: tofhir.Options{RequireAuthority: true, DefaultAuthority: "MRN"}})
	if err := s.ReplayHL7(ctx, "north", probs[0].Seq); err != nil {
		t.Fatalf("ReplayHL7: %v", err)
	}
	if n, err := fixed.ProcessPending(ctx); err != nil || n != 1 {
		t.Fatalf("ProcessPending = %d, %v; want 1", n, err)
	}
	c, _ := s.HL7Counts(ctx, "north")
	if c.Processed != 1 || c.Failed != 0 {
		t.Errorf("HL7Counts = %+v, want the replayed message converted", c)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	patients := 0
	for _, tc := range st.Resources {
		if tc.Connection == "north" && tc.Type == "Patient" {
			patients = tc.Count
		}
	}
	if patients != 1 {
		t.Errorf("Patients stored after replay = %d, want 1", patients)
	}
}

// TestAckRecorded: the ACK code each message was sent is in the log.
func TestAckRecorded(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	handle(t, h, "adt-a01")
	dft, _ := hl7.Parse([]byte("MSH|^~\\&|BILLING|NORTHMC|||20260101||DFT^P03^DFT_P03|S-1|P|2.5.1\rEVN|P03\r"), hl7.ParseOptions{})
	_ = h.HandleMessage(ctx, dft)
	hours, err := s.HL7Hourly(ctx, DefaultConnection, clock().Add(-1))
	if err != nil {
		t.Fatal(err)
	}
	acks := map[string]int{}
	for _, hc := range hours {
		acks[hc.Ack] += hc.Messages
	}
	if acks["AA"] != 1 || acks["AR"] != 1 {
		t.Errorf("ACK codes = %v, want one AA and one AR", acks)
	}
}

// TestAckRecordedAAOnly: in aa-only mode the log records the AA the
// sender got, even for a refused message (still listed as a problem).
func TestAckRecordedAAOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	h := New(s, Options{Clock: clock, AckMode: mllp.AckImmediate})
	dft, _ := hl7.Parse([]byte("MSH|^~\\&|BILLING|NORTHMC|||20260101||DFT^P03^DFT_P03|S-1|P|2.5.1\rEVN|P03\r"), hl7.ParseOptions{})
	_ = h.HandleMessage(ctx, dft)
	probs, err := s.HL7Problems(ctx, DefaultConnection, 10)
	if err != nil || len(probs) != 1 || probs[0].Ack != "AA" {
		t.Errorf("HL7Problems = %+v, %v; want the refused message with ACK AA", probs, err)
	}
}
