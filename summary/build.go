package summary

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"ehrgate/normalize"
	"ehrgate/store"
)

// Reader is what Build reads: a patient's current records by type and its
// fetch states (a store.Reader).
type Reader interface {
	Get(ctx context.Context, connection, typ, id string) (store.Record, error)
	ListByPatient(ctx context.Context, connection, patientID, typ string) ([]store.Record, error)
	FetchStates(ctx context.Context, connection, patientID string) ([]store.FetchState, error)
}

// Member is one (connection, patient) pair of the summarized person.
type Member struct {
	Connection string
	PatientID  string
}

// Options tune Build.
type Options struct {
	// Now is the clock (AsOf); nil means time.Now.
	Now func() time.Time
	// Person is identity's person id, recorded in the summary.
	Person string
	// Withheld are resource types the caller may not read: their sections
	// say so and nothing of them is read.
	Withheld map[string]bool
	// Keep, when set, filters records the caller may not see.
	Keep func(*store.Record) bool
	// MaxResults caps the vital-sign and lab codes listed each (default
	// 40); MaxEncounters the encounters (default 10).
	MaxResults, MaxEncounters int
}

// Section types, in the order the fetch states name them.
const (
	typeCondition  = "Condition"
	typeMedication = "MedicationRequest"
	typeAllergy    = "AllergyIntolerance"
	typeObs        = "Observation"
	typeEncounter  = "Encounter"
)

// Build reads the members' records and builds their summary. Members are
// read, and sources cited, in order of connection then patient id; the
// first member's wording of a fact shared by several is kept. A store
// error ends the build.
func Build(ctx context.Context, r Reader, members []Member, o Options) (*Summary, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("summary: no patient")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxResults <= 0 {
		o.MaxResults = 40
	}
	if o.MaxEncounters <= 0 {
		o.MaxEncounters = 10
	}
	// Sorted, so that the output does not depend on the order a caller
	// (or identity, as records arrive) lists the members in.
	members = slices.Clone(members)
	slices.SortFunc(members, func(x, y Member) int {
		return cmp.Or(strings.Compare(x.Connection, y.Connection), strings.Compare(x.PatientID, y.PatientID))
	})
	b := &builder{ctx: ctx, r: r, o: o}
	s := &Summary{Person: o.Person, AsOf: o.Now().UTC().Format(time.DateOnly)}
	for _, m := range members {
		if err := b.member(s, m); err != nil {
			return nil, err
		}
	}
	b.finish(s)
	return s, nil
}

type builder struct {
	ctx context.Context
	r   Reader
	o   Options
	// per-section accumulators
	problems  []Problem
	meds      []Medication
	inactive  int
	allergies []Allergy
	vitals    []obsPoint
	labs      []obsPoint
	encs      []Encounter
}

type obsPoint struct {
	key  string // code identity
	name string
	code Code
	at   string
	p    Point
}

func (b *builder) list(m Member, typ string) ([]store.Record, error) {
	if b.o.Withheld[typ] {
		return nil, nil
	}
	recs, err := b.r.ListByPatient(b.ctx, m.Connection, m.PatientID, typ)
	if err != nil {
		return nil, fmt.Errorf("summary: listing %s: %w", typ, err)
	}
	if b.o.Keep != nil {
		recs = slices.DeleteFunc(recs, func(r store.Record) bool { return !b.o.Keep(&r) })
	}
	slices.SortFunc(recs, func(x, y store.Record) int { return strings.Compare(x.ID, y.ID) })
	return recs, nil
}

// each decodes the normalized form of every record; records whose form
// cannot be read are skipped.
func each[T any](recs []store.Record, f func(store.Record, *T)) {
	for _, rec := range recs {
		var v T
		if json.Unmarshal(rec.Normalized, &v) != nil {
			continue
		}
		f(rec, &v)
	}
}

func src(rec store.Record, date string) Source {
	return Source{Connection: rec.Connection, Type: rec.Type, ID: rec.ID, Date: day(date)}
}

