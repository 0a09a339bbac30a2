package normalize

import (
	"math"
	"sort"
	"time"

	"ehrgate/terminology"
)

// BMIMaxGap is the largest time between a weight and the height DeriveBMI
// pairs it with.
const BMIMaxGap = 366 * 24 * time.Hour

// DeriveBMI computes body mass index observations from the weights and
// heights in observations, per patient (connection and PatientID): each
// weight with a canonical value in kg is paired with the height (canonical
// cm) nearest to it in time, within BMIMaxGap. A weight that already has a
// BMI observation at the same effective time gets none. Derived observations
// have Derived true, DerivedFrom naming the weight and the height, LOINC
// 39156-5, a value in kg/m2 rounded to one decimal, and Source.ID
// "bmi-<weight id>" with Type Observation. Inputs are not modified.
func DeriveBMI(observations []*Observation) []*Observation {
	type patientKey struct{ conn, patient string }
	type point struct {
		o   *Observation
		at  time.Time
		val float64
	}
	weights := map[patientKey][]point{}
	heights := map[patientKey][]point{}
	haveBMI := map[patientKey]map[string]bool{}
	for _, o := range observations {
		if o == nil || o.PatientID == "" || o.Code.System != systemLOINC || o.Status == "entered-in-error" {
			continue
		}
		k := patientKey{o.Source.Connection, o.PatientID}
		if o.Code.Code == loincBMI {
			if haveBMI[k] == nil {
				haveBMI[k] = map[string]bool{}
			}
			haveBMI[k][o.Effective] = true
			continue
		}
		if o.Value == nil || o.Value.Canonical == nil {
			continue
		}
		at, ok := parseFHIRTime(o.Effective)
		if !ok {
			continue
		}
		switch {
		case o.Code.Code == loincBodyWeight && o.Value.Canonical.Unit == "kg" && o.Value.Canonical.Number > 0:
			weights[k] = append(weights[k], point{o, at, o.Value.Canonical.Number})
		case o.Code.Code == loincBodyHeight && o.Value.Canonical.Unit == "cm" && o.Value.Canonical.Number > 0:
			heights[k] = append(heights[k], point{o, at, o.Value.Canonical.Number})
		}
	}
	keys := make([]patientKey, 0, len(weights))
	for k := range weights {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].conn != keys[j].conn {
			return keys[i].conn < keys[j].conn
		}
		return keys[i].patient < keys[j].patient
	})
	var out []*Observation
	for _, k := range keys {
		ws := weights[k]
		sort.SliceStable(ws, func(i, j int) bool { return ws[i].at.Before(ws[j].at) })
		for _, w := range ws {
			if haveBMI[k][w.o.Effective] {
				continue
			}
			var best *point
			var bestGap time.Duration
			for i := range heights[k] {
				h := &heights[k][i]
				gap := h.at.Sub(w.at)
				if gap < 0 {
					gap = -gap
				}
				if gap <= BMIMaxGap && (best == nil || gap < bestGap) {
					best, bestGap = h, gap
				}
			}
			if best == nil {
				continue
			}
			m := best.val / 100
			bmi := math.Round(w.val/(m*m)*10) / 10
			src := w.o.Source
			src.Type, src.ID, src.VersionID = "Observation", "bmi-"+w.o.Source.ID, ""
			out = append(out, &Observation{
				Common:   Common{Source: src, PatientID: k.patient},
				Status:   "final",
				Category: []string{"vital-signs"},
				Code: Concept{System: systemLOINC, Code: loincBMI, Display: "Body mass index (BMI) [Ratio]",
					Standard: true, Mapping: MappingStandard, Confidence: 1},
				Effective:   w.o.Effective,
				Value:       &Value{Kind: KindQuantity, Number: &bmi, Unit: "kg/m2", UnitCode: "kg/m2", Canonical: &Canonical{Number: bmi, Unit: "kg/m2"}},
				Derived:     true,
				DerivedFrom: []Ref{w.o.Source, best.o.Source},
			})
		}
	}
	return out
}

// MergedCondition is one clinical concept a patient has, merged from the
// conditions that code it (possibly in different systems: SNOMED CT 38341003
// and ICD-10-CM I10 are one hypertension).
type MergedCondition struct {
	Code   Concept  `json:"code"`   // the preferred coding: SNOMED CT if any condition has it
	Groups []string `json:"groups"` // union of the conditions' groups
	Active bool     `json:"active"` // any merged condition is active
	Onset  string   `json:"onset,omitempty"`
	// Sources are the merged conditions, in input order: provenance is kept.
	Sources []*Condition `json:"sources"`
}

// MergeConditions merges conditions of one patient that name the same
// concept: the same code in the same system, or a SNOMED CT code and an
// ICD-10-CM code the bundled equivalence table pairs. Conditions without a
// code are never merged. Output keeps the order of first appearance.
func MergeConditions(conds []*Condition) []MergedCondition {
	table := terminology.BundledConditions()
	index := map[string]int{}
	var out []MergedCondition
	for _, c := range conds {
		if c == nil {
			continue
		}
		key := ""
		for _, cd := range append([]Coding{{System: c.Code.System, Code: c.Code.Code}}, c.Code.Original...) {
			if cd.Code == "" {
				continue
			}
			k := table.EquivalenceKey(cd.System, cd.Code)
			if _, seen := index[k]; seen {
				key = k // joins an existing concept through any of its codings
				break
			}
			if key == "" {
				key = k
			}
		}
		if key == "" {
			key = "#" + c.Source.Connection + "/" + c.Source.ID // uncoded: its own entry
		}
		i, seen := index[key]
		if !seen {
			i = len(out)
			index[key] = i
			out = append(out, MergedCondition{Code: c.Code})
		}
		m := &out[i]
		m.Sources = append(m.Sources, c)
		m.Active = m.Active || c.Active
		if m.Code.System != terminology.SystemSNOMED && c.Code.System == terminology.SystemSNOMED {
			m.Code = c.Code
		}
		for _, g := range c.Groups {
			if !contains(m.Groups, g) {
				m.Groups = append(m.Groups, g)
			}
		}
		if c.Onset != "" && (m.Onset == "" || c.Onset < m.Onset) {
			m.Onset = c.Onset
		}
	}
	for i := range out {
		sortStrings(out[i].Groups)
	}
	return out
}
