package cdshooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"ehrgate/audit"
	"ehrgate/normalize"
	"ehrgate/risk"
)

// The care-gap service (patient-view): atrial fibrillation whose
// CHA₂DS₂-VASc score calls for oral anticoagulation while none is active,
// computed by package risk (the population pipeline's rule) from the
// patient, the problem list and the active medication orders.

// prefetchConditions is the prefetch key of the problem list.
const prefetchConditions = "conditions"

// conditionTemplate is the prefetch template of the problem list.
const conditionTemplate = "Condition?patient={{context.patientId}}"

// patientTemplate finds the patient by search when it was not prefetched.
const patientTemplate = "Patient?_id={{context.patientId}}"

var (
	conditionList = listSpec{Type: "Condition", PrefetchKey: prefetchConditions, Template: conditionTemplate, Name: "problem list", Plural: "conditions"}
	// patientSearch is only run against fhirServer: the prefetch and
	// ehrgate's store are read directly (patientRecord).
	patientSearch = listSpec{Type: "Patient", PrefetchKey: prefetchPatient, Template: patientTemplate, Name: "patient record", Plural: "patient records"}
)

// ServiceCareGap is the care-gap service's id.
const ServiceCareGap = "af-anticoagulation-gap"

var careGapPrefetch = map[string]string{
	prefetchPatient:     "Patient/{{context.patientId}}",
	prefetchConditions:  conditionTemplate,
	prefetchMedications: medicationTemplate,
}

const careGapUsage = "Prefetch the patient, the problem list and the active medication orders, or pass fhirAuthorization with " +
	"Patient, Condition and MedicationRequest read scopes; without them (and without a fhirServer ehrgate syncs) the service answers 412."

// careGapSource names the rule each care-gap card follows.
var careGapSource = Source{Label: "ehrgate care gaps: CHA2DS2-VASc (Lip et al., Chest 2010; 2019 AHA/ACC/HRS thresholds)"}

// careGap answers the care-gap service: one card when the gap is open, one
// saying the score could not be computed (and why) when the patient has
// atrial fibrillation but the score lacks data, none otherwise.
func (s *Service) careGap(ctx context.Context, req *Request, patientID string, received time.Time, pa *patientAccess) ([]Card, error) {
	chart := risk.Chart{Unavailable: map[string]string{}}
	p, err := s.patientRecord(ctx, req, patientID, received, pa)
	if err != nil {
		return nil, err
	}
	chart.Patient = p
	conds, err := s.list(ctx, req, patientID, received, conditionList)
	pa.add(conds)
	if err != nil {
		return nil, err
	}
	if conds.Prov.Unavailable != "" {
		chart.Unavailable["Condition"] = conds.Prov.Unavailable
	}
	for _, raw := range conds.Resources {
		res, err := s.norm.Normalize(normalize.Ref{Type: "Condition"}, withID(raw))
		c, ok := res.(*normalize.Condition)
		if err != nil || !ok {
			return nil, &PreconditionError{Reason: "a condition in the problem list from " + conds.Prov.From + " cannot be read"}
		}
		chart.Conditions = append(chart.Conditions, *c)
	}
	meds, err := s.list(ctx, req, patientID, received, medicationList)
	pa.add(meds)
	if err != nil {
		return nil, err
	}
	if meds.Prov.Unavailable != "" {
		chart.Unavailable["MedicationRequest"] = meds.Prov.Unavailable
	}
	for _, raw := range meds.Resources {
		res, err := s.norm.Normalize(normalize.Ref{Type: "MedicationRequest"}, withID(raw))
		m, ok := res.(*normalize.MedicationRequest)
		if err != nil || !ok {
			return nil, &PreconditionError{Reason: "a medication order in the list from " + meds.Prov.From + " cannot be read"}
		}
		chart.MedicationRequests = append(chart.MedicationRequests, *m)
	}
	// Only the anticoagulation rule: the others read data this service
	// does not fetch (an HbA1c gap would be claimed for want of labs).
	for _, f := range risk.Evaluate(chart, s.now()) {
		if f.Rule.Name != risk.RuleAFAnticoagulation.Name {
			continue
		}
		if c, ok := careGapCard(f, conds.Prov, meds.Prov); ok {
			return []Card{c}, nil
		}
	}
	return []Card{}, nil
}

