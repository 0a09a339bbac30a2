// Package synth generates deterministic synthetic FHIR R4 patients for
// tests, demos, the simulated EHR and bulk-export load.
//
// Each patient is a Patient resource followed by its Encounters, Conditions,
// Observations (vital signs, labs, social history, surveys),
// MedicationRequests, AllergyIntolerances, Immunizations, Procedures,
// DiagnosticReports and DocumentReferences, all as compact JSON. Content is
// US Core flavoured and uses real public codes (LOINC, SNOMED CT, ICD-10-CM,
// RxNorm, NDC, CVX, CPT, UCUM, OMB race and ethnicity); see catalog.go for
// where the code lists come from. The data is realistic in shape only; it
// describes no real person.
//
// # Determinism
//
// Patient i depends only on (Options.Seed, Options.Now, i): the same inputs
// give byte-identical output on every run, platform and Go release (the
// package carries its own random generator). Patients are independent, so a
// bulk export can stream any number of them in constant memory.
//
// # Identifiers
//
// Patient ids are "p" plus the zero-padded index ("p00042"); every other
// resource id is the patient id, a type tag and a counter
// ("p00042-obs-017"), so ids are unique across a dataset and at most 64
// characters of [A-Za-z0-9-]. Ids do not depend on the seed.
//
// # Messy data on purpose
//
// Ordinary patients carry the irregularities real EHR data has: some
// conditions coded in ICD-10-CM only or SNOMED CT only, and in some patients
// the same problem recorded twice (once ICD-10-CM only, once SNOMED CT only);
// labs that are locally coded (system http://hospital.example.org/lab-codes,
// no LOINC) or carry only code.text; glucose in mg/dL or mmol/L, temperature
// in Cel or [degF], weight in kg or [lb_av], height in cm or [in_i];
// NDC-only medication orders; "active" orders authored more than two years
// before Now; race recorded as ASKU; an in-progress encounter.
//
// # Edge-case patients
//
// When Options.Patients is large enough, these indices are fixed edge cases:
//
//   - 0: an ordinary, rich patient (hypertension, type 2 diabetes,
//     hyperlipidemia, allergies, recent labs): the demo patient.
//   - 1: a patient with no Condition resources at all.
//   - 2: a patient with more than 200 MedicationRequests (monthly refills of
//     chronic medications over several years).
//   - 3: a patient with no laboratory Observations in the two years before
//     Now (older labs exist).
//   - 4: a patient with, besides any coded allergies, a drug allergy recorded
//     as text only ("Keflex", no coding), as clinicians type one
//     when the allergen is not in the pick list: a drug-allergy check
//     cannot code it and must say so.
//
// Every patient has at least one Encounter and one vital-sign Observation.
package synth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// anchor is the reference "today" used when Options.Now is zero
// (2026-06-30T12:00:00Z). Generator.Now reports it.
var anchor = time.Date(2026, time.June, 30, 12, 0, 0, 0, time.UTC)

// Edge-case patient indices; see the package documentation.
const (
	// IndexDemo is an ordinary, rich patient suited to demos.
	IndexDemo = 0
	// IndexNoConditions is a patient without any Condition.
	IndexNoConditions = 1
	// IndexManyMeds is a patient with more than 200 MedicationRequests.
	IndexManyMeds = 2
	// IndexNoRecentLabs is a patient without laboratory Observations in the
	// two years before Now.
	IndexNoRecentLabs = 3
	// IndexTextAllergy is a patient with a drug allergy recorded as text
	// only.
	IndexTextAllergy = 4
)

// ResourceTypes lists the resource types the generator emits, in the order
// they appear within each patient.
var ResourceTypes = []string{
	"Patient", "Encounter", "Condition", "Observation", "MedicationRequest",
	"AllergyIntolerance", "Immunization", "Procedure", "DiagnosticReport",
	"DocumentReference",
}

