package tofhir

import (
	"strings"

	"ehrgate/hl7"
)

// Segments an ADT message carries beside PID/PV1: allergies (AL1),
// diagnoses (DG1) and contacts (NK1). Each follows the HL7 v2-to-FHIR
// Implementation Guide's segment map, cited at its function
// (https://build.fhir.org/ig/HL7/v2-to-fhir/, ConceptMap
// segment-<seg>-to-<resource>). Cancel triggers (A11, A13, A23) only change the
// Encounter's status and convert none of them.

// adtClinical converts the AL1, DG1, NK1, IN1/IN2, GT1 and OBX segments of
// an ADT message.
func (c *conv) adtClinical() error {
	if statusOnly[c.res.Trigger] {
		return nil
	}
	if err := c.allergies(); err != nil {
		return err
	}
	if err := c.diagnoses(); err != nil {
		return err
	}
	if err := c.relatedPersons(); err != nil {
		return err
	}
	if err := c.insurance(); err != nil { // coverage.go
		return err
	}
	if err := c.guarantors(); err != nil {
		return err
	}
	c.adtObservations()
	return nil
}

// vitalSigns are the LOINC codes of the FHIR vital-signs profiles: an ADT
// OBX coded with one is categorized vital-signs.
var vitalSigns = map[string]bool{
	"85353-1": true, "9279-1": true, "8867-4": true, "2708-6": true, "59408-5": true, "8310-5": true,
	"8302-2": true, "9843-4": true, "8287-5": true, "29463-7": true, "39156-5": true, "85354-9": true,
	"8480-6": true, "8462-4": true, "3141-9": true, "8306-3": true, "8308-9": true,
}

// adtObservations converts the OBX segments of an ADT message (admission
// vitals, height, weight, ...) with the ORU mapping (Segment OBX to
// Observation map), plus encounter → this message's Encounter and category
// vital-signs for the LOINC vital signs (no category otherwise; ADT
// observations are not laboratory results). effective ← OBX-14 only.
//
// An OBX that breaks the ORU result rules (no OBX-3 or OBX-11, an NM value
// that is not a number) is not converted and does not refuse the ADT: the
// patient and visit event stays usable, the segment stays in the raw
// message.
//
// Id: hash(visit, else patient; OBX-3 code, OBX-4 sub-id, OBX-14 time):
// an A08 repeating the same measurement updates it, a new measurement time
// is a new Observation; repeats within the message get their occurrence.
func (c *conv) adtObservations() {
	var segs []hl7.Segment
	var keys []string
	for i, obx := range c.m.Segments("OBX") {
		if c.checkOBX(obx, i+1) != nil || attachment(obx) != nil {
			continue
		}
		segs = append(segs, obx)
		keys = append(keys, codeKey(obx.Field(3).Repetition(1))+"^"+obx.Field(4).Value()+"^"+obx.Field(14).Value())
	}
	keys = disambiguate(keys, func(int) string { return "" })
	scope := "adt|" + firstNonEmpty(c.encID, c.res.PatientID)
	for i, obx := range segs {
		cat := ""
		if r := obx.Field(3).Repetition(1); vitalSigns[r.Component(1).Value()] && codingSystem(r.Component(3).Value()) == sysLOINC {
			cat = "vital-signs"
		}
		o := c.observationObj(obx, "", cat)
		if c.encID != "" {
			o["encounter"] = obj{"reference": "Encounter/" + c.encID}
		}
		c.add("Observation", id("obs", scope, keys[i]), o)
	}
}

// allergenType maps AL1-2 (HL7 table 0127) to AllergyIntolerance.category
// and .type, as the IG's "AllergyType" vocabulary map does; MC
// (miscellaneous contraindication) has neither.
var allergenType = map[string][2]string{
	"DA": {"medication", "allergy"}, "FA": {"food", "allergy"}, "EA": {"environment", "allergy"},
	"AA": {"environment", "allergy"}, "PA": {"environment", "allergy"}, "LA": {"environment", "allergy"},
	"MA": {"", "allergy"}, "MC": {"", ""},
}

