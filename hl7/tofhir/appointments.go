package tofhir

import (
	"strings"
	"time"

	"ehrgate/hl7"
)

// Scheduling: SIU^S12 (new booking), S13 (rescheduled), S14 (modified),
// S15 (cancelled) and S26 (no-show) to one Appointment, following the IG's
// "Message SIU_S12 to Bundle" map with the segment maps SCH[Appointment],
// AIS[Appointment], AIG[Appointment], AIL[Appointment] and AIP[Appointment]
// (CSV sources "HL7 Segment - FHIR R4_ <seg>[Appointment]" in
// github.com/HL7/v2-to-fhir). The patient (PID) is converted as in ADT;
// the PV1, PV2, OBX and DG1 a SIU may carry are context and stay in the raw
// message.

// fillerStatus maps SCH-25 (HL7 table 0278, filler status codes) to
// Appointment.status.
var fillerStatus = map[string]string{
	"PENDING": "pending", "WAITLIST": "waitlist", "BOOKED": "booked", "OVERBOOK": "booked", "STARTED": "arrived",
	"COMPLETE": "fulfilled", "CANCELLED": "cancelled", "DC": "cancelled", "DELETED": "entered-in-error",
	"NOSHOW": "noshow", "BLOCKED": "booked",
}

// participantStatus maps a resource segment's filler status (table 0278:
// AIS-10, AIG-14, AIL-12, AIP-12) to Appointment.participant.status.
var participantStatus = map[string]string{
	"PENDING": "tentative", "WAITLIST": "tentative", "BOOKED": "accepted", "OVERBOOK": "accepted",
	"STARTED": "accepted", "COMPLETE": "accepted", "BLOCKED": "accepted",
	"CANCELLED": "declined", "DC": "declined", "DELETED": "declined", "NOSHOW": "declined",
}

// triggerStatus is the Appointment.status a trigger implies (HL7 v2.5.1
// chapter 10: S15 notification of appointment cancellation, S26 patient
// did not show up); the others take SCH-25, else booked.
var triggerStatus = map[string]string{"S15": "cancelled", "S26": "noshow"}

