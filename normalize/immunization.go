package normalize

import "ehrgate/terminology"

type immunizationJSON struct {
	header
	Status             string           `json:"status"`
	VaccineCode        *codeableConcept `json:"vaccineCode"`
	Patient            *reference       `json:"patient"`
	OccurrenceDateTime string           `json:"occurrenceDateTime"`
	OccurrenceString   string           `json:"occurrenceString"`
}

// normalizeImmunization maps an Immunization, preferring CVX for the
// vaccine. Missing lists "vaccine", "status" and "occurrence".
func normalizeImmunization(ref Ref, raw []byte) (Resource, error) {
	var in immunizationJSON
	if err := decode(&ref, raw, &in, &in); err != nil {
		return nil, err
	}
	out := &Immunization{
		Common:     Common{Source: ref, PatientID: patientRef(in.Patient)},
		Vaccine:    concept(terminology.ImmunizationVaccine, in.VaccineCode),
		Status:     in.Status,
		Occurrence: firstNonEmpty(in.OccurrenceDateTime, in.OccurrenceString),
	}
	var m missing
	m.check(in.VaccineCode.isZero(), "vaccine")
	m.check(in.Status == "", "status")
	m.check(out.Occurrence == "", "occurrence")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}