// allergySeverity maps AL1-4 (HL7 table 0128) to criticality (IG
// "AllergySeverity" map) and reaction.severity.
var allergySeverity = map[string][2]string{
	"SV": {"high", "severe"}, "MO": {"low", "moderate"}, "MI": {"low", "mild"}, "U": {"unable-to-assess", ""},
}

// allergen converts AL1-3 to a CodeableConcept. A coding is emitted only for
// a triplet that names its coding system (RxNorm, NDC, SNOMED CT, or a local
// one kept as urn:ehrgate:hl7v2:codesystem:<name>); the allergen's name is
// always the text, so the drug–allergy check can match it by name when no
// standard code is given. A bare code without a system is text only.
func allergen(r hl7.Repetition) obj {
	var codings []any
	var bare string
	for _, t := range [][3]int{{1, 2, 3}, {4, 5, 6}} {
		code, display, sys := r.Component(t[0]).Value(), r.Component(t[1]).Value(), r.Component(t[2]).Value()
		if code == "" {
			continue
		}
		if sys == "" {
			bare = firstNonEmpty(bare, code)
			continue
		}
		cd := obj{"code": code, "system": codingSystem(sys)}
		set(cd, "display", display)
		codings = append(codings, cd)
	}
	cc := obj{}
	set(cc, "coding", codings)
	set(cc, "text", firstNonEmpty(r.Component(9).Value(), r.Component(2).Value(), r.Component(5).Value(), bare))
	return cc
}

// allergies converts each AL1 (Segment AL1 to AllergyIntolerance map):
// code ← AL1-3, category/type ← AL1-2, criticality ← AL1-4,
// reaction.manifestation ← AL1-5 (each repetition; reaction.severity from
// AL1-4), onsetDateTime ← AL1-6, clinicalStatus active (assigned by the
// map), patient → Patient. An AL1 without AL1-3 names no allergen and is
// not converted (it stays in the raw message).
//
// Id: hash(patient, allergen code and system, else its text): an allergy is
// a fact about the patient, so the next ADT naming the same allergen
// updates the same resource; an allergen repeated within one message gets
// its occurrence number.
func (c *conv) allergies() error {
	var segs []hl7.Segment
	var keys []string
	for i, al1 := range c.m.Segments("AL1") {
		if err := c.checkTime(al1, i+1, 6); err != nil {
			return err
		}
		k := codeKey(al1.Field(3).Repetition(1))
		if k == "" {
			continue
		}
		segs = append(segs, al1)
		keys = append(keys, strings.ToUpper(k))
	}
	keys = disambiguate(keys, func(int) string { return "" })
	for i, al1 := range segs {
		a := obj{"patient": c.patientRef(), "code": allergen(al1.Field(3).Repetition(1)),
			"clinicalStatus": obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}}}}
		if t, ok := allergenType[strings.ToUpper(al1.Field(2).Component(1).Value())]; ok {
			if t[0] != "" {
				a["category"] = []any{t[0]}
			}
			set(a, "type", t[1])
		}
		sev := allergySeverity[strings.ToUpper(al1.Field(4).Component(1).Value())]
		set(a, "criticality", sev[0])
		var manifest []any
		f := al1.Field(5)
		for j := 1; j <= f.NumRepetitions(); j++ {
			r := f.Repetition(j)
			if r.Component(3).Value() != "" || r.Component(6).Value() != "" {
				manifest = append(manifest, cwe(r))
			} else if t := strings.TrimSpace(firstNonEmpty(r.Component(2).Value(), r.Component(1).Value())); t != "" {
				manifest = append(manifest, obj{"text": t})
			}
		}
		if len(manifest) > 0 {
			reaction := obj{"manifestation": manifest}
			set(reaction, "severity", sev[1])
			a["reaction"] = []any{reaction}
		}
		if d, ok := dateTime(al1.Field(6).Value(), c.o.Location); ok {
			a["onsetDateTime"] = d
		}
		c.add("AllergyIntolerance", id("alg", c.res.PatientID, keys[i]), a)
	}
	return nil
}

