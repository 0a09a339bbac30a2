package risk

import (
	"testing"
	"time"

	"ehrgate/normalize"
	"ehrgate/terminology"
)

var asOf = time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)

func icd(code string) normalize.Condition {
	return normalize.Condition{Common: normalize.Common{Source: normalize.Ref{Type: "Condition", ID: "c-" + code}},
		Code: normalize.Concept{System: terminology.SystemICD10CM, Code: code}, ClinicalStatus: "active", Active: true}
}

func sct(code string) normalize.Condition {
	return normalize.Condition{Common: normalize.Common{Source: normalize.Ref{Type: "Condition", ID: "s-" + code}},
		Code: normalize.Concept{System: terminology.SystemSNOMED, Code: code}, ClinicalStatus: "active", Active: true}
}

func patient(birth, gender string) normalize.Patient {
	return normalize.Patient{Common: normalize.Common{Source: normalize.Ref{Type: "Patient", ID: "p1"}}, BirthDate: birth, Gender: gender}
}

// TestCHA2DS2VASc checks the score against cases computed by hand from the
// item table of Lip et al. (Chest 2010).
func TestCHA2DS2VASc(t *testing.T) {
	refuted := icd("I50.9")
	refuted.VerificationStatus = "entered-in-error"
	resolved := icd("I63.9") // history of stroke counts even when resolved
	resolved.ClinicalStatus, resolved.Active = "resolved", false
	tests := []struct {
		name       string
		chart      Chart
		want       int
		computable bool
		reason     string
	}{
		{"young man, nothing", Chart{Patient: patient("1980-01-01", "male")}, 0, true, ""},
		{"young woman: sex only", Chart{Patient: patient("1980-01-01", "female")}, 1, true, ""},
		// 64 the day before the 65th birthday: 0.
		{"man 64 the day before", Chart{Patient: patient("1961-07-01", "male")}, 0, true, ""},
		{"man 65 on the birthday", Chart{Patient: patient("1961-06-30", "male")}, 1, true, ""},
		{"man 75", Chart{Patient: patient("1951-06-01", "male")}, 2, true, ""},
		// woman 78 (2) + female (1) + HTN I10 (1) + DM E11.9 (1) + CHF
		// I50.9 (1) + stroke I63.9 (2) + MI I21.4 (1) = 9, the maximum.
		{"maximum", Chart{Patient: patient("1948-03-15", "female"),
			Conditions: []normalize.Condition{icd("I10"), icd("E11.9"), icd("I50.9"), icd("I63.9"), icd("I21.4")}}, 9, true, ""},
		// man 70 (1) + hypertension by SNOMED CT only (1) + TIA G45.9 (2) = 4.
		{"snomed and TIA", Chart{Patient: patient("1956-01-10", "male"),
			Conditions: []normalize.Condition{sct("38341003"), icd("G45.9")}}, 4, true, ""},
		// transient global amnesia G45.4 is not a TIA; flutter is not AF
		// but also not an item: 0.
		{"G45.4 is not a TIA", Chart{Patient: patient("1980-01-01", "male"),
			Conditions: []normalize.Condition{icd("G45.4")}}, 0, true, ""},
		// entered-in-error heart failure does not count; a resolved stroke
		// does (history): man 50 + stroke 2 = 2.
		{"history and errors", Chart{Patient: patient("1976-01-01", "male"),
			Conditions: []normalize.Condition{refuted, resolved}}, 2, true, ""},
		// the same item twice counts once: HTN by ICD and SNOMED = 1.
		{"item once", Chart{Patient: patient("1980-01-01", "male"),
			Conditions: []normalize.Condition{icd("I10"), sct("59621000")}}, 1, true, ""},
		// PAD I73.9 is vascular disease: 1.
		{"PAD", Chart{Patient: patient("1980-01-01", "male"), Conditions: []normalize.Condition{icd("I73.9")}}, 1, true, ""},
		// A birth year alone when the whole year falls in one band.
		{"year only, one band", Chart{Patient: patient("1940", "male")}, 2, true, ""},
		{"no birth date", Chart{Patient: patient("", "male")}, 0, false, "no birth date recorded"},
		{"year only, two bands", Chart{Patient: patient("1961", "male")}, 0, false,
			`the birth date "1961" does not tell whether the age band is under 65 or 65-74`},
		{"no sex", Chart{Patient: patient("1950-01-01", "")}, 0, false, "no administrative sex recorded"},
		{"sex unknown", Chart{Patient: patient("1950-01-01", "unknown")}, 0, false, `administrative sex "unknown" is neither female nor male`},
		{"conditions unavailable", Chart{Patient: patient("1950-01-01", "male"), Unavailable: map[string]string{"Condition": "not exposed"}}, 0, false,
			"the source's conditions are not available (not exposed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := CHA2DS2VASc(tt.chart, asOf)
			if s.Computable != tt.computable || s.Value != tt.want || s.Reason != tt.reason {
				t.Errorf("CHA2DS2VASc() = %d computable %v reason %q, want %d %v %q (%s)", s.Value, s.Computable, s.Reason,
					tt.want, tt.computable, tt.reason, s.Explain())
			}
			if s.Computable {
				sum := 0
				for _, it := range s.Items {
					if it.Present != (len(it.Evidence) > 0) {
						t.Errorf("item %s present %v with %d pieces of evidence", it.Name, it.Present, len(it.Evidence))
					}
					if it.Present {
						sum += it.Points
					}
				}
				if sum != s.Value || len(s.Items) != 8 {
					t.Errorf("items sum to %d over %d items, want %d over 8", sum, len(s.Items), s.Value)
				}
			}
		})
	}
}

