package normalize

import (
	"ehrgate/fhir"
	"ehrgate/terminology"
)

// systemAllergyVer is the AllergyIntolerance verification status system.
const systemAllergyVer = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

type allergyJSON struct {
	header
	ClinicalStatus     *codeableConcept `json:"clinicalStatus"`
	VerificationStatus *codeableConcept `json:"verificationStatus"`
	Category           []string         `json:"category"`
	Criticality        string           `json:"criticality"`
	Code               *codeableConcept `json:"code"`
	Patient            *reference       `json:"patient"`
	RecordedDate       string           `json:"recordedDate"`
	Reaction           []struct {
		Manifestation []codeableConcept `json:"manifestation"`
	} `json:"reaction"`
}

// normalizeAllergy maps an AllergyIntolerance. Active means clinicalStatus
// active, or no clinicalStatus and a verificationStatus that is neither
// refuted nor entered-in-error. Missing lists "substance" and
// "clinicalStatus".
func normalizeAllergy(ref Ref, raw []byte) (Resource, error) {
	var in allergyJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &AllergyIntolerance{
		Common:             Common{Source: ref, PatientID: patientRef(in.Patient)},
		Substance:          concept(terminology.AllergySubstance, in.Code),
		ClinicalStatus:     in.ClinicalStatus.code(fhir.SystemAllergyC),
		VerificationStatus: in.VerificationStatus.code(systemAllergyVer),
		Criticality:        in.Criticality,
		Category:           in.Category,
		Recorded:           in.RecordedDate,
	}
	switch out.ClinicalStatus {
	case "active":
		out.Active = true
	case "":
		out.Active = out.VerificationStatus != "refuted" && out.VerificationStatus != "entered-in-error"
	}
	for _, r := range in.Reaction {
		for i := range r.Manifestation {
			if l := r.Manifestation[i].label(); l != "" && !contains(out.Reactions, l) {
				out.Reactions = append(out.Reactions, l)
			}
		}
	}
	var m missing
	m.check(in.Code.isZero(), "substance")
	m.check(out.ClinicalStatus == "", "clinicalStatus")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}
