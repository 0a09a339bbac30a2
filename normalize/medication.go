package normalize

import (
	"encoding/json"
	"strings"

	"ehrgate/terminology"
)

type medicationRequestJSON struct {
	header
	Status                    string           `json:"status"`
	Intent                    string           `json:"intent"`
	MedicationCodeableConcept *codeableConcept `json:"medicationCodeableConcept"`
	MedicationReference       *reference       `json:"medicationReference"`
	Subject                   *reference       `json:"subject"`
	AuthoredOn                string           `json:"authoredOn"`
	DosageInstruction         []dosageJSON     `json:"dosageInstruction"`
	DispenseRequest           struct {
		ValidityPeriod *period `json:"validityPeriod"`
	} `json:"dispenseRequest"`
	Contained []json.RawMessage `json:"contained"`
}

// dosageJSON is the part of a Dosage read here.
type dosageJSON struct {
	Text string `json:"text"`
	// Timing and Repeat are values, not pointers: no allocation for the
	// usual dosage without bounds.
	Timing struct {
		Repeat struct {
			BoundsPeriod *period `json:"boundsPeriod"`
		} `json:"repeat"`
	} `json:"timing"`
}

// boundsPeriod returns the dosage's timing.repeat.boundsPeriod, or nil.
func (d *dosageJSON) boundsPeriod() *period { return d.Timing.Repeat.BoundsPeriod }

// Where MedicationRequest.Start and End came from (PeriodFrom).
const (
	// PeriodDosageBounds is dosageInstruction.timing.repeat.boundsPeriod:
	// the outer bounds of when the medication is to be taken
	// (http://hl7.org/fhir/R4/datatypes-definitions.html#Timing.repeat.bounds_x_).
	PeriodDosageBounds = "dosage-bounds"
	// PeriodValidity is dispenseRequest.validityPeriod: when the
	// prescription may be dispensed, "stale dating the Prescription"
	// (http://hl7.org/fhir/R4/medicationrequest-definitions.html#MedicationRequest.dispenseRequest.validityPeriod).
	PeriodValidity = "validity"
)

// normalizeMedicationRequest maps a MedicationRequest. The medication comes
// from medicationCodeableConcept, else from a contained Medication the
// medicationReference points at, else from the reference's display. Active
// means status active or on-hold (stale orders are not detected here).
// Missing lists "medication", "status", "authoredOn" and "dosage".
func normalizeMedicationRequest(ref Ref, raw []byte) (Resource, error) {
	var in medicationRequestJSON
	if fastMedicationRequest(raw, &in) {
		if err := checkHeader(&ref, &in.header); err != nil {
			return nil, err
		}
	} else {
		in = medicationRequestJSON{}
		if err := decode(&ref, raw, &in, &in); err != nil {
			return nil, err
		}
	}
	out := &MedicationRequest{
		Common:     Common{Source: ref, PatientID: patientRef(in.Subject)},
		Status:     in.Status,
		Intent:     in.Intent,
		AuthoredOn: in.AuthoredOn,
		Active:     in.Status == "active" || in.Status == "on-hold",
	}
	switch {
	case !in.MedicationCodeableConcept.isZero():
		out.Medication = concept(terminology.MedicationCode, in.MedicationCodeableConcept)
	case in.MedicationReference != nil:
		mr := in.MedicationReference
		if id, ok := strings.CutPrefix(mr.Reference, "#"); ok {
			c, err := containedMedication(in.Contained, id)
			if err != nil {
				return nil, err
			}
			if !c.isZero() {
				out.Medication = concept(terminology.MedicationCode, c)
			}
		}
		if out.Medication.Text == "" {
			out.Medication.Text = mr.Display
		}
	}
	if len(in.DosageInstruction) > 0 {
		texts := make([]string, 0, len(in.DosageInstruction))
		for _, d := range in.DosageInstruction {
			if d.Text != "" {
				texts = append(texts, d.Text)
			}
		}
		out.Dosage = strings.Join(texts, "; ")
	}
	out.Start, out.End, out.PeriodFrom = orderPeriod(&in)
	var m missing
	m.check(out.Medication.Code == "" && out.Medication.Text == "", "medication")
	m.check(in.Status == "", "status")
	m.check(in.AuthoredOn == "", "authoredOn")
	m.check(out.Dosage == "", "dosage")
	out.Missing = m
	extensionsOf(&out.Common, &in.header)
	return out, nil
}

// containedMedication finds the contained Medication with the given id and
// returns its code. Other contained resources are not decoded.
func containedMedication(contained []json.RawMessage, id string) (*codeableConcept, error) {
	for i, raw := range contained {
		var h struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(raw, &h); err != nil {
			return nil, prefixField(malformed("MedicationRequest", err), "contained")
		}
		if h.ResourceType != "Medication" || h.ID != id {
			continue
		}
		var med struct {
			Code *codeableConcept `json:"code"`
		}
		if err := json.Unmarshal(contained[i], &med); err != nil {
			return nil, prefixField(malformed("MedicationRequest", err), "contained")
		}
		return med.Code, nil
	}
	return nil, nil
}

// prefixField prefixes the field path of a *MalformedError.
func prefixField(err error, prefix string) error {
	if me, ok := err.(*MalformedError); ok {
		me.Field = joinNonEmpty(".", prefix, me.Field)
	}
	return err
}

// orderPeriod returns the period a medication order covers, from the
// elements FHIR R4 defines for it and nothing else: the dosage's
// timing.repeat.boundsPeriod (the earliest start and latest end over every
// dosage instruction that has one), else dispenseRequest.validityPeriod.
// A period without start and end is no period.
func orderPeriod(in *medicationRequestJSON) (start, end, from string) {
	for i := range in.DosageInstruction {
		b := in.DosageInstruction[i].boundsPeriod()
		if b == nil || (b.Start == "" && b.End == "") {
			continue
		}
		from = PeriodDosageBounds
		if b.Start != "" && (start == "" || earlier(b.Start, start)) {
			start = b.Start
		}
		if b.End != "" && (end == "" || earlier(end, b.End)) {
			end = b.End
		}
	}
	if from != "" {
		return start, end, from
	}
	if vp := in.DispenseRequest.ValidityPeriod; vp != nil && (vp.Start != "" || vp.End != "") {
		return vp.Start, vp.End, PeriodValidity
	}
	return "", "", ""
}

// earlier reports whether FHIR date/dateTime a is before b; dates that do
// not parse compare as text.
func earlier(a, b string) bool {
	ta, okA := parseFHIRTime(a)
	tb, okB := parseFHIRTime(b)
	if !okA || !okB {
		return a < b
	}
	return ta.Before(tb)
}