func med(rxcui string, active bool) normalize.MedicationRequest {
	return normalize.MedicationRequest{Common: normalize.Common{Source: normalize.Ref{Type: "MedicationRequest", ID: "m-" + rxcui}},
		Medication: normalize.Concept{System: terminology.SystemRxNorm, Code: rxcui}, Active: active,
		Ingredient: &normalize.Coding{System: terminology.SystemRxNorm, Code: map[string]string{"855332": "11289"}[rxcui]}}
}

func a1c(date string) normalize.Observation {
	v := 7.1
	return normalize.Observation{Common: normalize.Common{Source: normalize.Ref{Type: "Observation", ID: "o-" + date}},
		Status: "final", Code: normalize.Concept{System: terminology.SystemLOINC, Code: "4548-4"}, Effective: date,
		Value: &normalize.Value{Kind: "quantity", Number: &v}}
}

// TestEvaluate checks the two gaps on hand-made charts, the not-computable
// ones included.
func TestEvaluate(t *testing.T) {
	af := icd("I48.91")
	flutter := icd("I48.92")
	dm := icd("E11.9")
	oldDM := icd("E11.9")
	oldDM.ClinicalStatus, oldDM.Active = "resolved", false
	type want struct {
		rule       string
		computable bool
		open       bool
	}
	tests := []struct {
		name  string
		chart Chart
		want  []want
	}{
		{"no cohort", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{icd("I10")}}, nil},
		{"flutter is not AF", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{flutter}}, nil},
		// man 76: 2 ≥ 2, no anticoagulant: open.
		{"AF man 76 untreated", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{af}},
			[]want{{"af-anticoagulation", true, true}}},
		// on warfarin (SCD 855332, ingredient 11289): closed.
		{"AF man 76 on warfarin", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{af},
			MedicationRequests: []normalize.MedicationRequest{med("855332", true)}}, []want{{"af-anticoagulation", true, false}}},
		// a stopped order does not count.
		{"AF man 76 warfarin stopped", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{af},
			MedicationRequests: []normalize.MedicationRequest{med("855332", false)}}, []want{{"af-anticoagulation", true, true}}},
		// apixaban by its ingredient code directly.
		{"AF on apixaban", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{af},
			MedicationRequests: []normalize.MedicationRequest{med("1364430", true)}}, []want{{"af-anticoagulation", true, false}}},
		// woman 70: age 1 + female 1 = 2 < 3: not called for.
		{"AF woman 70", Chart{Patient: patient("1956-01-01", "female"), Conditions: []normalize.Condition{af}},
			[]want{{"af-anticoagulation", true, false}}},
		// woman 70 + HTN = 3 ≥ 3: open.
		{"AF woman 70 HTN", Chart{Patient: patient("1956-01-01", "female"), Conditions: []normalize.Condition{af, icd("I10")}},
			[]want{{"af-anticoagulation", true, true}}},
		// man 60 with only AF: 0 < 2.
		{"AF man 60", Chart{Patient: patient("1966-01-01", "male"), Conditions: []normalize.Condition{af}},
			[]want{{"af-anticoagulation", true, false}}},
		{"AF no birth date", Chart{Patient: patient("", "male"), Conditions: []normalize.Condition{af}},
			[]want{{"af-anticoagulation", false, false}}},
		{"AF meds unavailable", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{af},
			Unavailable: map[string]string{"MedicationRequest": "not exposed"}}, []want{{"af-anticoagulation", false, false}}},
		// below threshold, meds unknown: still computable (no gap either way).
		{"AF man 60 meds unavailable", Chart{Patient: patient("1966-01-01", "male"), Conditions: []normalize.Condition{af},
			Unavailable: map[string]string{"MedicationRequest": "not exposed"}}, []want{{"af-anticoagulation", true, false}}},
		{"DM no A1c", Chart{Patient: patient("1970-01-01", "male"), Conditions: []normalize.Condition{dm}},
			[]want{{"diabetes-hba1c", true, true}}},
		{"DM A1c 13 months ago", Chart{Patient: patient("1970-01-01", "male"), Conditions: []normalize.Condition{dm},
			Observations: []normalize.Observation{a1c("2025-05-30")}}, []want{{"diabetes-hba1c", true, true}}},
		{"DM A1c 11 months ago", Chart{Patient: patient("1970-01-01", "male"), Conditions: []normalize.Condition{dm},
			Observations: []normalize.Observation{a1c("2025-05-30"), a1c("2025-07-30")}}, []want{{"diabetes-hba1c", true, false}}},
		{"DM A1c undated", Chart{Patient: patient("1970-01-01", "male"), Conditions: []normalize.Condition{dm},
			Observations: []normalize.Observation{a1c("")}}, []want{{"diabetes-hba1c", false, false}}},
		{"DM observations unavailable", Chart{Patient: patient("1970-01-01", "male"), Conditions: []normalize.Condition{dm},
			Unavailable: map[string]string{"Observation": "fetch failed"}}, []want{{"diabetes-hba1c", false, false}}},
		{"resolved DM", Chart{Patient: patient("1970-01-01", "male"), Conditions: []normalize.Condition{oldDM}}, nil},
		// both cohorts: man 76 + DM (score 3), untreated, no A1c.
		{"both", Chart{Patient: patient("1950-01-01", "male"), Conditions: []normalize.Condition{af, dm}},
			[]want{{"af-anticoagulation", true, true}, {"diabetes-hba1c", true, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.chart, asOf)
			if len(got) != len(tt.want) {
				t.Fatalf("Evaluate() = %+v, want %d findings", got, len(tt.want))
			}
			for i, f := range got {
				w := tt.want[i]
				if f.Rule.Name != w.rule || f.Computable != w.computable || f.Open != w.open {
					t.Errorf("finding %d = %s computable %v open %v (%s), want %s %v %v", i, f.Rule.Name, f.Computable, f.Open, f.Summary, w.rule, w.computable, w.open)
				}
				if !f.Computable && f.Reason == "" {
					t.Errorf("finding %d not computable without a reason", i)
				}
				if f.Summary == "" || len(f.Evidence) == 0 {
					t.Errorf("finding %d lacks a summary or evidence: %+v", i, f)
				}
			}
		})
	}
}

func TestWithdrawalStatus(t *testing.T) {
	af := icd("I48.91")
	wrong := icd("I48.0")
	wrong.VerificationStatus = "entered-in-error"
	resolved := icd("I48.91")
	resolved.ClinicalStatus, resolved.Active = "resolved", false
	tests := []struct {
		name  string
		conds []normalize.Condition
		want  string
	}{
		{"entered in error", []normalize.Condition{wrong}, "entered-in-error"},
		{"resolved", []normalize.Condition{resolved}, "inactive"},
		{"one wrong, one right", []normalize.Condition{wrong, af}, "inactive"},
		{"gone", nil, "inactive"},
	}
	for _, tt := range tests {
		if got := WithdrawalStatus(Chart{Conditions: tt.conds}, RuleAFAnticoagulation.Name); got != tt.want {
			t.Errorf("WithdrawalStatus(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
