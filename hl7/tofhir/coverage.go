package tofhir

import (
	"strings"

	"ehrgate/hl7"
)

// Insurance in ADT messages: IN1 (with the IN2 that follows it) → Coverage,
// its payer → Organization and its subscriber, when not the patient, →
// RelatedPerson; GT1 → RelatedPerson (the guarantor).
//
// The IN1 fields follow the IG's "Segment IN1 to Coverage" map
// (http://hl7.org/fhir/uv/v2mappings/segment-in1-to-coverage; its CSV
// source "HL7 Segment - FHIR R4_ IN1[Coverage]" in github.com/HL7/v2-to-fhir):
// IN1-2 → identifier, IN1-4/IN1-5 → payor Organization (name, address),
// IN1-10/IN1-11 → policyHolder Organization (identifier, name), IN1-12/13
// → period, IN1-15 → type, IN1-16 → subscriber (RelatedPerson, or the
// Patient when IN1-17 is self), IN1-17 → relationship (vocabulary map
// "Relationship"), IN1-49 → the R5 subscriberId (an Identifier; the map
// names it http://hl7.org/fhir/R5/StructureDefinition/extension-subscriberId,
// ehrgate uses the cross-version URL form it already uses for R5 elements,
// .../5.0/StructureDefinition/extension-Coverage.subscriberId). Fields the
// map leaves unmapped but Coverage has a place for are added, marked
// "beyond the map" below (the FHIR-Converter reference output maps them the
// same way): IN1-3 payer identifier, IN1-6/7 payer contact, IN1-8/9 group
// class, IN1-22 order, IN1-36 policy number, R4 subscriberId, the
// subscriber's IN1-18/19/43 demographics, and from IN2 the insured's SSN
// (IN2-2) and the patient's member number (IN2-61). GT1 follows the same
// RelatedPerson mapping as NK1 (Segment NK1 to RelatedPerson), with GT1's
// own field positions.

const sysCoverageClass = "http://terminology.hl7.org/CodeSystem/coverage-class"

// subscriberRelationship maps IN1-17 (HL7 table 0063, relationship) to the
// FHIR subscriber-relationship codes where one means the same; other codes
// keep only their v2-0063 coding.
var subscriberRelationship = map[string]string{
	"SEL": "self", "SPO": "spouse", "DOM": "common", "CHD": "child", "FCH": "child", "SCH": "child",
	"NCH": "child", "PAR": "parent", "EME": "other", "OTH": "other", "GRD": "other", "EXF": "other",
}

