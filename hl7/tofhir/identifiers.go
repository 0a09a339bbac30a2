package tofhir

import (
	"strings"

	"ehrgate/hl7"
)

// otherIdentifiers appends the patient identifiers outside PID-3 to ids
// (Segment PID to Patient map: PID-2, PID-4, PID-19, PID-20 →
// Patient.identifier). They are kept as identifiers only: the patient's
// identity (the Patient id, matching, merges) comes from PID-3 alone (PID-2
// only for senders without a usable PID-3). Placeholders and values with
// control characters are skipped, and an identifier already present
// (same system and value) is not repeated.
//
//   - PID-2 external id (CX) and PID-4 alternate ids (CX, repeating): as
//     PID-3, system from CX-4 (else the sending facility), type from CX-5.
//   - PID-19 SSN (ST): system http://hl7.org/fhir/sid/us-ssn, type SS. The
//     number is kept as sent (FHIR allows it, and US Core patients carry
//     it); who may see it is the concern of the API and dashboard, which
//     must mask it. It is never used to match patients.
//   - PID-20 driver's license (DLN: number^issuing state^expiration): type
//     DL, system the issuing state as an authority
//     (urn:ehrgate:hl7v2:authority:<state> unless Options.Authorities maps
//     it), none without a state; period.end ← the expiration date.
func (c *conv) otherIdentifiers(pid hl7.Segment, ids []any) []any {
	seen := map[string]bool{}
	for _, i := range ids {
		if o, ok := i.(obj); ok {
			seen[o["system"].(string)+"|"+o["value"].(string)] = true
		}
	}
	addObj := func(o obj) {
		sys, _ := o["system"].(string)
		k := sys + "|" + o["value"].(string)
		if seen[k] {
			return
		}
		seen[k] = true
		ids = append(ids, o)
	}
	typed := func(o obj, code string) obj {
		if o["type"] == nil {
			o["type"] = obj{"coding": []any{obj{"system": sysV2_0203, "code": code}}}
		}
		return o
	}
	for _, n := range []int{2, 4} {
		f := pid.Field(n)
		for i := 1; i <= f.NumRepetitions(); i++ {
			r := f.Repetition(i)
			if c.usableIdentifier(r.Component(1).Value()) != "" {
				continue
			}
			o, _ := c.identifier(r)
			addObj(o)
		}
	}
	if v := strings.TrimSpace(pid.Field(19).Value()); v != "" && c.usableIdentifier(v) == "" && strings.Trim(v, "0-") != "" {
		sys := "http://hl7.org/fhir/sid/us-ssn"
		// A feed whose PID-3 already carries the SSN under an authority
		// mapped to us-ssn gives the same identifier: not repeated.
		addObj(typed(obj{"system": sys, "value": v}, "SS"))
	}
	if dl := pid.Field(20).Repetition(1); c.usableIdentifier(dl.Component(1).Value()) == "" {
		o := obj{"value": dl.Component(1).Value()}
		if st := dl.Component(2).Value(); st != "" {
			o["system"] = c.system(hd{namespace: st})
		}
		if end := date(dl.Component(3).Value(), c.o.Location); end != "" {
			o["period"] = obj{"end": end}
		}
		addObj(typed(o, "DL"))
	}
	return ids
}