// appointment converts a SIU message ("Segment SCH to Appointment" map):
//
//   - identifier ← SCH-1 placer appointment id (PLAC) and SCH-2 filler
//     appointment id (FILL), each EI with its assigning authority; one of
//     them is required (AE 101 at SCH-2): it is the appointment's identity
//   - status ← the trigger (S15 cancelled, S26 noshow), else SCH-25
//     filler status (table 0278, the map's FillerStatus vocabulary), else
//     the first AIS-10, else booked
//   - appointmentType ← SCH-7 appointment reason: the map sends SCH-7 to
//     appointmentType or reasonCode by the table its codes come from;
//     table 0276 (ROUTINE, WALKIN, EMERGENCY, ...) is the binding of R4
//     appointmentType. SCH-8 (table 0277: Normal, Tentative, Complete)
//     and SCH-6 (the scheduling event's reason) are not mapped; nor are
//     SCH-12/16/20 contact persons or SCH-26/27 order numbers (basedOn)
//   - start / end ← TQ1-7 / TQ1-8, else SCH-11.4 / SCH-11.5 (TQ), else the
//     first AIS-4; minutesDuration ← SCH-9 in SCH-10 units (s, min, h, d;
//     minutes when none), when whole
//   - comment ← the NTE after SCH (joined by newlines)
//   - serviceType ← AIS-3 (each AIS)
//   - participant: the Patient (accepted), and per AIG / AIL / AIP the
//     resource as a display-only actor (AIG-3 resource, AIL-3 location, AIP-3
//     person), type ← AIG-4 / AIL-4 / AIP-4 role, period.start ← AIG-8 /
//     AIL-6 / AIP-6 and period.end ← start + AIG-11 / AIL-9 / AIP-9
//     duration (units in the next field), status ← AIG-14 / AIL-12 /
//     AIP-12 (R4 requires one; the maps leave it: table 0278 Booked
//     accepted, Cancelled and Noshow declined, Pending tentative; else
//     needs-action)
//
// Dates used (TQ1-7/8, SCH-11, AIS-4, AIG-8, AIL-6, AIP-6) must be valid
// (AE 102). Id = hash(patient, filler id with its authority, else placer
// id): the S13/S14/S15/S26 of an appointment update the S12's Appointment,
// and the same number sent for another patient never overwrites the first
// patient's appointment.
func (c *conv) appointment() error {
	p, err := c.patient()
	if err != nil {
		return err
	}
	sch, err := c.requireSegment("SCH", "schedule activity information")
	if err != nil {
		return err
	}
	a := obj{}
	var ids []any
	var key string
	for _, f := range []struct {
		n    int
		code string
	}{{2, "FILL"}, {1, "PLAC"}} {
		r := sch.Field(f.n).Repetition(1)
		v := r.Component(1).Value()
		if c.usableIdentifier(v) != "" {
			continue
		}
		o := obj{"value": v, "system": c.system(hd{r.Component(2).Value(), r.Component(3).Value(), r.Component(4).Value()}),
			"type": obj{"coding": []any{obj{"system": sysV2_0203, "code": f.code}}}}
		ids = append([]any{o}, ids...) // placer first, as SCH lists them
		if key == "" {
			key = f.code + "|" + o["system"].(string) + "|" + v
		}
	}
	if key == "" {
		return problem(hl7.ErrRequiredFieldMissing, at("SCH", 1, 2), "SCH-1 or SCH-2 (placer or filler appointment id) is required")
	}
	a["identifier"] = ids

	tq1, hasTQ1 := c.m.Segment("TQ1", 1)
	for _, comp := range []int{4, 5} {
		if v := sch.Field(11).Component(comp).Value(); v != "" {
			if _, ok := dateTime(v, c.o.Location); !ok {
				return problem(hl7.ErrDataType, at("SCH", 1, 11), "SCH-11.%d is not a valid date/time", comp)
			}
		}
	}
	if hasTQ1 {
		for _, n := range []int{7, 8} {
			if err := c.checkTime(tq1, 1, n); err != nil {
				return err
			}
		}
	}

	status := triggerStatus[c.res.Trigger]
	if status == "" {
		status = fillerStatus[strings.ToUpper(sch.Field(25).Component(1).Value())]
	}
	if status == "" { // AIS-10 filler status (AIS[Appointment] map: status)
		if ais, ok := c.m.Segment("AIS", 1); ok {
			status = fillerStatus[strings.ToUpper(ais.Field(10).Component(1).Value())]
		}
	}
	a["status"] = firstNonEmpty(status, "booked")
	if r := sch.Field(7).Repetition(1); r.Component(1).Value() != "" || r.Component(2).Value() != "" {
		a["appointmentType"] = tableCoded(r, "HL70276")
	}
	start, end := "", ""
	if hasTQ1 {
		start, _ = dateTime(tq1.Field(7).Value(), c.o.Location)
		end, _ = dateTime(tq1.Field(8).Value(), c.o.Location)
	}
	if start == "" {
		start, _ = dateTime(sch.Field(11).Component(4).Value(), c.o.Location)
		if end == "" {
			end, _ = dateTime(sch.Field(11).Component(5).Value(), c.o.Location)
		}
	}
	if d := durationMinutes(sch.Field(9).Value(), sch.Field(10).Component(1).Value()); d > 0 {
		a["minutesDuration"] = d
	}

	var notes []string
	var services, parts []any
	parts = append(parts, obj{"actor": c.patientRef(), "status": "accepted", "required": "required"})
	owner := ""
	seqs := map[string]int{}
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		name := s.Name()
		seqs[name]++
		if name == "NTE" {
			if owner == "SCH" || owner == "TQ1" {
				if n := c.annotation(s); n != nil {
					notes = append(notes, n["text"].(string))
				}
			}
			continue
		}
		owner = name
		var actorField, typeField, startField, durField, statusField int
		actorType := ""
		switch name {
		case "AIS":
			if err := c.checkTime(s, seqs[name], 4); err != nil {
				return err
			}
			if r := s.Field(3).Repetition(1); r.Component(1).Value() != "" || r.Component(2).Value() != "" {
				services = append(services, cwe(r))
			}
			if start == "" {
				start, _ = dateTime(s.Field(4).Value(), c.o.Location)
			}
			continue
		case "AIG":
			actorField, typeField, startField, durField, statusField = 3, 4, 8, 11, 14
		case "AIL":
			actorField, typeField, startField, durField, statusField, actorType = 3, 4, 6, 9, 12, "Location"
		case "AIP":
			actorField, typeField, startField, durField, statusField, actorType = 3, 4, 6, 9, 12, "Practitioner"
		default:
			continue
		}
		if err := c.checkTime(s, seqs[name], startField); err != nil {
			return err
		}
		actor := obj{}
		r := s.Field(actorField).Repetition(1)
		switch name {
		case "AIL":
			set(actor, "display", locationDisplay(r))
		case "AIP":
			set(actor, "display", xcnDisplay(r))
			if v := r.Component(1).Value(); v != "" {
				actor["identifier"] = obj{"value": v, "system": c.system(hdOf(r.Component(9)))}
			}
		default:
			set(actor, "display", firstNonEmpty(r.Component(2).Value(), r.Component(1).Value()))
		}
		if len(actor) == 0 {
			continue
		}
		set(actor, "type", actorType)
		part := obj{"actor": actor, "status": firstNonEmpty(participantStatus[strings.ToUpper(s.Field(statusField).Component(1).Value())], "needs-action")}
		if t := s.Field(typeField).Repetition(1); t.Component(1).Value() != "" || t.Component(2).Value() != "" {
			part["type"] = []any{cwe(t)}
		}
		if t, ok := dateTime(s.Field(startField).Value(), c.o.Location); ok {
			period := obj{"start": t}
			set(period, "end", addMinutes(t, durationMinutes(s.Field(durField).Value(), s.Field(durField+1).Component(1).Value())))
			part["period"] = period
		}
		parts = append(parts, part)
	}
	set(a, "start", start)
	set(a, "end", end)
	set(a, "serviceType", services)
	set(a, "comment", strings.Join(notes, "\n"))
	a["participant"] = parts
	c.addPatient(p)
	c.add("Appointment", id("appt", c.res.PatientID, key), a)
	return nil
}

// addMinutes returns the FHIR dateTime t plus m minutes, "" when t has no
// time of day or m is not positive.
func addMinutes(t string, m int) string {
	if m <= 0 || len(t) <= 10 {
		return ""
	}
	tm, err := time.Parse(time.RFC3339Nano, t)
	if err != nil {
		return ""
	}
	return tm.Add(time.Duration(m) * time.Minute).Format(time.RFC3339)
}

// durationMinutes converts SCH-9 (a number) in SCH-10 units (ISO+ / ANSI
// unit codes s, min, h, d; minutes when empty) to whole minutes, 0 when it
// is not a whole positive number of minutes.
func durationMinutes(v, unit string) int {
	n := atoi(strings.TrimSpace(v))
	if n <= 0 || strings.TrimSpace(v) == "" {
		return 0
	}
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "", "min", "m", "mn":
		return n
	case "s", "sec":
		if n%60 == 0 {
			return n / 60
		}
		return 0
	case "h", "hr":
		return n * 60
	case "d":
		return n * 1440
	}
	return 0
}