// day is the date part of a FHIR date or dateTime.
func day(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func code(c normalize.Concept) Code { return Code{System: c.System, Code: c.Code} }

// conceptKey identifies a concept for de-duplication: its chosen code,
// else its label, lower case.
func conceptKey(c normalize.Concept) string {
	if c.Code != "" {
		return c.System + "|" + c.Code
	}
	return "text|" + strings.ToLower(strings.TrimSpace(c.Label()))
}

func (b *builder) member(s *Summary, m Member) error {
	pat, err := b.r.Get(b.ctx, m.Connection, "Patient", m.PatientID)
	if err == nil {
		var p normalize.Patient
		if json.Unmarshal(pat.Normalized, &p) == nil {
			if s.Patient.Gender == "" {
				s.Patient.Gender = p.Gender
			}
			if s.Patient.BirthDate == "" {
				s.Patient.BirthDate = p.BirthDate
			}
			s.Patient.Deceased = s.Patient.Deceased || p.Deceased
		}
		s.Patient.Sources = append(s.Patient.Sources, Source{Connection: m.Connection, Type: "Patient", ID: m.PatientID})
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("summary: reading the patient: %w", err)
	}
	states, err := b.r.FetchStates(b.ctx, m.Connection, m.PatientID)
	if err != nil {
		return fmt.Errorf("summary: reading fetch states: %w", err)
	}

	// Problems.
	recs, err := b.list(m, typeCondition)
	if err != nil {
		return err
	}
	n := 0
	each(recs, func(rec store.Record, c *normalize.Condition) {
		if c.VerificationStatus == "entered-in-error" || c.VerificationStatus == "refuted" {
			return
		}
		n++
		s := src(rec, cmp.Or(c.Onset, c.Recorded))
		k := conceptKey(c.Code)
		for i := range b.problems {
			if p := &b.problems[i]; problemKey(*p) == k {
				p.Active = p.Active || c.Active
				if c.Active {
					p.Status = c.ClinicalStatus
				}
				if c.Onset != "" && (p.Onset == "" || day(c.Onset) < p.Onset) {
					p.Onset = day(c.Onset)
				}
				p.Sources = append(p.Sources, s)
				return
			}
		}
		b.problems = append(b.problems, Problem{Text: c.Code.Label(), Code: code(c.Code), Active: c.Active,
			Status: c.ClinicalStatus, Onset: day(c.Onset), Sources: []Source{s}})
	})
	s.Problems.Coverage = append(s.Problems.Coverage, coverage(m.Connection, states, typeCondition, "", n, b.o.Withheld))

	// Medications: active orders only.
	if recs, err = b.list(m, typeMedication); err != nil {
		return err
	}
	n = 0
	each(recs, func(rec store.Record, mr *normalize.MedicationRequest) {
		n++
		if !mr.Active {
			b.inactive++
			return
		}
		s := src(rec, mr.AuthoredOn)
		k := conceptKey(mr.Medication) + "@" + day(mr.AuthoredOn)
		for i := range b.meds {
			if x := &b.meds[i]; medKey(*x) == k {
				x.Sources = append(x.Sources, s)
				if x.Stale && !mr.Stale { // one fresh source is enough
					x.Stale, x.StaleReason = false, ""
				}
				return
			}
		}
		b.meds = append(b.meds, Medication{Text: mr.Medication.Label(), Code: code(mr.Medication), Status: mr.Status,
			Dosage: mr.Dosage, AuthoredOn: day(mr.AuthoredOn), Stale: mr.Stale, StaleReason: mr.StaleReason, Sources: []Source{s}})
	})
	s.Medications.Coverage = append(s.Medications.Coverage, coverage(m.Connection, states, typeMedication, "", n, b.o.Withheld))

	// Allergies.
	if recs, err = b.list(m, typeAllergy); err != nil {
		return err
	}
	n = 0
	each(recs, func(rec store.Record, a *normalize.AllergyIntolerance) {
		if a.VerificationStatus == "entered-in-error" || a.VerificationStatus == "refuted" {
			return
		}
		n++
		s := src(rec, a.Recorded)
		k := conceptKey(a.Substance)
		for i := range b.allergies {
			if x := &b.allergies[i]; allergyKey(*x) == k {
				x.Active = x.Active || a.Active
				x.Criticality = cmp.Or(x.Criticality, a.Criticality)
				for _, r := range a.Reactions {
					if !slices.Contains(x.Reactions, r) {
						x.Reactions = append(x.Reactions, r)
					}
				}
				x.Sources = append(x.Sources, s)
				return
			}
		}
		b.allergies = append(b.allergies, Allergy{Substance: a.Substance.Label(), Code: code(a.Substance), Active: a.Active,
			Status: a.ClinicalStatus, Criticality: a.Criticality, Reactions: slices.Clone(a.Reactions), Sources: []Source{s}})
	})
	s.Allergies.Coverage = append(s.Allergies.Coverage, coverage(m.Connection, states, typeAllergy, "", n, b.o.Withheld))

	// Vital signs and labs.
	if recs, err = b.list(m, typeObs); err != nil {
		return err
	}
	nv, nl := 0, 0
	each(recs, func(rec store.Record, o *normalize.Observation) {
		if o.Status == "entered-in-error" || o.Status == "cancelled" {
			return
		}
		vital, lab := slices.Contains(o.Category, "vital-signs"), slices.Contains(o.Category, "laboratory")
		if !vital && !lab {
			return
		}
		p, ok := point(o)
		if !ok {
			return
		}
		p.Sources = []Source{src(rec, o.Effective)}
		op := obsPoint{key: conceptKey(o.Code), name: o.Code.Label(), code: code(o.Code), at: o.Effective, p: p}
		if vital {
			nv++
			b.vitals = append(b.vitals, op)
		} else {
			nl++
			b.labs = append(b.labs, op)
		}
	})
	s.Vitals.Coverage = append(s.Vitals.Coverage, coverage(m.Connection, states, typeObs, "vital-signs", nv, b.o.Withheld))
	s.Labs.Coverage = append(s.Labs.Coverage, coverage(m.Connection, states, typeObs, "laboratory", nl, b.o.Withheld))

	// Encounters.
	if recs, err = b.list(m, typeEncounter); err != nil {
		return err
	}
	n = 0
	each(recs, func(rec store.Record, e *normalize.Encounter) {
		if e.Status == "entered-in-error" || e.Status == "cancelled" {
			return
		}
		n++
		s := src(rec, e.Start)
		x := Encounter{Start: e.Start, End: e.End, Class: e.Class, Type: e.Type.Label(), Status: e.Status, Sources: []Source{s}}
		for i := range b.encs {
			if y := &b.encs[i]; y.Start == x.Start && y.Class == x.Class && y.Type == x.Type && x.Start != "" {
				y.Sources = append(y.Sources, s)
				return
			}
		}
		b.encs = append(b.encs, x)
	})
	s.Encounters.Coverage = append(s.Encounters.Coverage, coverage(m.Connection, states, typeEncounter, "", n, b.o.Withheld))
	return nil
}

func problemKey(p Problem) string {
	return conceptKey(normalize.Concept{System: p.Code.System, Code: p.Code.Code, Text: p.Text})
}

func medKey(m Medication) string {
	return conceptKey(normalize.Concept{System: m.Code.System, Code: m.Code.Code, Text: m.Text}) + "@" + m.AuthoredOn
}

func allergyKey(a Allergy) string {
	return conceptKey(normalize.Concept{System: a.Code.System, Code: a.Code.Code, Text: a.Substance})
}

// point reads an observation's value; ok is false when it has none to show.
func point(o *normalize.Observation) (Point, bool) {
	p := Point{Date: o.Effective, Flag: o.Interpretation}
	if bp := o.BloodPressure; bp != nil && bp.Systolic != nil && bp.Diastolic != nil &&
		bp.Systolic.Number != nil && bp.Diastolic.Number != nil {
		p.Value = num(*bp.Systolic.Number) + "/" + num(*bp.Diastolic.Number) + " " + cmp.Or(bp.Systolic.UnitCode, bp.Systolic.Unit, "mm[Hg]")
		p.Number, p.Unit = bp.Systolic.Number, "mm[Hg] systolic"
		p.Systolic, p.Diastolic = bp.Systolic.Number, bp.Diastolic.Number
		p.Quantity = &Quantity{Unit: cmp.Or(bp.Systolic.UnitCode, "mm[Hg]"), UCUM: true}
		return p, true
	}
	v := o.Value
	if v == nil {
		return p, false
	}
	switch v.Kind {
	case "quantity", "integer":
		if v.Number == nil {
			return p, false
		}
		p.Value = v.Comparator + num(*v.Number)
		p.Quantity = &Quantity{Value: *v.Number, Comparator: v.Comparator, Unit: cmp.Or(v.UnitCode, v.Unit), UCUM: v.UnitCode != ""}
		if u := cmp.Or(v.Unit, v.UnitCode); u != "" {
			p.Value += " " + u
		}
		if v.Comparator == "" {
			if c := v.Canonical; c != nil {
				n := c.Number
				p.Number, p.Unit = &n, c.Unit
			} else {
				n := *v.Number
				p.Number, p.Unit = &n, cmp.Or(v.UnitCode, v.Unit)
			}
		}
	case "concept":
		if v.Concept == nil {
			return p, false
		}
		p.Value = v.Concept.Label()
	case "string":
		p.Value = v.Text
	case "boolean":
		if v.Bool == nil {
			return p, false
		}
		p.Value = strconv.FormatBool(*v.Bool)
	default:
		if v.Text == "" {
			return p, false
		}
		p.Value = v.Text
	}
	return p, p.Value != ""
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// coverage is one source's state for a section of type typ (and, for
// Observation, category), given how many of its items it holds. A fetch
// state's type may carry a category after "?", ":" or "/"
// ("Observation?category=laboratory"); an unqualified one covers every
// category.
func coverage(conn string, states []store.FetchState, typ, category string, items int, withheld map[string]bool) Coverage {
	c := Coverage{Connection: conn}
	if withheld[typ] {
		c.State = StateWithheld
		return c
	}
	var failed, notAvail *store.FetchState
	available := false
	for i, st := range states {
		base, qual := st.Type, ""
		if j := strings.IndexAny(st.Type, "?:/"); j >= 0 {
			base, qual = st.Type[:j], st.Type[j+1:]
		}
		if base != typ || (qual != "" && category != "" && !strings.Contains(qual, category)) {
			continue
		}
		switch st.Availability {
		case store.Failed:
			failed = &states[i]
		case store.NotAvailable:
			notAvail = &states[i]
		default:
			available = true
		}
	}
	switch {
	case items > 0:
		c.State = StateData
		if failed != nil {
			c.FetchError = cmp.Or(failed.Detail, "no detail given")
		}
	case failed != nil:
		c.State, c.Detail = StateFailed, failed.Detail
	case available:
		c.State = StateNone
	case notAvail != nil:
		c.State, c.Detail = StateNotAvailable, notAvail.Detail
	default:
		c.State = StateNotFetched
	}
	return c
}

// sectionState is StateData when there are items, else the sources'
// common state, else StateMixed.
func sectionState(items int, cov []Coverage) string {
	if items > 0 {
		return StateData
	}
	st := ""
	for _, c := range cov {
		switch {
		case st == "":
			st = c.State
		case st != c.State:
			return StateMixed
		}
	}
	return cmp.Or(st, StateNotFetched)
}

func (b *builder) finish(s *Summary) {
	// Problems: active first, then by onset (latest first), then text.
	slices.SortStableFunc(b.problems, func(x, y Problem) int {
		if x.Active != y.Active {
			if x.Active {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(y.Onset, x.Onset), strings.Compare(x.Text, y.Text))
	})
	s.Problems.Items = b.problems
	s.Problems.State = sectionState(len(b.problems), s.Problems.Coverage)

	// Medications: fresh before stale, latest first.
	slices.SortStableFunc(b.meds, func(x, y Medication) int {
		if x.Stale != y.Stale {
			if y.Stale {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(y.AuthoredOn, x.AuthoredOn), strings.Compare(x.Text, y.Text))
	})
	s.Medications.Items = b.meds
	s.Medications.Limited = b.inactive
	s.Medications.State = sectionState(len(b.meds), s.Medications.Coverage)

	slices.SortStableFunc(b.allergies, func(x, y Allergy) int {
		if x.Active != y.Active {
			if x.Active {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Substance, y.Substance)
	})
	s.Allergies.Items = b.allergies
	s.Allergies.State = sectionState(len(b.allergies), s.Allergies.Coverage)

	s.Vitals.Items, s.Vitals.Limited = results(b.vitals, b.o.MaxResults)
	s.Vitals.State = sectionState(len(s.Vitals.Items), s.Vitals.Coverage)
	s.Labs.Items, s.Labs.Limited = results(b.labs, b.o.MaxResults)
	s.Labs.State = sectionState(len(s.Labs.Items), s.Labs.Coverage)

	slices.SortStableFunc(b.encs, func(x, y Encounter) int {
		return cmp.Or(strings.Compare(y.Start, x.Start), strings.Compare(x.Sources[0].ID, y.Sources[0].ID))
	})
	if len(b.encs) > b.o.MaxEncounters {
		s.Encounters.Limited = len(b.encs) - b.o.MaxEncounters
		b.encs = b.encs[:b.o.MaxEncounters]
	}
	s.Encounters.Items = b.encs
	s.Encounters.State = sectionState(len(b.encs), s.Encounters.Coverage)
}

// results groups points by code, merges the same result from two sources
// (same code, time and value), and keeps the last and previous of each
// code, the most recently measured codes first, at most max.
func results(pts []obsPoint, max int) ([]Result, int) {
	slices.SortStableFunc(pts, func(x, y obsPoint) int {
		return cmp.Or(strings.Compare(x.key, y.key), strings.Compare(instant(y.at), instant(x.at)))
	})
	var out []Result
	for i := 0; i < len(pts); {
		j := i
		var uniq []Point
		for ; j < len(pts) && pts[j].key == pts[i].key; j++ {
			p := pts[j].p
			if k := len(uniq) - 1; k >= 0 && instant(uniq[k].Date) == instant(p.Date) && uniq[k].Value == p.Value {
				uniq[k].Sources = append(uniq[k].Sources, p.Sources...)
				continue
			}
			uniq = append(uniq, p)
		}
		r := Result{Name: pts[i].name, Code: pts[i].code, Last: uniq[0], Count: len(uniq)}
		if len(uniq) > 1 {
			prev := uniq[1]
			r.Previous = &prev
			r.Trend = trend(r.Last, prev)
		}
		out = append(out, r)
		i = j
	}
	slices.SortStableFunc(out, func(x, y Result) int {
		return cmp.Or(strings.Compare(instant(y.Last.Date), instant(x.Last.Date)), strings.Compare(x.Name, y.Name))
	})
	if len(out) > max {
		return out[:max], len(out) - max
	}
	return out, 0
}

// instant normalizes a FHIR dateTime for comparison: UTC to the second
// when it parses, else as given.
func instant(s string) string {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Format("2006-01-02T15:04:05Z")
	}
	return s
}

func trend(last, prev Point) string {
	if last.Number == nil || prev.Number == nil || last.Unit != prev.Unit {
		return ""
	}
	switch {
	case *last.Number > *prev.Number:
		return "up"
	case *last.Number < *prev.Number:
		return "down"
	}
	return "same"
}
