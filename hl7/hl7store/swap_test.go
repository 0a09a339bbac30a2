package hl7store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"ehrgate/events"
	"ehrgate/hl7"
)

const mshA17 = `MSH|^~\&|REG|NORTHMC|EHRGATE|EHRGATE|20260301090000||ADT^A17^ADT_A17|%s|P|2.5.1`

// TestSwapStoresEachPatient: an A17 updates two patients' visits, each
// Encounter stored under its own patient (PatientID) with its own bed,
// and raises one event per patient; neither patient's data reaches the
// other.
func TestSwapStoresEachPatient(t *testing.T) {
	s := newStore(t)
	bus := events.NewBus(events.BusOptions{Clock: clock})
	var got []events.Event
	bus.Subscribe(events.SubscriberFunc(func(e events.Event) { got = append(got, e) }))
	h := New(s, Options{Clock: clock, Bus: bus})
	ctx := context.Background()
	for i, m := range []*hl7.Message{
		parse(t, strings.ReplaceAll(mshA01, "%s", "S1"), "PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F", "PV1|1|I|4W^412^A||||||||||||||||V5001^^^NORTHMC^VN"),
		parse(t, strings.ReplaceAll(mshA01, "%s", "S2"), "PID|1||100300^^^NORTHMC^MR||Rook^Ben||19800101|M", "PV1|1|I|4W^412^B||||||||||||||||V5002^^^NORTHMC^VN"),
	} {
		if err := h.HandleMessage(ctx, m); err != nil {
			t.Fatalf("A01 %d: %v", i, err)
		}
	}
	got = nil
	swap := parse(t, strings.ReplaceAll(mshA17, "%s", "S3"), "EVN|A17|20260301090000",
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F", "PV1|1|I|4W^412^B||||||||||||||||V5001^^^NORTHMC^VN",
		"PID|2||100300^^^NORTHMC^MR||Rook^Ben||19800101|M", "PV1|1|I|4W^412^A||||||||||||||||V5002^^^NORTHMC^VN")
	if err := h.HandleMessage(ctx, swap); err != nil {
		t.Fatalf("A17: %v", err)
	}
	snap := snapshot(t, s)
	beds := map[string]string{} // patient family -> bed
	for _, pat := range []string{"Quill", "Rook"} {
		for k, raw := range snap {
			if len(k) < 10 || k[:10] != "Encounter/" {
				continue
			}
			var e struct {
				Subject  struct{ Reference string }
				Location []struct{ Location struct{ Display string } }
			}
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				t.Fatal(err)
			}
			var p struct{ Name []struct{ Family string } }
			if err := json.Unmarshal([]byte(snap[e.Subject.Reference]), &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Name) > 0 && p.Name[0].Family == pat && len(e.Location) > 0 {
				beds[pat] = e.Location[0].Location.Display
			}
		}
	}
	if beds["Quill"] != "4W 412 B" || beds["Rook"] != "4W 412 A" {
		t.Errorf("beds after the swap = %v, want Quill in B and Rook in A", beds)
	}
	if n := count(t, s, "Encounter"); n != 2 {
		t.Errorf("Encounters = %d, want 2 (one per patient, updated)", n)
	}
	if len(got) != 2 || got[0].Kind != events.Transferred || got[0].PatientRef == got[1].PatientRef ||
		got[0].Patient.Value != "100200" || got[1].Patient.Value != "100300" {
		t.Fatalf("events = %+v, want one transferred event per patient", got)
	}
	for _, e := range got {
		for _, r := range e.Resources {
			if r == e.PatientRef {
				continue
			}
			if rec, err := s.Get(ctx, "hl7", "Encounter", r[len("Encounter/"):]); err == nil && "Patient/"+rec.PatientID != e.PatientRef {
				t.Errorf("event for %s lists %s of %s", e.PatientRef, r, rec.PatientID)
			}
		}
	}
}

// TestSwapPlaceholderRefused: an A17 whose second patient has a
// placeholder identifier is refused (AE at PID[2]-3), kept in the log,
// and changes neither patient.
func TestSwapPlaceholderRefused(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	if err := h.HandleMessage(ctx, parse(t, strings.ReplaceAll(mshA01, "%s", "S1"), "PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F",
		"PV1|1|I|4W^412^A||||||||||||||||V5001^^^NORTHMC^VN")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	for _, deferred := range []bool{false, true} {
		h := New(s, Options{Clock: clock, Deferred: deferred})
		ctl := "S9"
		if deferred {
			ctl = "S10"
		}
		swap := parse(t, strings.ReplaceAll(mshA17, "%s", ctl),
			"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F", "PV1|1|I|4W^412^B||||||||||||||||V5001^^^NORTHMC^VN",
			"PID|2||UNKNOWN^^^NORTHMC^MR||Doe^John", "PV1|1|I|4W^412^A||||||||||||||||V5002^^^NORTHMC^VN")
		me := refusal(t, h.HandleMessage(ctx, swap))
		if me.AckCode() != hl7.AckApplicationError || me.Location.String() != "PID[2]-3" {
			t.Errorf("deferred=%v: refusal = %s at %s (%s), want AE at PID[2]-3", deferred, me.AckCode(), me.Location, me.Reason)
		}
	}
	after := snapshot(t, s)
	if len(after) != len(before) {
		t.Errorf("refused A17 changed the store: %d resources before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed by a refused A17", k)
		}
	}
	c, _ := s.HL7Counts(ctx, "hl7")
	if c.Messages != 3 || c.Failed != 2 {
		t.Errorf("HL7Counts = %+v, want the refused A17s kept (3 messages, 2 failed)", c)
	}
}
