package ehrsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// ChangeOptions configure the change feed (RunChanges): the simulated
// hospital admitting patients, resulting labs and prescribing.
type ChangeOptions struct {
	Changes int     // how many changes; required
	Rate    float64 // changes per second; 0 = as fast as they can be made
	Seed    uint64  // the same seed makes the same changes
	// Base is the FHIR base named in id-only notifications (the server's
	// URL + "/fhir").
	Base string
}

// ChangeStats say what a change feed did.
type ChangeStats struct {
	Changes int            // changes made
	ByKind  map[string]int // admit, result, prescribe, amend
}

// admitted returns the feed's latest admission of patient (its results
// and prescriptions name it as their encounter, across runs), after
// setting it to id when id is not "".
func (s *Server) admitted(patient, id string) string {
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	if s.feedAdmitted == nil {
		s.feedAdmitted = map[string]string{}
	}
	if id != "" {
		s.feedAdmitted[patient] = id
	}
	return s.feedAdmitted[patient]
}

// RunChanges modifies the loaded patients' charts: each change creates an
// Encounter (admit), a lab Observation (result) or a MedicationRequest
// (prescribe), or amends one of the feed's earlier resources (a new
// version), and notifies the subscriptions it matches. It needs loaded
// Patients and stops early when ctx ends.
func (s *Server) RunChanges(ctx context.Context, o ChangeOptions) (ChangeStats, error) {
	st := ChangeStats{ByKind: map[string]int{}}
	patients := s.PatientIDs()
	if len(patients) == 0 {
		return st, errors.New("ehrsim: the change feed needs loaded patients")
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xc4a9))
	var made []string // "Type/id" of the feed's resources, for amends
	var tick *time.Ticker
	if o.Rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer tick.Stop()
	}
	for i := range o.Changes {
		if tick != nil {
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-tick.C:
			}
		} else if err := ctx.Err(); err != nil {
			return st, err
		}
		patient := patients[rng.IntN(len(patients))]
		now := s.opts.Clock().UTC().Format(time.RFC3339)
		enc := ""
		if id := s.admitted(patient, ""); id != "" {
			enc = fmt.Sprintf(`"encounter":{"reference":"Encounter/%s"},`, id)
		}
		var raw string
		kind := "amend"
		switch p := rng.IntN(100); {
		case p < 15 && len(made) > 0:
			raw = s.amended(made[rng.IntN(len(made))])
		case p < 40:
			kind = "admit"
			raw = fmt.Sprintf(`{"resourceType":"Encounter","id":"chg-%d","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP","display":"inpatient encounter"},"subject":{"reference":"Patient/%s"},"period":{"start":%q}}`,
				i, patient, now)
			s.admitted(patient, fmt.Sprintf("chg-%d", i))
		case p < 80:
			kind = "result"
			raw = fmt.Sprintf(`{"resourceType":"Observation","id":"chg-%d","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}]},"subject":{"reference":"Patient/%s"},%s"effectiveDateTime":%q,"valueQuantity":{"value":%d,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`,
				i, patient, enc, now, 70+rng.IntN(130))
		default:
			kind = "prescribe"
			raw = fmt.Sprintf(`{"resourceType":"MedicationRequest","id":"chg-%d","status":"active","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"860975","display":"metformin 500 MG Extended Release Oral Tablet"}]},"subject":{"reference":"Patient/%s"},%s"authoredOn":%q}`,
				i, patient, enc, now)
		}
		if raw == "" {
			continue
		}
		e, err := s.load(json.RawMessage(raw))
		if err != nil {
			return st, fmt.Errorf("ehrsim: change %d: %w", i, err)
		}
		if kind != "amend" {
			made = append(made, e.typ+"/"+e.id)
		}
		s.notifyChange(e, o.Base)
		st.Changes++
		st.ByKind[kind]++
	}
	return st, nil
}

// amended returns the next version of the feed's resource ref: a note
// added, an encounter finished.
func (s *Server) amended(ref string) string {
	typ, id, _ := strings.Cut(ref, "/")
	s.mu.RLock()
	e := s.ix.get(typ, id)
	s.mu.RUnlock()
	if e == nil {
		return ""
	}
	var doc map[string]any
	if json.Unmarshal(e.body, &doc) != nil {
		return ""
	}
	delete(doc, "meta")
	v, _ := strconv.Atoi(e.version)
	if e.typ == "Encounter" {
		doc["status"] = "finished"
		doc["period"] = map[string]string{"start": e.lastUpdated.Format(time.RFC3339), "end": s.opts.Clock().UTC().Format(time.RFC3339)}
	} else {
		doc["note"] = []map[string]string{{"text": "amended (" + strconv.Itoa(v+1) + ")"}}
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// ResourceVersions returns every resource's current version by "Type/id":
// what a complete copy of the simulator holds.
func (s *Server) ResourceVersions() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]string, len(s.ix.byKey))
	for k, e := range s.ix.byKey {
		out[k] = e.version
	}
	return out
}
