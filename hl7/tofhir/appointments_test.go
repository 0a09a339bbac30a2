package tofhir

import (
	"errors"
	"strings"
	"testing"

	"ehrgate/hl7"
)

func siu(trigger, sch string, rest ...string) string {
	return "MSH|^~\\&|SCHED|NORTHMC|EHRGATE|EHRGATE|20260310080000||SIU^" + trigger + "^SIU_S12|C-" + trigger + "|P|2.5.1\r" +
		sch + "PID|1||100200^^^NORTHMC^MR||Quill^Ada\r" + strings.Join(rest, "")
}

// TestAppointmentStatus: the trigger, else SCH-25, sets Appointment.status;
// every trigger of one appointment updates the same Appointment.
func TestAppointmentStatus(t *testing.T) {
	var first string
	for _, tt := range []struct {
		trigger, sch25, want string
	}{
		{"S12", "", "booked"}, {"S12", "Pending", "pending"}, {"S13", "Booked", "booked"}, {"S14", "Waitlist", "waitlist"},
		{"S14", "Complete", "fulfilled"}, {"S15", "Booked", "cancelled"}, {"S26", "", "noshow"}, {"S14", "Deleted", "entered-in-error"},
		{"S13", "", "booked"},
	} {
		t.Run(tt.trigger+"-"+tt.sch25, func(t *testing.T) {
			r, err := Convert(mustParse(t, siu(tt.trigger, seg("SCH", map[int]string{1: "A-1", 2: "F-1^NORTHMC", 25: tt.sch25}))), Options{})
			if err != nil {
				t.Fatalf("Convert(SIU^%s) = %v", tt.trigger, err)
			}
			as := r.Of("Appointment")
			if len(as) != 1 {
				t.Fatalf("Appointments = %d, want 1", len(as))
			}
			a := jsonOf(t, as[0])
			if got := pick(a, "status"); got != tt.want {
				t.Errorf("status = %q, want %q", got, tt.want)
			}
			if pick(a, "participant.0.actor.reference") != "Patient/"+r.PatientID || as[0].PatientID != r.PatientID {
				t.Errorf("participant 0 = %s, want the patient", pick(a, "participant.0"))
			}
			if first == "" {
				first = as[0].ID
			} else if as[0].ID != first {
				t.Errorf("SIU^%s made Appointment %s, want the S12's %s", tt.trigger, as[0].ID, first)
			}
		})
	}
}