// diagnosisSystem is the FHIR system of a DG1-3 coding-system name. In
// DG1, "I10" is read as ICD-10-CM, like "I10C": HL7 table 0396 names WHO
// ICD-10 "I10", but US senders use it for the ICD-10-CM codes they bill
// with, and the terminology layer groups conditions by ICD-10-CM.
func diagnosisSystem(name string) string {
	switch strings.ToUpper(name) {
	case "I10", "I10C", "ICD10", "ICD10CM", "ICD-10-CM":
		return sysICD10CM
	case "I9", "I9C", "ICD9", "ICD9CM":
		return "http://hl7.org/fhir/sid/icd-9-cm"
	}
	return codingSystem(name)
}

// diagnoses converts each DG1 (Segment DG1 to Condition map): code ← DG1-3
// (DG1-4 description as text when DG1-3 has none), onsetDateTime ← DG1-5,
// recordedDate ← DG1-19 (attestation date/time), asserter ← DG1-16
// (display), identifier ← DG1-20, DG1-2 (coding method, deprecated) as
// the system of a DG1-3 without one, category encounter-diagnosis, encounter
// → the Encounter of this message (A28/A31 have none), subject → Patient.
// DG1-21 action code D (delete) gives verificationStatus entered-in-error.
// clinicalStatus is not set: a v2 diagnosis does not say whether the
// condition is still active.
//
// Id: hash(visit, DG1-20 diagnosis identifier, else the code): each
// ADT about the visit updates the same diagnosis. A DG1 without any code
// or description is not converted.
func (c *conv) diagnoses() error {
	segs, keys, err := c.dg1s()
	if err != nil {
		return err
	}
	for i, dg1 := range segs {
		k := codeKey(dg1.Field(3).Repetition(1))
		if v := dg1.Field(20).Component(1).Value(); v != "" {
			k = "id^" + v + "^" + dg1.Field(20).Component(2).Value()
		}
		if k == "" {
			if d := strings.TrimSpace(dg1.Field(4).Value()); d != "" {
				k = "text^" + d
			} else {
				continue
			}
		}
		r := dg1.Field(3).Repetition(1)
		code := diagnosisCode(r, dg1.Field(2).Value())
		set(code, "text", firstNonEmpty(strings.TrimSpace(dg1.Field(4).Value()), r.Component(9).Value()))
		if code["coding"] == nil && code["text"] == nil {
			set(code, "text", firstNonEmpty(r.Component(2).Value(), r.Component(5).Value()))
		}
		cond := obj{"subject": c.patientRef(), "code": code,
			"category": []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
				"code": "encounter-diagnosis", "display": "Encounter Diagnosis"}}}}}
		if c.encID != "" {
			cond["encounter"] = obj{"reference": "Encounter/" + c.encID}
		}
		if d, ok := dateTime(dg1.Field(5).Value(), c.o.Location); ok {
			cond["onsetDateTime"] = d
		}
		if d, ok := dateTime(dg1.Field(19).Value(), c.o.Location); ok {
			cond["recordedDate"] = d
		}
		if a := xcnDisplay(dg1.Field(16).Repetition(1)); a != "" {
			cond["asserter"] = obj{"display": a}
		}
		if ei := dg1.Field(20).Repetition(1); ei.Component(1).Value() != "" {
			cond["identifier"] = []any{obj{"value": ei.Component(1).Value(),
				"system": c.system(hd{namespace: ei.Component(2).Value(), universal: ei.Component(3).Value(), typ: ei.Component(4).Value()})}}
		}
		if strings.EqualFold(dg1.Field(21).Value(), "D") {
			cond["verificationStatus"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}}}
		}
		c.add("Condition", conditionID(firstNonEmpty(c.encID, c.res.PatientID), keys[i]), cond)
	}
	return nil
}

// conditionID is the id of a DG1's Condition within its visit (else
// patient) scope.
func conditionID(scope, key string) string { return id("cond", scope, key) }

// dg1s returns the DG1 segments that convert to a Condition and their
// keys (unique within the message), after checking their dates.
func (c *conv) dg1s() ([]hl7.Segment, []string, error) {
	var segs []hl7.Segment
	var keys []string
	for i, dg1 := range c.m.Segments("DG1") {
		for _, n := range []int{5, 19} {
			if err := c.checkTime(dg1, i+1, n); err != nil {
				return nil, nil, err
			}
		}
		k := codeKey(dg1.Field(3).Repetition(1))
		if v := dg1.Field(20).Component(1).Value(); v != "" {
			k = "id^" + v + "^" + dg1.Field(20).Component(2).Value()
		}
		if k == "" {
			if d := strings.TrimSpace(dg1.Field(4).Value()); d != "" {
				k = "text^" + d
			} else {
				continue
			}
		}
		segs = append(segs, dg1)
		keys = append(keys, k)
	}
	return segs, disambiguate(keys, func(int) string { return "" }), nil
}

