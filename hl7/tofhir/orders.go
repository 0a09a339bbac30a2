package tofhir

import (
	"strings"

	"ehrgate/hl7"
)

// Orders: ORM^O01 and OML^O21 to ServiceRequest, following the HL7
// v2-to-FHIR IG's "Message ORM_O01 to Bundle" and "Message OML_O21 to
// Bundle" maps with "Segment ORC to ServiceRequest" and "Segment OBR to
// ServiceRequest". Each OBR is one ServiceRequest, with the ORC before it.
// What an order message carries besides the order itself (PV1, OBX of
// prior results, SPM, IN1, ...) is not converted and stays in the raw
// message; an order message without any OBR (pharmacy RXO, diet ODS, ...)
// is refused as unsupported.

// orderStatus maps ORC-5 (table 0038) to ServiceRequest.status.
var orderStatus = map[string]string{
	"A": "active", "IP": "active", "SC": "active", "CM": "completed", "CA": "revoked", "DC": "revoked",
	"RP": "revoked", "HD": "on-hold", "ER": "entered-in-error",
}

// orderControl maps ORC-1 (table 0119) to ServiceRequest.status when ORC-5
// is empty.
var orderControl = map[string]string{
	"NW": "active", "XO": "active", "SN": "active", "NA": "active", "OK": "active", "SC": "active", "RL": "active",
	"RO": "active", "XR": "active", "CA": "revoked", "OC": "revoked", "DC": "revoked", "OD": "revoked",
	"CR": "revoked", "DR": "revoked", "HD": "on-hold", "OH": "on-hold",
}

// orderPriority maps a TQ1-9 / TQ-6 priority to ServiceRequest.priority.
var orderPriority = map[string]string{"S": "stat", "A": "asap", "R": "routine", "T": "urgent"}

type orderSegs struct {
	orc, obr, tq1 hl7.Segment
	hasORC        bool
	hasTQ1        bool
	notes         []any
	reasons       []any
}

func (c *conv) orders() error {
	if len(c.m.Segments("OBR")) == 0 {
		return unsupported(c.res.MessageType, c.res.Trigger, "without OBR (a pharmacy, diet or supply order) is not converted by this feed")
	}
	p, err := c.patient()
	if err != nil {
		return err
	}
	var groups []*orderSegs
	var orc, tq1 hl7.Segment
	hasORC, hasTQ1 := false, false
	noteTo := ""
	orcs, obrs := 0, 0
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		name := s.Name()
		if name != "NTE" {
			noteTo = ""
		}
		switch name {
		case "ORC":
			orcs++
			if err := requireField(s, orcs, 1, "order control"); err != nil {
				return err
			}
			if err := c.checkTime(s, orcs, 9); err != nil {
				return err
			}
			orc, hasORC, hasTQ1 = s, true, false
		case "TQ1":
			tq1, hasTQ1 = s, true
		case "OBR":
			obrs++
			if err := requireField(s, obrs, 4, "universal service identifier"); err != nil {
				return err
			}
			groups = append(groups, &orderSegs{orc: orc, hasORC: hasORC, obr: s, tq1: tq1, hasTQ1: hasTQ1})
			noteTo = "OBR"
		case "NTE":
			if noteTo == "OBR" {
				g := groups[len(groups)-1]
				g.notes = appendNote(g.notes, c.annotation(s))
			}
		case "DG1":
			if len(groups) > 0 {
				g := groups[len(groups)-1]
				if r := s.Field(3).Repetition(1); !r.IsEmpty() {
					cc := diagnosisCode(r, s.Field(2).Value())
					set(cc, "text", strings.TrimSpace(s.Field(4).Value()))
					if len(cc) > 0 {
						g.reasons = append(g.reasons, cc)
					}
				}
			}
		case "OBX", "SPM":
			noteTo = "" // prior results and specimens: not converted
		}
	}
	if !hasORC {
		return problem(hl7.ErrSegmentSequence, at("ORC", 1, 0), "%s^%s needs an ORC", c.res.MessageType, c.res.Trigger)
	}
	c.addPatient(p)
	keys := make([]string, len(groups))
	for i, g := range groups {
		keys[i] = c.orderIdentity(g)
	}
	keys = disambiguate(keys, func(i int) string { return codeKey(groups[i].obr.Field(4).Repetition(1)) })
	for i, g := range groups {
		c.serviceRequest(g, keys[i], i+1)
	}
	return nil
}