// TestAppointmentStatusFromAIS: without SCH-25 the first AIS-10 filler
// status gives the status (AIS[Appointment] map).
func TestAppointmentStatusFromAIS(t *testing.T) {
	r, err := Convert(mustParse(t, siu("S14", seg("SCH", map[int]string{2: "F-1"}), seg("AIS", map[int]string{1: "1", 3: "X^Y", 10: "Waitlist"}))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pick(jsonOf(t, r.Of("Appointment")[0]), "status"); got != "waitlist" {
		t.Errorf("status = %q, want waitlist (AIS-10)", got)
	}
}

// TestAppointmentMapping: SCH, TQ1, NTE, AIS, AIG, AIL and AIP to
// Appointment fields.
func TestAppointmentMapping(t *testing.T) {
	r, err := Convert(parseFile(t, "testdata/messages/siu-s12.hl7"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := jsonOf(t, r.Of("Appointment")[0])
	for path, want := range map[string]string{
		"identifier.0.value": "A-100", "identifier.0.type.coding.0.code": "PLAC", "identifier.0.system": "urn:ehrgate:hl7v2:authority:SCHED",
		"identifier.1.value": "F-200", "identifier.1.type.coding.0.code": "FILL",
		"appointmentType.coding.0.code": "ROUTINE", "appointmentType.coding.0.system": "http://terminology.hl7.org/CodeSystem/v2-0276",
		"start": "2026-03-20T09:30:00-05:00", "end": "2026-03-20T10:00:00-05:00", "minutesDuration": "30",
		"comment": "Bring prior imaging", "serviceType.0.coding.0.code": "99213",
		"participant.1.actor.type": "Location", "participant.1.actor.display": "NORTHMC ORTHO RM3", "participant.1.status": "accepted",
		"participant.2.actor.type": "Practitioner", "participant.2.actor.display": "Dr Lena Hart", "participant.2.type.0.coding.0.code": "ATND",
		"participant.2.period.start": "2026-03-20T09:30:00-05:00",
		"participant.1.period.end":   "", // no AIL-9 duration in the message
	} {
		if got := pick(a, path); got != want {
			t.Errorf("Appointment.%s = %q, want %q", path, got, want)
		}
	}
	// Without TQ1 the start comes from SCH-11, then from AIS-4; AIG is a participant.
	r, err = Convert(mustParse(t, siu("S12", seg("SCH", map[int]string{2: "F-2", 9: "3600", 10: "s", 11: "^^^202603201000"}),
		seg("AIG", map[int]string{1: "1", 3: "EQ1^Video scope", 4: "101^Equipment^L", 8: "202603201000", 11: "2", 12: "h", 14: "Pending"}))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a = jsonOf(t, r.Of("Appointment")[0])
	for path, want := range map[string]string{
		"start": "2026-03-20T10:00:00Z", "minutesDuration": "60", "participant.1.actor.display": "Video scope",
		"participant.1.status": "tentative", "participant.1.type.0.coding.0.code": "101",
		"participant.1.period.end": "2026-03-20T12:00:00Z",
	} {
		if got := pick(a, path); got != want {
			t.Errorf("Appointment(no TQ1).%s = %q, want %q", path, got, want)
		}
	}
	r, err = Convert(mustParse(t, siu("S12", seg("SCH", map[int]string{2: "F-3"}), seg("AIS", map[int]string{1: "1", 3: "X^Y", 4: "20260321"}))), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pick(jsonOf(t, r.Of("Appointment")[0]), "start"); got != "2026-03-21" {
		t.Errorf("start from AIS-4 = %q", got)
	}
}

// TestAppointmentRefusals: a SIU without an appointment id, without a
// patient, or with an invalid date used by the mapping is refused (AE).
func TestAppointmentRefusals(t *testing.T) {
	for _, tt := range []struct {
		name, msg string
		cond      hl7.ErrorCondition
		loc       string
	}{
		{"no ids", siu("S12", seg("SCH", map[int]string{6: "NEW"})), hl7.ErrRequiredFieldMissing, "SCH[1]-2"},
		{"placeholder ids", siu("S12", seg("SCH", map[int]string{1: "UNKNOWN", 2: `""`})), hl7.ErrRequiredFieldMissing, "SCH[1]-2"},
		{"no SCH", siu("S12", ""), hl7.ErrSegmentSequence, "SCH[1]"},
		{"placeholder patient", strings.Replace(siu("S12", seg("SCH", map[int]string{2: "F-1"})), "100200^^^NORTHMC^MR", "0000^^^NORTHMC^MR", 1), hl7.ErrRequiredFieldMissing, "PID[1]-3"},
		{"bad TQ1-7", siu("S12", seg("SCH", map[int]string{2: "F-1"})+seg("TQ1", map[int]string{7: "2026-03-20"})), hl7.ErrDataType, "TQ1[1]-7"},
		{"bad SCH-11", siu("S12", seg("SCH", map[int]string{2: "F-1", 11: "^^^20261340"})), hl7.ErrDataType, "SCH[1]-11"},
		{"bad AIP-6", siu("S12", seg("SCH", map[int]string{2: "F-1"}), seg("AIP", map[int]string{1: "1", 3: "1^A^B", 6: "x"})), hl7.ErrDataType, "AIP[1]-6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert(mustParse(t, tt.msg), Options{})
			var me *hl7.MessageError
			if !errors.As(err, &me) || me.Condition != tt.cond || !strings.HasPrefix(me.Location.String(), tt.loc) || me.AckCode() != hl7.AckApplicationError {
				t.Errorf("Convert(%s) = %v, want AE %d at %s", tt.name, err, tt.cond, tt.loc)
			}
		})
	}
	// Other SIU triggers are not converted: refused as unsupported (AR).
	_, err := Convert(mustParse(t, siu("S17", seg("SCH", map[int]string{2: "F-1"}))), Options{})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("Convert(SIU^S17) = %v, want ErrUnsupported", err)
	}
}
