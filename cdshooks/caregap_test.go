package cdshooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"ehrgate/cdshooks"
	"ehrgate/ehrsim/cdsclient"
)

// bundleOf is a searchset Bundle of resources, as a prefetch.
func bundleOf(resources ...string) json.RawMessage {
	var es []string
	for _, r := range resources {
		es = append(es, `{"resource":`+r+`}`)
	}
	return json.RawMessage(`{"resourceType":"Bundle","type":"searchset","entry":[` + strings.Join(es, ",") + `]}`)
}

func conditionJSON(id, patientID, system, code, display string) string {
	return `{"resourceType":"Condition","id":"` + id + `","subject":{"reference":"Patient/` + patientID + `"},` +
		`"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},` +
		`"code":{"coding":[{"system":"` + system + `","code":"` + code + `","display":"` + display + `"}]},"recordedDate":"2024-05-01"}`
}

const icd10 = "http://hl7.org/fhir/sid/icd-10-cm"

// TestCareGapCard: the patient-view care-gap service, with hand-computed
// CHA2DS2-VASc scores (Lip et al., Chest 2010: age 65-74 +1, female +1,
// hypertension +1) against the 2019 AHA/ACC/HRS thresholds (men >= 2,
// women >= 3).
func TestCareGapCard(t *testing.T) {
	e := newEnv(t)
	svc := e.service(t, cdshooks.ServiceCareGap)
	if svc.Hook != "patient-view" || svc.Prefetch["conditions"] == "" || svc.Prefetch["medications"] == "" {
		t.Fatalf("discovery of the care-gap service = %+v", svc)
	}
	born70 := fmt.Sprintf("%d-01-01", time.Now().Year()-70)
	pat := func(gender, birth string) json.RawMessage {
		s := `{"resourceType":"Patient","id":"p1","gender":"` + gender + `"`
		if birth != "" {
			s += `,"birthDate":"` + birth + `"`
		}
		return json.RawMessage(s + `}`)
	}
	af := conditionJSON("c-af", "p1", icd10, "I48.91", "Unspecified atrial fibrillation")
	htn := conditionJSON("c-htn", "p1", icd10, "I10", "Essential (primary) hypertension")
	apixaban := `{"resourceType":"MedicationRequest","id":"m-apx","status":"active","intent":"order","subject":{"reference":"Patient/p1"},` +
		`"medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"1364430","display":"apixaban"}]}}`
	for _, tc := range []struct {
		name       string
		patient    json.RawMessage
		conditions json.RawMessage
		meds       json.RawMessage
		indicator  string // "" = no card
		want       []string
	}{
		{"female 70 with AF and hypertension, no anticoagulant: score 3, open", pat("female", born70), bundleOf(af, htn), bundleOf(),
			"warning", []string{"CHA2DS2-VASc 3", "I10", "I48.91", "the EHR's prefetch"}},
		{"male 70 with AF and hypertension: score 2, open", pat("male", born70), bundleOf(af, htn), bundleOf(),
			"warning", []string{"CHA2DS2-VASc 2"}},
		{"female 70 with AF alone: score 2, below the women's threshold", pat("female", born70), bundleOf(af), bundleOf(), "", nil},
		{"on apixaban: closed", pat("female", born70), bundleOf(af, htn), bundleOf(apixaban), "", nil},
		{"no atrial fibrillation: not in the cohort", pat("female", born70), bundleOf(htn), bundleOf(), "", nil},
		{"no birth date: not computable, said so", pat("female", ""), bundleOf(af, htn), bundleOf(),
			"info", []string{"could not be computed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{
				Context:  map[string]any{"userId": "Practitioner/dr-smith", "patientId": "p1"},
				Prefetch: map[string]json.RawMessage{"patient": tc.patient, "conditions": tc.conditions, "medications": tc.meds}})
			if err != nil || resp.Status != http.StatusOK {
				t.Fatalf("call = %v %+v", err, resp)
			}
			if tc.indicator == "" {
				if len(resp.Cards) != 0 {
					t.Fatalf("cards = %s, want none", cardSummaries(resp.Cards))
				}
				return
			}
			if len(resp.Cards) != 1 || resp.Cards[0].Indicator != tc.indicator {
				t.Fatalf("cards = %s, want one %s card", cardSummaries(resp.Cards), tc.indicator)
			}
			text := resp.Cards[0].Summary + "\n" + resp.Cards[0].Detail
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("card lacks %q:\n%s", w, text)
				}
			}
		})
	}
	// Without the problem list and no way to fetch it: 412, never silence.
	resp, err := e.sim.Invoke(context.Background(), e.cds.URL, svc, cdsclient.Call{
		Context:  map[string]any{"userId": "Practitioner/dr-smith", "patientId": "p1"},
		Prefetch: map[string]json.RawMessage{"patient": pat("female", born70), "medications": bundleOf()}})
	if err != nil || resp.Status != http.StatusPreconditionFailed {
		t.Fatalf("without conditions = %v %+v, want 412", err, resp)
	}
}