// insurance converts each IN1 of an ADT message:
//
//   - Coverage: identifier ← IN1-2 health plan id (CWE as an identifier,
//     system from its coding system) and IN1-36 policy number (and IN2-61
//     patient member number, type MB); status active (assigned: v2 has no
//     coverage status); type ← IN1-15 plan type (table 0086); subscriber
//     ← the Patient when IN1-17 is SEL (or no insured is named), else the
//     RelatedPerson below; subscriberId ← IN1-49.1 insured's id; beneficiary
//     ← the Patient; relationship ← IN1-17 (v2-0063, plus the
//     subscriber-relationship code); period ← IN1-12 / IN1-13; payor ← the
//     Organization below; class plan ← IN1-2 (value CWE.1, name CWE.2:
//     where Coverage readers look for the plan, as the FHIR-Converter
//     reference also puts it), class group ← IN1-8 (value) / IN1-9
//     (name); order ← IN1-22 coordination of benefits priority.
//   - Organization (payer): identifier ← IN1-3 (CX, as patient
//     identifiers), name ← IN1-4 (XON.1), address ← IN1-5, contact ←
//     IN1-6 (name) / IN1-7 (telecom). Shared by every patient it insures:
//     no patient; id = hash(IN1-3 system and value, else IN1-4 name).
//   - RelatedPerson (subscriber): name ← IN1-16, relationship ← IN1-17,
//     birthDate ← IN1-18, address ← IN1-19, gender ← IN1-43, identifier
//     ← IN1-49 (CX) and IN2-2 (SSN, us-ssn); patient → the Patient.
//
// An IN1 without a payer (neither IN1-3 nor IN1-4) is not converted (R4
// requires Coverage.payor); it stays in the raw message. Dates IN1-12,
// IN1-13 and IN1-18 must be valid (AE 102).
//
// Ids: Coverage = hash(patient, payer id, IN1-36 policy, else IN1-2 plan,
// else IN1-49 insured id), so the next ADT naming the same policy updates
// it; repeats within the message get their occurrence. The subscriber's
// RelatedPerson = hash(patient, "subscriber", name, relationship): its own
// id space, apart from NK1 contacts (a message may carry the same person
// as both, with different content).
func (c *conv) insurance() error {
	type group struct {
		in1, in2 hl7.Segment
		seq      int
		hasIN2   bool
	}
	var groups []group
	in1s := 0
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		switch s.Name() {
		case "IN1":
			in1s++
			groups = append(groups, group{in1: s, seq: in1s})
		case "IN2":
			if n := len(groups); n > 0 && !groups[n-1].hasIN2 {
				groups[n-1].in2, groups[n-1].hasIN2 = s, true
			}
		}
	}
	var conv []group
	var keys []string
	for _, g := range groups {
		for _, n := range []int{12, 13, 18} {
			if err := c.checkTime(g.in1, g.seq, n); err != nil {
				return err
			}
		}
		if g.in1.Field(3).Repetition(1).Component(1).Value() == "" && g.in1.Field(4).Component(1).Value() == "" {
			continue
		}
		conv = append(conv, g)
		keys = append(keys, c.payerKey(g.in1)+"|"+firstNonEmpty(g.in1.Field(36).Value(),
			g.in1.Field(2).Component(1).Value(), g.in1.Field(49).Repetition(1).Component(1).Value()))
	}
	keys = disambiguate(keys, func(int) string { return "" })
	for i, g := range conv {
		in1 := g.in1
		orgID := c.payer(in1)
		cov := obj{"status": "active", "beneficiary": c.patientRef(), "payor": []any{obj{"reference": "Organization/" + orgID}}}
		var ids []any
		if r := in1.Field(2).Repetition(1); r.Component(1).Value() != "" {
			o := obj{"value": r.Component(1).Value()}
			set(o, "system", codingSystem(r.Component(3).Value()))
			ids = append(ids, o)
		}
		if v := in1.Field(36).Value(); v != "" {
			ids = append(ids, obj{"value": v})
		}
		if g.hasIN2 {
			if v := g.in2.Field(61).Repetition(1).Component(1).Value(); v != "" && c.usableIdentifier(v) == "" {
				ids = append(ids, obj{"value": v, "type": obj{"coding": []any{obj{"system": sysV2_0203, "code": "MB"}}}})
			}
		}
		set(cov, "identifier", ids)
		if r := in1.Field(15).Repetition(1); r.Component(1).Value() != "" {
			cov["type"] = tableCoded(r, "HL70086")
		}
		rel := in1.Field(17).Repetition(1)
		relCode := strings.ToUpper(rel.Component(1).Value())
		if relCode != "" {
			cc := tableCoded(rel, "HL70063")
			if sr, ok := subscriberRelationship[relCode]; ok {
				cs, _ := cc["coding"].([]any)
				cc["coding"] = append(cs, obj{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": sr})
			}
			cov["relationship"] = cc
		}
		insured := in1.Field(16).Repetition(1)
		if relCode == "SEL" || len(xpn(insured)) == 0 {
			cov["subscriber"] = c.patientRef()
		} else {
			cov["subscriber"] = obj{"reference": "RelatedPerson/" + c.subscriber(g.in1, g.in2, g.hasIN2)}
		}
		if r := in1.Field(49).Repetition(1); c.usableIdentifier(r.Component(1).Value()) == "" {
			// IN1-49 → extension-subscriberId (the IG, R5 cross-version
			// Identifier); R4 subscriberId (a string) too, beyond the map.
			o, _ := c.identifier(r)
			cov["extension"] = []any{obj{"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Coverage.subscriberId", "valueIdentifier": o}}
			cov["subscriberId"] = r.Component(1).Value()
		}
		if ph := c.policyHolder(in1); ph != nil {
			cov["policyHolder"] = ph
		}
		period := obj{}
		set(period, "start", date(in1.Field(12).Value(), c.o.Location))
		set(period, "end", date(in1.Field(13).Value(), c.o.Location))
		set(cov, "period", period)
		var classes []any
		if r := in1.Field(2).Repetition(1); r.Component(1).Value() != "" {
			cl := obj{"type": obj{"coding": []any{obj{"system": sysCoverageClass, "code": "plan"}}}, "value": r.Component(1).Value()}
			set(cl, "name", r.Component(2).Value())
			classes = append(classes, cl)
		}
		if v, n := in1.Field(8).Value(), in1.Field(9).Component(1).Value(); v != "" {
			cl := obj{"type": obj{"coding": []any{obj{"system": sysCoverageClass, "code": "group"}}}, "value": v}
			set(cl, "name", n)
			classes = append(classes, cl)
		}
		set(cov, "class", classes)
		if n := atoi(strings.TrimSpace(in1.Field(22).Value())); n > 0 {
			cov["order"] = n
		}
		c.add("Coverage", id("cov", c.res.PatientID, keys[i]), cov)
	}
	return nil
}

// policyHolder is IN1-11 insured's group employer name with IN1-10 its
// id (the IG's policyHolder(Organization)), as a logical reference: an
// employer is not a resource ehrgate keeps. nil when neither is valued.
func (c *conv) policyHolder(in1 hl7.Segment) obj {
	name := in1.Field(11).Component(1).Value()
	r := in1.Field(10).Repetition(1)
	if name == "" && r.Component(1).Value() == "" {
		return nil
	}
	ref := obj{"type": "Organization"}
	set(ref, "display", name)
	if r.Component(1).Value() != "" {
		o, _ := c.identifier(r)
		ref["identifier"] = o
	}
	return ref
}

// payerKey identifies the insurance company of an IN1: IN1-3 (system and
// value) else the IN1-4 name.
func (c *conv) payerKey(in1 hl7.Segment) string {
	if r := in1.Field(3).Repetition(1); r.Component(1).Value() != "" {
		_, ident := c.identifier(r)
		return "id|" + ident.System + "|" + ident.Value
	}
	return "name|" + strings.ToUpper(strings.TrimSpace(in1.Field(4).Component(1).Value()))
}

// payer adds the insurance company's Organization and returns its id.
func (c *conv) payer(in1 hl7.Segment) string {
	rid := id("org", c.payerKey(in1))
	org := obj{"active": true}
	if r := in1.Field(3).Repetition(1); r.Component(1).Value() != "" {
		o, _ := c.identifier(r)
		org["identifier"] = []any{o}
	}
	set(org, "name", in1.Field(4).Component(1).Value())
	addrs := xads(in1.Field(5))
	set(org, "address", addrs)
	contact := obj{}
	if n := xpn(in1.Field(6).Repetition(1)); len(n) > 0 {
		contact["name"] = n
	}
	set(contact, "telecom", xtns([]hl7.Field{in1.Field(7)}, []string{"work"}))
	if len(contact) > 0 {
		org["contact"] = []any{contact}
	}
	c.addShared("Organization", rid, org)
	return rid
}

// subscriber adds the insured person of an IN1 (not the patient) as a
// RelatedPerson and returns its id.
func (c *conv) subscriber(in1, in2 hl7.Segment, hasIN2 bool) string {
	name := in1.Field(16).Repetition(1)
	rel := in1.Field(17).Repetition(1)
	key := strings.ToUpper(strings.Join([]string{name.Component(1).SubComponent(1), name.Component(2).Value(),
		name.Component(3).Value(), rel.Component(1).Value()}, "^"))
	rid := id("rel", c.res.PatientID, "subscriber|"+key)
	rp := obj{"patient": c.patientRef(), "active": true, "name": []any{xpn(name)}}
	if rel.Component(1).Value() != "" {
		rp["relationship"] = []any{tableCoded(rel, "HL70063")}
	}
	set(rp, "birthDate", date(in1.Field(18).Value(), c.o.Location))
	addrs := xads(in1.Field(19))
	set(rp, "address", addrs)
	set(rp, "gender", administrativeGender[in1.Field(43).Component(1).Value()])
	var ids []any
	if r := in1.Field(49).Repetition(1); r.Component(1).Value() != "" && c.usableIdentifier(r.Component(1).Value()) == "" {
		o, _ := c.identifier(r)
		ids = append(ids, o)
	}
	if hasIN2 {
		if v := strings.TrimSpace(in2.Field(2).Value()); v != "" && c.usableIdentifier(v) == "" {
			ids = append(ids, obj{"system": "http://hl7.org/fhir/sid/us-ssn", "value": v,
				"type": obj{"coding": []any{obj{"system": sysV2_0203, "code": "SS"}}}})
		}
	}
	set(rp, "identifier", ids)
	c.add("RelatedPerson", rid, rp)
	return rid
}

// guarantors converts each GT1 naming a person (GT1-3) who is not the
// patient (GT1-11 SEL) into a RelatedPerson ("Segment GT1 to
// RelatedPerson" map): name ← GT1-3, address ← GT1-5, telecom ← GT1-6
// (home) / GT1-7 (work), birthDate ← GT1-8, gender ← GT1-9, relationship
// ← GT1-11 (v2-0063) and the role guarantor (v3-RoleCode GUAR),
// identifier ← GT1-2 guarantor number (CX) and GT1-12 SSN; patient → the
// Patient. Organization guarantors (GT1-21) and the Account that would
// link a guarantor to the patient's bills are not converted. GT1-8 must be
// a valid date. Id = hash(patient, "guarantor", name, relationship).
func (c *conv) guarantors() error {
	var segs []hl7.Segment
	var keys []string
	for i, gt1 := range c.m.Segments("GT1") {
		if err := c.checkTime(gt1, i+1, 8); err != nil {
			return err
		}
		name := gt1.Field(3).Repetition(1)
		rel := strings.ToUpper(gt1.Field(11).Component(1).Value())
		if len(xpn(name)) == 0 || rel == "SEL" {
			continue
		}
		segs = append(segs, gt1)
		keys = append(keys, strings.ToUpper(strings.Join([]string{name.Component(1).SubComponent(1), name.Component(2).Value(),
			name.Component(3).Value(), rel}, "^")))
	}
	keys = disambiguate(keys, func(int) string { return "" })
	for i, gt1 := range segs {
		rp := obj{"patient": c.patientRef(), "active": true}
		var names []any
		f := gt1.Field(3)
		for j := 1; j <= f.NumRepetitions(); j++ {
			if n := xpn(f.Repetition(j)); len(n) > 0 {
				names = append(names, n)
			}
		}
		set(rp, "name", names)
		rels := []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "GUAR", "display": "guarantor"}}}}
		if r := gt1.Field(11).Repetition(1); r.Component(1).Value() != "" {
			rels = append(rels, tableCoded(r, "HL70063"))
		}
		rp["relationship"] = rels
		addrs := xads(gt1.Field(5))
		set(rp, "address", addrs)
		tel := xtns([]hl7.Field{gt1.Field(6), gt1.Field(7)}, []string{"home", "work"})
		set(rp, "telecom", tel)
		set(rp, "birthDate", date(gt1.Field(8).Value(), c.o.Location))
		set(rp, "gender", administrativeGender[gt1.Field(9).Component(1).Value()])
		var ids []any
		if r := gt1.Field(2).Repetition(1); r.Component(1).Value() != "" && c.usableIdentifier(r.Component(1).Value()) == "" {
			o, _ := c.identifier(r)
			ids = append(ids, o)
		}
		if v := strings.TrimSpace(gt1.Field(12).Value()); v != "" && c.usableIdentifier(v) == "" {
			ids = append(ids, obj{"system": "http://hl7.org/fhir/sid/us-ssn", "value": v,
				"type": obj{"coding": []any{obj{"system": sysV2_0203, "code": "SS"}}}})
		}
		set(rp, "identifier", ids)
		c.add("RelatedPerson", id("rel", c.res.PatientID, "guarantor|"+keys[i]), rp)
	}
	return nil
}

// administrativeGender maps HL7 table 0001 to FHIR AdministrativeGender.
var administrativeGender = map[string]string{"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}

// tableCoded converts a CWE whose first triplet has no coding system: the
// field's table is its system (not a guess), the rest as cwe.
func tableCoded(r hl7.Repetition, table string) obj {
	cc := cwe(r)
	if r.Component(1).Value() != "" && r.Component(3).Value() == "" {
		cd := obj{"code": r.Component(1).Value(), "system": codingSystem(table)}
		set(cd, "display", r.Component(2).Value())
		cc["coding"] = append([]any{cd}, codingsAfterFirst(cc)...)
	}
	return cc
}

// addShared adds a resource that belongs to no patient (a payer
// Organization): Resource.PatientID is "".
func (c *conv) addShared(typ, rid string, o obj) {
	patient := c.res.PatientID
	c.res.PatientID = ""
	c.add(typ, rid, o)
	c.res.PatientID = patient
}