// Options configures a Generator.
type Options struct {
	// Patients is the number of patients in the dataset.
	Patients int
	// Seed selects the dataset: the same seed and options give
	// byte-identical output.
	Seed int64
	// Now is the reference "today"; every date is on or before it. Zero
	// means 2026-06-30T12:00:00Z (never the wall clock, so output stays deterministic).
	Now time.Time
}

// Generator produces a synthetic dataset. It holds no mutable state, so its
// methods are safe for concurrent use.
type Generator struct {
	opts Options
	now  time.Time
}

// New returns a generator for opts.
func New(opts Options) *Generator {
	now := opts.Now
	if now.IsZero() {
		now = anchor
	}
	now = now.UTC().Truncate(time.Second)
	if opts.Patients < 0 {
		opts.Patients = 0
	}
	return &Generator{opts: opts, now: now}
}

// Now returns the reference time the generator uses.
func (g *Generator) Now() time.Time { return g.now }

// Patients returns the number of patients in the dataset.
func (g *Generator) Patients() int { return g.opts.Patients }

// PatientID returns the FHIR id of patient i.
func (g *Generator) PatientID(i int) string { return patientID(i) }

func patientID(i int) string {
	s := strconv.Itoa(i)
	if len(s) < 5 {
		s = "00000"[len(s):] + s
	}
	return "p" + s
}

// Resource is one generated resource with its type.
type Resource struct {
	// Type is the FHIR resourceType, e.g. "Observation".
	Type string
	// JSON is the resource as compact JSON.
	JSON json.RawMessage
}

// Resources returns every resource of patient i with its type, Patient
// first. The JSON slices do not share memory the caller could overwrite.
func (g *Generator) Resources(i int) []Resource {
	return newPatientGen(g.opts.Seed, g.now, i).generate()
}

// Patient returns every resource of patient i (0 <= i < Patients), Patient
// resource first, as compact JSON. It depends only on (Seed, Now, i); i is
// not checked against Patients, so any non-negative index yields a patient.
func (g *Generator) Patient(i int) []json.RawMessage {
	rs := g.Resources(i)
	out := make([]json.RawMessage, len(rs))
	for k, r := range rs {
		out[k] = r.JSON
	}
	return out
}

// Each calls fn for every resource of every patient in order; it stops at
// and returns the first error fn returns.
func (g *Generator) Each(fn func(resourceType string, raw json.RawMessage) error) error {
	for i := 0; i < g.opts.Patients; i++ {
		for _, r := range g.Resources(i) {
			if err := fn(r.Type, r.JSON); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteNDJSON writes one <ResourceType>.ndjson file per resource type into
// dir (created if needed) and returns the number of resources per type.
// Existing files of those names are replaced.
func (g *Generator) WriteNDJSON(dir string) (counts map[string]int, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating ndjson directory: %w", err)
	}
	type sink struct {
		f *os.File
		w *bufio.Writer
	}
	sinks := map[string]*sink{}
	defer func() {
		for _, typ := range ResourceTypes { // fixed order keeps errors deterministic
			s, ok := sinks[typ]
			if !ok {
				continue
			}
			if ferr := s.w.Flush(); ferr != nil && err == nil {
				err = fmt.Errorf("writing %s.ndjson: %w", typ, ferr)
			}
			if cerr := s.f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing %s.ndjson: %w", typ, cerr)
			}
		}
		if err != nil {
			counts = nil
		}
	}()
	counts = map[string]int{}
	err = g.Each(func(typ string, raw json.RawMessage) error {
		s, ok := sinks[typ]
		if !ok {
			f, err := os.Create(filepath.Join(dir, typ+".ndjson"))
			if err != nil {
				return fmt.Errorf("creating %s.ndjson: %w", typ, err)
			}
			s = &sink{f: f, w: bufio.NewWriterSize(f, 256<<10)}
			sinks[typ] = s
		}
		if _, err := s.w.Write(raw); err != nil {
			return fmt.Errorf("writing %s.ndjson: %w", typ, err)
		}
		if err := s.w.WriteByte('\n'); err != nil {
			return fmt.Errorf("writing %s.ndjson: %w", typ, err)
		}
		counts[typ]++
		return nil
	})
	return counts, err
}
