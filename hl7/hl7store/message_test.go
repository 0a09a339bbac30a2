package hl7store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"ehrgate/hl7/tofhir"
	"ehrgate/store"
)

// TestProvenanceTracesEachResource: every stored resource of a patient is
// the target of a Provenance in that patient's record whose meta.source is
// the resource's, and whose entity is a stored MessageHeader; a message
// that changes nothing stores its MessageHeader but no Provenance; a
// Provenance targets only what its message created or changed.
func TestProvenanceTracesEachResource(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		name := "inline"
		if deferred {
			name = "deferred"
		}
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			h := New(s, Options{Clock: clock, Deferred: deferred})
			ctx := context.Background()
			handle(t, h, "adt-a01", "adt-a02")
			// The A02 again under a new control id: same content otherwise.
			again := strings.Replace(string(msg(t, "adt-a02").Bytes()), "NMC-1002", "NMC-1002R", 1)
			if err := h.HandleMessage(ctx, parse(t, strings.TrimRight(again, "\r\n"))); err != nil {
				t.Fatal(err)
			}
			if deferred {
				if _, err := h.ProcessPending(ctx); err != nil {
					t.Fatal(err)
				}
			}
			pid := encounterPatient(t)
			provs, err := s.ListByPatient(ctx, "hl7", pid, "Provenance")
			if err != nil {
				t.Fatal(err)
			}
			type prov struct {
				Meta   struct{ Source string }
				Target []struct{ Reference string }
				Entity []struct{ What struct{ Reference string } }
			}
			bySource := map[string]prov{}
			for _, r := range provs {
				var p prov
				if err := json.Unmarshal(r.Raw, &p); err != nil {
					t.Fatal(err)
				}
				bySource[p.Meta.Source] = p
				if len(p.Entity) == 0 {
					t.Fatalf("Provenance %s entity = %+v", r.ID, p.Entity)
				}
				mh := strings.TrimPrefix(p.Entity[0].What.Reference, "MessageHeader/")
				if rec, err := s.Get(ctx, "hl7", "MessageHeader", mh); err != nil || rec.PatientID != "" {
					t.Errorf("MessageHeader %s: %v (patient %q), want stored, without a patient", mh, err, rec.PatientID)
				}
			}
			if len(provs) != 2 {
				t.Fatalf("Provenances in the patient's record = %d (%v), want 2 (the repeat changed nothing)", len(provs), bySource)
			}
			a02 := bySource["urn:hl7v2:EPICADT|NORTHMC|NMC-1002"]
			if len(a02.Target) != 1 || !strings.HasPrefix(a02.Target[0].Reference, "Encounter/") {
				t.Errorf("A02 Provenance targets %+v, want only the Encounter (the Patient did not change)", a02.Target)
			}
			for _, typ := range []string{"Patient", "Encounter"} {
				var recs []store.Record
				if typ == "Patient" {
					r, _ := resource(t, s, "Patient", pid)
					recs = []store.Record{r}
				} else if recs, err = s.ListByPatient(ctx, "hl7", pid, typ); err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					p, ok := bySource[r.Source]
					found := false
					for _, tg := range p.Target {
						found = found || tg.Reference == typ+"/"+r.ID
					}
					if !ok || !found {
						t.Errorf("%s/%s (source %s) is not traced by its message's Provenance", typ, r.ID, r.Source)
					}
				}
			}
			if c, _ := s.HL7Counts(ctx, "hl7"); c.Processed != 3 {
				t.Errorf("HL7Counts = %+v, want 3 processed", c)
			}
		})
	}
}

// TestCoverageInPatientRecord: an ADT's IN1 is stored as a Coverage in the
// patient's record (normalize reads Coverage.beneficiary), the subscriber
// RelatedPerson too, the payer Organization under no patient.
func TestCoverageInPatientRecord(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	m := parse(t, strings.ReplaceAll(mshA01, "%s", "COV1"),
		"PID|1||100200^^^NORTHMC^MR||Quill^Ada||19790412|F",
		"PV1|1|O|CLINIC||||||||||||||||V7001^^^NORTHMC^VN",
		"IN1|1|MED^Medigap|IC-2^^^AETNA|Aetna||||||||20250101||||Quill^Bob|SPO")
	res, err := tofhir.Convert(m, tofhir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	pid := res.PatientID
	for typ, want := range map[string]int{"Coverage": 1, "RelatedPerson": 1, "Organization": 0} {
		recs, err := s.ListByPatient(ctx, "hl7", pid, typ)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("%s in the patient's record = %d, want %d", typ, len(recs), want)
		}
	}
	if n := count(t, s, "Organization"); n != 1 {
		t.Errorf("Organizations = %d, want the payer", n)
	}
}

// TestAppointmentInPatientRecord: a SIU^S12 then its S15 store one
// Appointment in the patient's record (normalize reads
// Appointment.participant.actor), cancelled by the second.
func TestAppointmentInPatientRecord(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	ctx := context.Background()
	var pid string
	for _, name := range []string{"siu-s12", "siu-s15"} {
		m := msg(t, name)
		res, err := tofhir.Convert(m, tofhir.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pid = res.PatientID
		if err := h.HandleMessage(ctx, m); err != nil {
			t.Fatalf("HandleMessage(%s): %v", name, err)
		}
	}
	recs, err := s.ListByPatient(ctx, "hl7", pid, "Appointment")
	if err != nil || len(recs) != 1 {
		t.Fatalf("Appointments in the patient's record = %d, %v; want 1", len(recs), err)
	}
	var a struct{ Status string }
	if err := json.Unmarshal(recs[0].Raw, &a); err != nil || a.Status != "cancelled" {
		t.Errorf("Appointment status = %q (%v), want cancelled", a.Status, err)
	}
}