// orderIdentity is the key of an order: the placer number (ORC-2, else
// OBR-2) with its namespace, else the filler number (ORC-3, else OBR-3),
// else the message and position.
func (c *conv) orderIdentity(g *orderSegs) string {
	for _, f := range []struct {
		orcField, obrField int
		code               string
	}{{2, 2, "PLAC"}, {3, 3, "FILL"}} {
		if r, ok := c.orderNumber(g, f.orcField, f.obrField); ok {
			return f.code + "|" + firstNonEmpty(r.Component(2).Value(), r.Component(3).Value()) + "|" + r.Component(1).Value()
		}
	}
	return c.source
}

// orderNumber returns the usable EI of ORC-n, else OBR-m.
func (c *conv) orderNumber(g *orderSegs, orcField, obrField int) (hl7.Repetition, bool) {
	if g.hasORC {
		if r := g.orc.Field(orcField).Repetition(1); c.usableIdentifier(r.Component(1).Value()) == "" {
			return r, true
		}
	}
	if r := g.obr.Field(obrField).Repetition(1); c.usableIdentifier(r.Component(1).Value()) == "" {
		return r, true
	}
	return hl7.Repetition{}, false
}

// serviceRequest maps one order: identifier ← ORC-2/OBR-2 (PLAC) and
// ORC-3/OBR-3 (FILL), status ← ORC-5 else ORC-1, intent order, code ←
// OBR-4, priority ← TQ1-9 else OBR-27.6, occurrenceDateTime ← TQ1-7 else
// OBR-27.4, authoredOn ← ORC-9, requester ← ORC-12 else OBR-16 (display),
// reasonCode ← OBR-31 and the order's DG1-3 (DG1-4 as text; ICD-10 read
// as in DG1, see diagnosisSystem), note ← NTE after the OBR,
// subject → Patient. Id: hash(patient, placer number, else filler).
func (c *conv) serviceRequest(g *orderSegs, key string, n int) {
	sr := obj{"subject": c.patientRef(), "intent": "order", "code": cwe(g.obr.Field(4).Repetition(1))}
	var ids []any
	for _, f := range []struct {
		orcField, obrField int
		code               string
	}{{2, 2, "PLAC"}, {3, 3, "FILL"}} {
		if r, ok := c.orderNumber(g, f.orcField, f.obrField); ok {
			ids = append(ids, obj{"value": r.Component(1).Value(),
				"system": c.system(hd{namespace: r.Component(2).Value(), universal: r.Component(3).Value(), typ: r.Component(4).Value()}),
				"type":   obj{"coding": []any{obj{"system": sysV2_0203, "code": f.code}}}})
		}
	}
	set(sr, "identifier", ids)
	status := ""
	if g.hasORC {
		status = firstNonEmpty(orderStatus[strings.ToUpper(g.orc.Field(5).Value())], orderControl[strings.ToUpper(g.orc.Field(1).Value())])
	}
	sr["status"] = firstNonEmpty(status, "unknown")
	prio, start := "", ""
	if g.hasTQ1 {
		prio = g.tq1.Field(9).Component(1).Value()
		start = g.tq1.Field(7).Value()
	}
	tq := g.obr.Field(27).Repetition(1)
	prio = firstNonEmpty(prio, tq.Component(6).Value())
	start = firstNonEmpty(start, tq.Component(4).SubComponent(1))
	set(sr, "priority", orderPriority[strings.ToUpper(prio)])
	if t, ok := dateTime(start, c.o.Location); ok {
		sr["occurrenceDateTime"] = t
	}
	if g.hasORC {
		if t, ok := dateTime(g.orc.Field(9).Value(), c.o.Location); ok {
			sr["authoredOn"] = t
		}
	}
	req := ""
	if g.hasORC {
		req = xcnDisplay(g.orc.Field(12).Repetition(1))
	}
	if req = firstNonEmpty(req, xcnDisplay(g.obr.Field(16).Repetition(1))); req != "" {
		sr["requester"] = obj{"display": req}
	}
	var reasons []any
	f := g.obr.Field(31)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if r := f.Repetition(i); !r.IsEmpty() {
			reasons = append(reasons, reasonConcept(r))
		}
	}
	reasons = append(reasons, g.reasons...)
	set(sr, "reasonCode", reasons)
	set(sr, "note", g.notes)
	c.add("ServiceRequest", id("srq", c.res.PatientID, key), sr)
}

// reasonConcept converts an OBR-31 reason for study: a diagnosis code (see
// diagnosisSystem), else its text.
func reasonConcept(r hl7.Repetition) obj {
	cc := diagnosisCode(r, "")
	text := r.Component(9).Value()
	if cc["coding"] == nil {
		text = firstNonEmpty(text, r.Component(2).Value(), r.Component(5).Value())
	}
	set(cc, "text", text)
	return cc
}
