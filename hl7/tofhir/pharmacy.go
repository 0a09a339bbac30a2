package tofhir

import (
	"fmt"
	"strings"

	"ehrgate/hl7"
)

// Pharmacy: RDE^O11 (pharmacy encoded order) and RDE^O25 (refill
// authorization) to MedicationRequest, following the HL7 v2-to-FHIR IG's
// "Segment RXE to MedicationRequest" and "Segment ORC to MedicationRequest"
// maps. Each RXE is one MedicationRequest with the ORC before it; the RXO
// of the same order (the prescriber's version, which the RXE encodes) is
// not converted separately, nor are RXC components, OBX, FT1 or PV1.

// timingAbbrev are TQ1-3 repeat patterns (table 0335) that are also
// v3-GTSAbbreviation codes.
var timingAbbrev = map[string]bool{"BID": true, "TID": true, "QID": true, "QD": true, "QOD": true, "AM": true,
	"PM": true, "Q4H": true, "Q6H": true, "Q8H": true, "Q12H": true, "WK": true, "MO": true}

type rxGroup struct {
	orc, rxe, tq1, rxr hl7.Segment
	hasORC, hasTQ1     bool
	hasRXR             bool
	notes              []any
}

func (c *conv) pharmacy() error {
	p, err := c.patient()
	if err != nil {
		return err
	}
	var groups []*rxGroup
	var orc hl7.Segment
	hasORC := false
	orcs, rxes := 0, 0
	var cur *rxGroup
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		switch s.Name() {
		case "ORC":
			orcs++
			if err := requireField(s, orcs, 1, "order control"); err != nil {
				return err
			}
			if err := c.checkTime(s, orcs, 9); err != nil {
				return err
			}
			orc, hasORC, cur = s, true, nil
		case "RXE":
			rxes++
			if err := requireField(s, rxes, 2, "give code"); err != nil {
				return err
			}
			cur = &rxGroup{orc: orc, hasORC: hasORC, rxe: s}
			groups = append(groups, cur)
		case "TQ1":
			if cur != nil && !cur.hasTQ1 {
				cur.tq1, cur.hasTQ1 = s, true
			}
		case "RXR":
			if cur != nil && !cur.hasRXR {
				cur.rxr, cur.hasRXR = s, true
			}
		case "NTE":
			if cur != nil && c.m.SegmentAt(i-1).Name() == "RXE" || cur != nil && len(cur.notes) > 0 && c.m.SegmentAt(i-1).Name() == "NTE" {
				cur.notes = appendNote(cur.notes, c.annotation(s))
			}
		}
	}
	if !hasORC {
		return problem(hl7.ErrSegmentSequence, at("ORC", 1, 0), "%s^%s needs an ORC", c.res.MessageType, c.res.Trigger)
	}
	if len(groups) == 0 {
		return problem(hl7.ErrSegmentSequence, at("RXE", 1, 0), "%s^%s needs an RXE", c.res.MessageType, c.res.Trigger)
	}
	c.addPatient(p)
	keys := make([]string, len(groups))
	for i, g := range groups {
		keys[i] = fmt.Sprintf("%s#%d", c.source, i+1)
		for _, n := range []int{2, 3} {
			if g.hasORC {
				if r := g.orc.Field(n).Repetition(1); c.usableIdentifier(r.Component(1).Value()) == "" {
					keys[i] = map[int]string{2: "PLAC", 3: "FILL"}[n] + "|" + firstNonEmpty(r.Component(2).Value(), r.Component(3).Value()) + "|" + r.Component(1).Value()
					break
				}
			}
		}
	}
	keys = disambiguate(keys, func(i int) string { return codeKey(groups[i].rxe.Field(2).Repetition(1)) })
	for i, g := range groups {
		c.medicationRequest(g, keys[i])
	}
	return nil
}

