package normalize

import "ehrgate/terminology"

// systemV2_0074 is the HL7 v2 diagnostic service section system used for
// DiagnosticReport.category.
const systemV2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"

type diagnosticReportJSON struct {
	header
	Status            string            `json:"status"`
	Category          []codeableConcept `json:"category"`
	Code              *codeableConcept  `json:"code"`
	Subject           *reference        `json:"subject"`
	EffectiveDateTime string            `json:"effectiveDateTime"`
	EffectivePeriod   *period           `json:"effectivePeriod"`
	Result            []struct{}        `json:"result"`
	Conclusion        string            `json:"conclusion"`
	PresentedForm     []struct{}        `json:"presentedForm"`
	Text              *narrative        `json:"text"`
}

// normalizeDiagnosticReport maps a DiagnosticReport. NarrativeOnly means it
// has no result references but does carry a presentedForm, a conclusion or
// a narrative. Missing lists "code", "status" and "effective".
func normalizeDiagnosticReport(ref Ref, raw []byte) (Resource, error) {
	var in diagnosticReportJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &DiagnosticReport{
		Common:     Common{Source: ref, PatientID: patientRef(in.Subject)},
		Code:       concept(terminology.DiagnosticReportCode, in.Code),
		Status:     in.Status,
		Category:   categories(systemV2_0074, in.Category),
		Results:    len(in.Result),
		Conclusion: in.Conclusion,
	}
	out.Effective = in.EffectiveDateTime
	if out.Effective == "" && in.EffectivePeriod != nil {
		out.Effective = in.EffectivePeriod.Start
	}
	out.NarrativeOnly = len(in.Result) == 0 &&
		(len(in.PresentedForm) > 0 || in.Conclusion != "" || (in.Text != nil && in.Text.Div != ""))
	var m missing
	m.check(in.Code.isZero(), "code")
	m.check(in.Status == "", "status")
	m.check(out.Effective == "", "effective")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}
