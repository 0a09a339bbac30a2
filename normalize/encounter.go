package normalize

import "ehrgate/terminology"

type encounterJSON struct {
	header
	Status      string            `json:"status"`
	Class       *coding           `json:"class"`
	Type        []codeableConcept `json:"type"`
	ServiceType *codeableConcept  `json:"serviceType"`
	Subject     *reference        `json:"subject"`
	Period      *period           `json:"period"`
}

// normalizeEncounter maps an Encounter. Telehealth is set from the
// terminology tables: a class, type or serviceType coding listed there (v3
// ActCode VR, SNOMED CT 448337001) or a listed word ("virtual", "video", ...)
// in their text or displays. Missing lists "status", "class" and "start".
func normalizeEncounter(ref Ref, raw []byte) (Resource, error) {
	var in encounterJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &Encounter{
		Common: Common{Source: ref, PatientID: patientRef(in.Subject)},
		Status: in.Status,
	}
	if in.Class != nil {
		out.Class = in.Class.Code
		out.Telehealth = terminology.TelehealthCode(in.Class.System, in.Class.Code) ||
			terminology.TelehealthText(in.Class.Display)
	}
	if len(in.Type) > 0 {
		out.Type = concept(terminology.EncounterType, &in.Type[0])
	}
	for i := range in.Type {
		out.Telehealth = out.Telehealth || telehealthConcept(&in.Type[i])
	}
	out.Telehealth = out.Telehealth || telehealthConcept(in.ServiceType)
	if in.Period != nil {
		out.Start, out.End = in.Period.Start, in.Period.End
	}
	var m missing
	m.check(in.Status == "", "status")
	m.check(out.Class == "", "class")
	m.check(out.Start == "", "start")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}

func telehealthConcept(c *codeableConcept) bool {
	if c == nil {
		return false
	}
	if terminology.TelehealthText(c.Text) {
		return true
	}
	for _, cd := range c.Coding {
		if terminology.TelehealthCode(cd.System, cd.Code) || terminology.TelehealthText(cd.Display) {
			return true
		}
	}
	return false
}
