package normalize

import "ehrgate/terminology"

type procedureJSON struct {
	header
	Status            string           `json:"status"`
	Code              *codeableConcept `json:"code"`
	Subject           *reference       `json:"subject"`
	PerformedDateTime string           `json:"performedDateTime"`
	PerformedPeriod   *period          `json:"performedPeriod"`
	PerformedString   string           `json:"performedString"`
}

// normalizeProcedure maps a Procedure. Missing lists "code", "status" and
// "performed".
func normalizeProcedure(ref Ref, raw []byte) (Resource, error) {
	var in procedureJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &Procedure{
		Common: Common{Source: ref, PatientID: patientRef(in.Subject)},
		Code:   concept(terminology.ProcedureCode, in.Code),
		Status: in.Status,
	}
	out.Performed = in.PerformedDateTime
	if out.Performed == "" && in.PerformedPeriod != nil {
		out.Performed = in.PerformedPeriod.Start
	}
	out.Performed = firstNonEmpty(out.Performed, in.PerformedString)
	var m missing
	m.check(in.Code.isZero(), "code")
	m.check(in.Status == "", "status")
	m.check(out.Performed == "", "performed")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}
