package normalize

import (
	"ehrgate/fhir"
	"ehrgate/terminology"
)

type conditionJSON struct {
	header
	ClinicalStatus     *codeableConcept  `json:"clinicalStatus"`
	VerificationStatus *codeableConcept  `json:"verificationStatus"`
	Category           []codeableConcept `json:"category"`
	Code               *codeableConcept  `json:"code"`
	Subject            *reference        `json:"subject"`
	OnsetDateTime      string            `json:"onsetDateTime"`
	OnsetPeriod        *period           `json:"onsetPeriod"`
	OnsetAge           *quantity         `json:"onsetAge"`
	OnsetString        string            `json:"onsetString"`
	AbatementDateTime  string            `json:"abatementDateTime"`
	AbatementPeriod    *period           `json:"abatementPeriod"`
	AbatementAge       *quantity         `json:"abatementAge"`
	AbatementString    string            `json:"abatementString"`
	RecordedDate       string            `json:"recordedDate"`
}

// activeClinical are the condition-clinical codes that mean the condition is
// current (http://hl7.org/fhir/R4/valueset-condition-clinical.html).
var activeClinical = map[string]bool{"active": true, "recurrence": true, "relapse": true}

// normalizeCondition maps a Condition. Active means clinicalStatus active,
// recurrence or relapse, no abatement[x], and a verificationStatus that is
// not refuted or entered-in-error. Missing lists "code", "clinicalStatus"
// and "onset".
func normalizeCondition(ref Ref, raw []byte) (Resource, error) {
	var in conditionJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &Condition{
		Common:             Common{Source: ref, PatientID: patientRef(in.Subject)},
		Code:               concept(terminology.ConditionCode, in.Code),
		Category:           categories(fhir.SystemCondCat, in.Category),
		ClinicalStatus:     in.ClinicalStatus.code(fhir.SystemCondClin),
		VerificationStatus: in.VerificationStatus.code(fhir.SystemCondVer),
		Recorded:           in.RecordedDate,
	}
	out.Onset = in.OnsetDateTime
	if out.Onset == "" && in.OnsetPeriod != nil {
		out.Onset = in.OnsetPeriod.Start
	}
	out.Onset = firstNonEmpty(out.Onset, renderAge(in.OnsetAge), in.OnsetString)
	out.Abatement = in.AbatementDateTime
	if out.Abatement == "" && in.AbatementPeriod != nil {
		out.Abatement = firstNonEmpty(in.AbatementPeriod.End, in.AbatementPeriod.Start)
	}
	out.Abatement = firstNonEmpty(out.Abatement, renderAge(in.AbatementAge), in.AbatementString)
	abated := out.Abatement != "" || in.AbatementPeriod != nil || in.AbatementAge != nil
	refuted := out.VerificationStatus == "refuted" || out.VerificationStatus == "entered-in-error"
	out.Active = activeClinical[out.ClinicalStatus] && !abated && !refuted

	var m missing
	m.check(in.Code.isZero(), "code")
	m.check(out.ClinicalStatus == "", "clinicalStatus")
	m.check(out.Onset == "", "onset")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}