// add notes what a list read from ehrgate's store.
func (pa *patientAccess) add(l listData) {
	if l.Connection != "" {
		pa.conn = l.Connection
	}
	pa.refs = append(pa.refs, l.Refs...)
}

// patientRecord reads the patient: the prefetch, else ehrgate's store when
// fhirServer is a connection, else a search of fhirServer.
func (s *Service) patientRecord(ctx context.Context, req *Request, patientID string, received time.Time, pa *patientAccess) (normalize.Patient, error) {
	var raw json.RawMessage
	if p, ok := req.Prefetch[prefetchPatient]; ok && jsonType(p) == "object" {
		raw = p
	} else if conn, ok := s.connectionFor(req.FHIRServer); ok {
		if rec, err := s.opts.Store.Get(ctx, conn, "Patient", patientID); err == nil {
			raw = rec.Raw
			pa.add(listData{Connection: conn, Refs: []audit.ResourceRef{{Connection: conn, Type: rec.Type, ID: rec.ID, Version: rec.VersionID}}})
		}
	}
	if raw == nil {
		if req.FHIRAuthorization == nil {
			return normalize.Patient{}, &PreconditionError{Reason: "the patient record could not be had: no patient prefetch, and no fhirAuthorization to fetch it with"}
		}
		l, why, ok := s.fromFHIRServer(ctx, req, patientID, received, patientSearch)
		if !ok || len(l.Resources) != 1 {
			if why == "" {
				why = "the search did not find exactly one patient"
			}
			return normalize.Patient{}, &PreconditionError{Reason: "the patient record could not be had: " + why}
		}
		raw = l.Resources[0]
	}
	res, err := s.norm.Normalize(normalize.Ref{Type: "Patient"}, withID(raw))
	p, ok := res.(*normalize.Patient)
	if err != nil || !ok {
		return normalize.Patient{}, &PreconditionError{Reason: "the patient record cannot be read"}
	}
	return *p, nil
}

// careGapCard renders a finding: a warning when the gap is open, an info
// card when the score could not be computed; nothing when the patient's
// anticoagulation is in place or not called for.
func careGapCard(f risk.Finding, conds, meds Provenance) (Card, bool) {
	var b strings.Builder
	c := Card{UUID: newUUID(), Source: careGapSource, kind: "care-gap-" + f.Rule.Name}
	switch {
	case !f.Computable:
		c.Indicator = IndicatorInfo
		c.Summary = truncate("Atrial fibrillation: CHA2DS2-VASc could not be computed", 140)
		fmt.Fprintf(&b, "The anticoagulation check could not be done: %s.\n\n", f.Reason)
	case f.Open:
		c.Indicator = IndicatorWarning
		c.Summary = truncate(fmt.Sprintf("Atrial fibrillation, CHA2DS2-VASc %d: no active oral anticoagulant", f.Score.Value), 140)
		fmt.Fprintf(&b, "%s.\n\n", f.Summary)
	default:
		return Card{}, false
	}
	if f.Score != nil && f.Score.Computable {
		fmt.Fprintf(&b, "**%s**\n\n", f.Score.Explain())
		for _, it := range f.Score.Items {
			for _, e := range it.Evidence {
				fmt.Fprintf(&b, "- %s: %s\n", it.Name, evidenceText(e))
			}
		}
		b.WriteString("\n")
	}
	for _, e := range f.Evidence {
		fmt.Fprintf(&b, "- %s\n", evidenceText(e))
	}
	fmt.Fprintf(&b, "\nData used: the problem list from %s; the active medication orders from %s.", orNone(conds), orNone(meds))
	c.Detail = b.String()
	return c, true
}

// evidenceText is one input as a person reads it, with its code and date.
func evidenceText(e risk.Evidence) string {
	parts := []string{e.Item}
	if e.Display != "" {
		parts = append(parts, e.Display)
	}
	if e.Code != "" {
		parts = append(parts, "("+e.Code+")")
	}
	if e.Value != "" {
		parts = append(parts, e.Value)
	}
	if e.Date != "" {
		parts = append(parts, "recorded "+e.Date)
	}
	return strings.Join(parts, " ")
}

// orNone names where a list came from, or why there was none.
func orNone(p Provenance) string {
	if p.Unavailable != "" {
		return "nowhere (" + p.Unavailable + ")"
	}
	return p.From
}
