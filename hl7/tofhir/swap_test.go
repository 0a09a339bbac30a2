package tofhir

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"ehrgate/hl7"
)

const a17Header = "MSH|^~\\&|APP|FAC|EHRGATE|EHRGATE|20260302100000||ADT^A17^ADT_A17|C17|P|2.5.1\rEVN|A17|20260302100000\r"

func a17(pairs ...string) string { return a17Header + strings.Join(pairs, "\r") + "\r" }

// TestSwapPatients: each PID/PV1 pair of an A17 becomes its own Patient and
// Encounter, the Encounter's subject and location from its own pair only.
func TestSwapPatients(t *testing.T) {
	msg := a17(
		"PID|1||1001^^^FAC^MR||Alpha^Ann||19700101|F", "PV1|1|I|4W^401^B||||||||||||||||V1^^^FAC^VN",
		"PID|2||1002^^^FAC^MR||Beta^Bob||19800101|M", "PV1|1|I|4W^401^A||||||||||||||||V2^^^FAC^VN", "PV2|||^Chest pain")
	r, err := Convert(mustParse(t, msg), Options{})
	if err != nil {
		t.Fatalf("Convert(A17) = %v", err)
	}
	if len(r.Patients) != 2 || r.Patients[0].ID == r.Patients[1].ID || r.PatientID != r.Patients[0].ID {
		t.Fatalf("Patients = %+v (PatientID %s), want two different, the first as PatientID", r.Patients, r.PatientID)
	}
	pats, encs := r.Of("Patient"), r.Of("Encounter")
	if len(pats) != 2 || len(encs) != 2 {
		t.Fatalf("got %d Patients, %d Encounters, want 2 and 2", len(pats), len(encs))
	}
	type enc struct {
		Subject  struct{ Reference string }
		Status   string
		Location []struct {
			Location struct{ Display string }
			Status   string
		}
		ReasonCode []any
	}
	want := []struct{ family, bed string }{{"Alpha", "4W 401 B"}, {"Beta", "4W 401 A"}}
	for i := range 2 {
		var p struct{ Name []struct{ Family string } }
		if err := json.Unmarshal(pats[i].JSON, &p); err != nil {
			t.Fatal(err)
		}
		if p.Name[0].Family != want[i].family || pats[i].ID != r.Patients[i].ID || pats[i].PatientID != pats[i].ID {
			t.Errorf("Patient %d = %s %q, want %q (%s)", i, pats[i].ID, p.Name[0].Family, want[i].family, r.Patients[i].ID)
		}
		var e enc
		if err := json.Unmarshal(encs[i].JSON, &e); err != nil {
			t.Fatal(err)
		}
		if e.Subject.Reference != "Patient/"+r.Patients[i].ID || encs[i].PatientID != r.Patients[i].ID {
			t.Errorf("Encounter %d subject = %s (PatientID %s), want Patient/%s", i, e.Subject.Reference, encs[i].PatientID, r.Patients[i].ID)
		}
		if len(e.Location) != 1 || e.Location[0].Location.Display != want[i].bed || e.Location[0].Status != "active" || e.Status != "in-progress" {
			t.Errorf("Encounter %d = %+v, want in-progress at %q (active)", i, e, want[i].bed)
		}
		if (len(e.ReasonCode) > 0) != (i == 1) {
			t.Errorf("Encounter %d reasonCode = %v: the PV2 belongs to the second pair only", i, e.ReasonCode)
		}
	}
	if err := Check(mustParse(t, msg), Options{}); err != nil {
		t.Errorf("Check(A17) = %v, want nil", err)
	}
}

// TestSwapRefusals: an A17 is refused (nothing converted) when either pair
// breaks the acceptance rules, naming that pair's segment occurrence, and
// when both pairs are one patient or one visit.
func TestSwapRefusals(t *testing.T) {
	ok1 := []string{"PID|1||1001^^^FAC^MR||Alpha^Ann", "PV1|1|I|4W^401^B||||||||||||||||V1^^^FAC^VN"}
	ok2 := []string{"PID|2||1002^^^FAC^MR||Beta^Bob", "PV1|1|I|4W^401^A||||||||||||||||V2^^^FAC^VN"}
	for _, tt := range []struct {
		name      string
		segs      []string
		cond      hl7.ErrorCondition
		loc       string
		noPatient bool
	}{
		{"placeholder first", []string{"PID|1||UNKNOWN^^^FAC^MR||Alpha^Ann", ok1[1], ok2[0], ok2[1]}, hl7.ErrRequiredFieldMissing, "PID[1]-3", true},
		{"placeholder second", []string{ok1[0], ok1[1], `PID|2||""^^^FAC^MR||Beta^Bob`, ok2[1]}, hl7.ErrRequiredFieldMissing, "PID[2]-3", true},
		{"zeros second", []string{ok1[0], ok1[1], "PID|2||0000^^^FAC^MR||Beta^Bob", ok2[1]}, hl7.ErrRequiredFieldMissing, "PID[2]-3", true},
		{"no class second", []string{ok1[0], ok1[1], ok2[0], "PV1|1||4W^401^A"}, hl7.ErrRequiredFieldMissing, "PV1[2]-2", false},
		{"bad birth date second", []string{ok1[0], ok1[1], "PID|2||1002^^^FAC^MR||Beta^Bob||1980133", ok2[1]}, hl7.ErrDataType, "PID[2]-7", false},
		{"same patient", []string{ok1[0], ok1[1], "PID|2||1001^^^FAC^MR||Alpha^Ann", ok2[1]}, hl7.ErrDataType, "PID[2]-3", false},
		{"same visit", []string{ok1[0], ok1[1], ok2[0], "PV1|1|I|4W^401^A||||||||||||||||V1^^^FAC^VN"}, hl7.ErrDataType, "PV1[2]-19", false},
		{"one pair", ok1, hl7.ErrSegmentSequence, "PID[2]", false},
		{"three pairs", []string{ok1[0], ok1[1], ok2[0], ok2[1], "PID|3||1003^^^FAC^MR||Gamma^Gil", "PV1|1|I|4W^402"}, hl7.ErrSegmentSequence, "PID[3]", false},
		{"no second PV1", []string{ok1[0], ok1[1], ok2[0]}, hl7.ErrSegmentSequence, "PV1[1]", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, a17(tt.segs...))
			for _, f := range []func(*hl7.Message, Options) error{
				func(m *hl7.Message, o Options) error { _, err := Convert(m, o); return err },
				Check,
			} {
				err := f(m, Options{})
				var me *hl7.MessageError
				if !errors.As(err, &me) {
					t.Fatalf("Convert(A17 %s) = %v, want a MessageError", tt.name, err)
				}
				if me.Condition != tt.cond || !strings.HasPrefix(me.Location.String(), tt.loc) || me.AckCode() != hl7.AckApplicationError {
					t.Errorf("refusal = %s %d at %s (%s), want AE %d at %s", me.AckCode(), me.Condition, me.Location, me.Reason, tt.cond, tt.loc)
				}
				if errors.Is(err, ErrNoPatient) != tt.noPatient {
					t.Errorf("errors.Is(err, ErrNoPatient) = %v, want %v", !tt.noPatient, tt.noPatient)
				}
			}
		})
	}
}