// encounterDiagnoses is Encounter.diagnosis for the DG1 of the message:
// condition → each DG1's Condition, use ← DG1-6 diagnosis type (table
// 0052: A admitting, W working, F final; kept as the v2 code), rank ←
// DG1-15 diagnosis priority when a positive number.
func (c *conv) encounterDiagnoses(encID string) ([]any, error) {
	if statusOnly[c.res.Trigger] {
		return nil, nil
	}
	segs, keys, err := c.dg1s()
	if err != nil {
		return nil, err
	}
	var out []any
	for i, dg1 := range segs {
		d := obj{"condition": obj{"reference": "Condition/" + conditionID(encID, keys[i])}}
		if t := dg1.Field(6).Component(1).Value(); t != "" {
			d["use"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0052", "code": t}}}
		}
		if r := atoi(strings.TrimSpace(dg1.Field(15).Value())); r > 0 {
			d["rank"] = r
		}
		out = append(out, d)
	}
	return out, nil
}

// relatedPersons converts each NK1 (Segment NK1 to RelatedPerson map):
// name ← NK1-2, relationship ← NK1-3 (table 0063) and NK1-7 contact role
// (table 0131), address ← NK1-4, telecom ← NK1-5 (home) and NK1-6
// (work), period ← NK1-8/NK1-9, gender ← NK1-15, birthDate ← NK1-16,
// patient → Patient. An NK1 that names nobody (no NK1-2) is not converted:
// the map's organization contacts (NK1-13, NK1-30..32) are not.
//
// Id: hash(patient, name, relationship): a later ADT that repeats the
// contact updates the same RelatedPerson; NK1-1 (set id) is only the
// position in the message and is not used.
func (c *conv) relatedPersons() error {
	var segs []hl7.Segment
	var keys []string
	for i, nk1 := range c.m.Segments("NK1") {
		for _, n := range []int{8, 9, 16} {
			if err := c.checkTime(nk1, i+1, n); err != nil {
				return err
			}
		}
		name := nk1.Field(2).Repetition(1)
		k := strings.ToUpper(strings.Join([]string{name.Component(1).SubComponent(1), name.Component(2).Value(),
			name.Component(3).Value(), nk1.Field(3).Component(1).Value()}, "^"))
		if len(xpn(name)) == 0 {
			continue
		}
		segs = append(segs, nk1)
		keys = append(keys, k)
	}
	keys = disambiguate(keys, func(int) string { return "" })
	for i, nk1 := range segs {
		rp := obj{"patient": c.patientRef(), "active": true}
		var names []any
		f := nk1.Field(2)
		for j := 1; j <= f.NumRepetitions(); j++ {
			if n := xpn(f.Repetition(j)); len(n) > 0 {
				names = append(names, n)
			}
		}
		set(rp, "name", names)
		var rel []any
		for _, rf := range []struct {
			n     int
			table string
		}{{3, "HL70063"}, {7, "HL70131"}} {
			r := nk1.Field(rf.n).Repetition(1)
			if r.Component(1).Value() == "" && r.Component(2).Value() == "" {
				continue
			}
			cc := cwe(r)
			if r.Component(1).Value() != "" && r.Component(3).Value() == "" {
				// The field is defined by its table: not a guess.
				cd := obj{"code": r.Component(1).Value(), "system": codingSystem(rf.table)}
				set(cd, "display", r.Component(2).Value())
				cc["coding"] = append([]any{cd}, codingsAfterFirst(cc)...)
			}
			rel = append(rel, cc)
		}
		set(rp, "relationship", rel)
		addrs := xads(nk1.Field(4))
		set(rp, "address", addrs)
		tel := xtns([]hl7.Field{nk1.Field(5), nk1.Field(6)}, []string{"home", "work"})
		set(rp, "telecom", tel)
		period := obj{}
		set(period, "start", date(nk1.Field(8).Value(), c.o.Location))
		set(period, "end", date(nk1.Field(9).Value(), c.o.Location))
		set(rp, "period", period)
		set(rp, "gender", map[string]string{"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}[nk1.Field(15).Component(1).Value()])
		set(rp, "birthDate", date(nk1.Field(16).Value(), c.o.Location))
		c.add("RelatedPerson", id("rel", c.res.PatientID, keys[i]), rp)
	}
	return nil
}

// codingsAfterFirst returns the codings of cc other than the primary
// triplet's, which the caller replaces.
func codingsAfterFirst(cc obj) []any {
	cs, _ := cc["coding"].([]any)
	if len(cs) <= 1 {
		return nil
	}
	return cs[1:]
}

// primaryCare sets Patient.generalPractitioner from PD1 (Segment PD1 to
// Patient map): PD1-4 primary care provider (XCN) and PD1-3 primary
// facility (XON, organization name in component 1), as display-only
// references like the Encounter's participants.
func (c *conv) primaryCare(p obj) {
	pd1, ok := c.m.Segment("PD1", 1)
	if !ok {
		return
	}
	var gp []any
	f := pd1.Field(4)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if d := xcnDisplay(f.Repetition(i)); d != "" {
			gp = append(gp, obj{"display": d, "type": "Practitioner"})
		}
	}
	f = pd1.Field(3)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if d := strings.TrimSpace(f.Repetition(i).Component(1).Value()); d != "" {
			gp = append(gp, obj{"display": d, "type": "Organization"})
		}
	}
	set(p, "generalPractitioner", gp)
}

// visitRoles are Encounter participants from the ROL segments of the visit
// (Segment ROL to Encounter.participant, as the IG's ADT message maps use
// it): the ROL right after PV1/PV2 only (ROL after PID/PD1 is the patient's
// care team, after NK1/IN1 belongs to those). type ← ROL-3 (table 0443),
// individual ← ROL-4 (display), period ← ROL-5/ROL-6. A ROL-2 action code
// DE (delete) is skipped.
func (c *conv) visitRoles() []any {
	var out []any
	owner := ""
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		if s.Name() != "ROL" {
			owner = s.Name()
			continue
		}
		if owner != "PV1" && owner != "PV2" || strings.EqualFold(s.Field(2).Value(), "DE") {
			continue
		}
		d := xcnDisplay(s.Field(4).Repetition(1))
		if d == "" {
			continue
		}
		part := obj{"individual": obj{"display": d}}
		if r := s.Field(3).Repetition(1); r.Component(1).Value() != "" {
			cc := cwe(r)
			if r.Component(3).Value() == "" {
				cd := obj{"code": r.Component(1).Value(), "system": "http://terminology.hl7.org/CodeSystem/v2-0443"}
				set(cd, "display", r.Component(2).Value())
				cc["coding"] = append([]any{cd}, codingsAfterFirst(cc)...)
			}
			part["type"] = []any{cc}
		}
		period := obj{}
		if t, ok := dateTime(s.Field(5).Value(), c.o.Location); ok {
			period["start"] = t
		}
		if t, ok := dateTime(s.Field(6).Value(), c.o.Location); ok {
			period["end"] = t
		}
		set(part, "period", period)
		out = append(out, part)
	}
	return out
}

// diagnosisCode converts a diagnosis CWE (DG1-3, OBR-31) to a
// CodeableConcept with diagnosisSystem for its coding systems; method
// (DG1-2) is the system of a primary triplet without one. Text is left to
// the caller.
func diagnosisCode(r hl7.Repetition, method string) obj {
	code := obj{}
	var codings []any
	for _, t := range [][3]int{{1, 2, 3}, {4, 5, 6}} {
		if v := r.Component(t[0]).Value(); v != "" {
			cd := obj{"code": v}
			set(cd, "display", r.Component(t[1]).Value())
			sys := r.Component(t[2]).Value()
			if sys == "" && t[0] == 1 {
				sys = method
			}
			set(cd, "system", diagnosisSystem(sys))
			codings = append(codings, cd)
		}
	}
	set(code, "coding", codings)
	return code
}