// medicationRequest maps one RXE with its ORC: identifier ← ORC-2 (PLAC)
// and ORC-3 (FILL), status ← ORC-5 else ORC-1 (as orders), intent order,
// medicationCodeableConcept ← RXE-2 (NDC, RxNorm by CE-3), dosageInstruction:
// text ← RXE-7 (administration instructions), doseQuantity ← RXE-3 (a
// doseRange to RXE-4 when given) in RXE-5 units, route ← RXR-1, timing
// code ← TQ1-3 repeat pattern; dispenseRequest: quantity ← RXE-10/RXE-11,
// numberOfRepeatsAllowed ← RXE-12; reasonCode ← RXE-27 (give indication,
// ICD-10 read as in DG1); authoredOn ←
// ORC-9; requester ← ORC-12 (display); note ← NTE after the RXE; subject.
// Id: hash(patient, placer number, else filler, else message and
// position).
func (c *conv) medicationRequest(g *rxGroup, key string) {
	rxe := g.rxe
	mr := obj{"subject": c.patientRef(), "intent": "order", "medicationCodeableConcept": cwe(rxe.Field(2).Repetition(1))}
	status := ""
	var ids []any
	if g.hasORC {
		status = firstNonEmpty(orderStatus[strings.ToUpper(g.orc.Field(5).Value())], orderControl[strings.ToUpper(g.orc.Field(1).Value())])
		for _, n := range []int{2, 3} {
			if r := g.orc.Field(n).Repetition(1); c.usableIdentifier(r.Component(1).Value()) == "" {
				ids = append(ids, obj{"value": r.Component(1).Value(),
					"system": c.system(hd{namespace: r.Component(2).Value(), universal: r.Component(3).Value(), typ: r.Component(4).Value()}),
					"type":   obj{"coding": []any{obj{"system": sysV2_0203, "code": map[int]string{2: "PLAC", 3: "FILL"}[n]}}}})
			}
		}
		if t, ok := dateTime(g.orc.Field(9).Value(), c.o.Location); ok {
			mr["authoredOn"] = t
		}
		if d := xcnDisplay(g.orc.Field(12).Repetition(1)); d != "" {
			mr["requester"] = obj{"display": d}
		}
	}
	mr["status"] = firstNonEmpty(status, "unknown")
	set(mr, "identifier", ids)
	dose := obj{}
	var text []string
	f := rxe.Field(7)
	for i := 1; i <= f.NumRepetitions(); i++ {
		r := f.Repetition(i)
		if t := strings.TrimSpace(firstNonEmpty(r.Component(2).Value(), r.Component(9).Value(), r.Component(1).Value())); t != "" {
			text = append(text, t)
		}
	}
	set(dose, "text", strings.Join(text, "\n"))
	units := rxe.Field(5).Repetition(1)
	lo, hi := quantity(rxe.Field(3).Value(), units), quantity(rxe.Field(4).Value(), units)
	switch {
	case lo != nil && hi != nil:
		dose["doseAndRate"] = []any{obj{"doseRange": obj{"low": lo, "high": hi}}}
	case lo != nil:
		dose["doseAndRate"] = []any{obj{"doseQuantity": lo}}
	}
	if g.hasRXR {
		if r := g.rxr.Field(1).Repetition(1); !r.IsEmpty() {
			dose["route"] = cwe(r)
		}
	}
	if g.hasTQ1 {
		if rp := g.tq1.Field(3).Repetition(1).Component(1).Value(); rp != "" {
			code := obj{"text": rp}
			if timingAbbrev[strings.ToUpper(rp)] {
				code["coding"] = []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": strings.ToUpper(rp)}}
			}
			dose["timing"] = obj{"code": code}
		}
	}
	if len(dose) > 0 {
		mr["dosageInstruction"] = []any{dose}
	}
	disp := obj{}
	if q := quantity(rxe.Field(10).Value(), rxe.Field(11).Repetition(1)); q != nil {
		disp["quantity"] = q
	}
	if n := atoi(strings.TrimSpace(rxe.Field(12).Value())); n >= 0 && rxe.Field(12).Value() != "" {
		disp["numberOfRepeatsAllowed"] = n
	}
	set(mr, "dispenseRequest", disp)
	var reasons []any
	f = rxe.Field(27)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if r := f.Repetition(i); !r.IsEmpty() {
			reasons = append(reasons, reasonConcept(r))
		}
	}
	set(mr, "reasonCode", reasons)
	set(mr, "note", g.notes)
	c.add("MedicationRequest", id("medrx", c.res.PatientID, key), mr)
}
