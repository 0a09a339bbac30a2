package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"ehrgate/audit"
	"ehrgate/normalize"
	"ehrgate/store"
)

// Section states, also used as CSS classes.
const (
	stateData         = "data"          // items to show
	stateNone         = "none"          // fetched, available, nothing recorded
	stateNotAvailable = "not-available" // the source does not expose the type
	stateFailed       = "failed"        // the last fetch failed
	stateNotFetched   = "not-fetched"   // no fetch state at all
	stateStoreError   = "store-error"   // the store could not be read
)

// Row limits per section.
const (
	labLimit       = 20
	encounterLimit = 10
	otherLimit     = 20
)

// cell is one table cell: a main text, an optional muted note under it and
// an optional badge. Alert makes the badge stand out.
type cell struct {
	Text  string
	Note  string
	Badge string
	Alert bool
	Date  bool // keep on one line
}

// source names the fetch states a section depends on: a resource type and,
// for Observation, the category the section shows.
type source struct {
	Type     string
	Category string
}

// section is one part of the chart.
type section struct {
	ID      string
	Title   string
	Sources []source
	Columns []string
	Rows    [][]cell
	Hidden  []string // e.g. "3 inactive problems not shown"

	State      string
	Detail     string    // user-safe detail from the fetch state
	Fetched    time.Time // latest fetch of any source; zero when none
	FetchError string    // set when data is shown but the latest fetch failed
	Ref        string    // error reference for stateStoreError
	Bad        int       // records that could not be decoded
}

// banner is the patient header.
type banner struct {
	Name       string
	MRN        string
	BirthDate  string
	Age        string
	Gender     string
	Language   string
	Deceased   bool
	Connection string
	ID         string
	Status     *ConnectionStatus // the connection's status when known and not ok
	// Identity lists what the source said in extensions: US Core race,
	// ethnicity, birth sex, gender identity, sex, tribal affiliation and
	// interpreter need, then the vendor's documented extensions.
	Identity []fact
}

// fact is one labelled value of the patient header; Source names the
// extension's definer when it is not US Core.
type fact struct {
	Label, Value, Source string
}

// birthSexNames are the codes of the US Core birth sex value set
// (https://hl7.org/fhir/us/core/STU6.1/ValueSet-birthsex.html).
var birthSexNames = map[string]string{"F": "Female", "M": "Male", "UNK": "Unknown", "OTH": "Other", "ASKU": "Asked but unknown"}

// headerFacts lists the patient's extension-borne facts for the header.
func headerFacts(p *normalize.Patient) []fact {
	var out []fact
	add := func(label, value, source string) {
		if value != "" {
			out = append(out, fact{Label: label, Value: value, Source: source})
		}
	}
	add("Race", p.Race, "")
	add("Ethnicity", p.Ethnicity, "")
	add("Birth sex", cmp.Or(birthSexNames[p.BirthSex], p.BirthSex), "")
	add("Sex", p.Sex, "")
	add("Gender identity", p.GenderIdentity, "")
	add("Tribal affiliation", strings.Join(p.TribalAffiliation, ", "), "")
	add("Interpreter needed", p.InterpreterNeeded, "")
	for _, e := range p.Extensions {
		src := e.Source
		if src == "US Core" {
			src = ""
		}
		add(cmp.Or(e.Label, e.Name), e.Value, src)
	}
	return out
}

// chartBody is the data of the chart page.
type chartBody struct {
	Launched  bool   // opened by a SMART launch from the EHR: the patient in context
	Merged    string // the merged chart's address ("" when identity pages are not served)
	Patient   banner
	Sections  []*section
	Trends    *trendsView // plots and timelines; nil when nothing to plot
	StatesRef string      // set when fetch states could not be read
}

func (d *Dashboard) chart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	conn, id := r.PathValue("connection"), r.PathValue("id")
	rec, err := d.r.Get(ctx, conn, "Patient", id)
	if errors.Is(err, store.ErrNotFound) {
		d.render(w, r, http.StatusNotFound, "error", "Patient not found", errorBody{
			Status:  http.StatusNotFound,
			Heading: "Patient not found",
			Message: "No patient with this identifier is stored for this connection. It may not have been synchronised yet.",
		})
		return
	}
	if err != nil {
		d.fail(w, r, "reading patient", err)
		return
	}
	if !d.recordAccess(w, r, audit.Read(audit.Agent{}, audit.PatientRef{Connection: conn, ID: id},
		audit.ResourceRef{Connection: conn, Type: "Patient", ID: id})) {
		return
	}
	body := chartBody{Patient: d.banner(ctx, rec), Launched: r.URL.Query().Get("launched") == "1"}
	if d.merged {
		body.Merged = "/persons/" + url.PathEscape(conn) + "/" + url.PathEscape(id)
	}
	states, err := d.r.FetchStates(ctx, conn, id)
	if err != nil {
		body.StatesRef = d.reference(ctx)
		d.log.ErrorContext(ctx, "dashboard: reading fetch states", "err", err, "ref", body.StatesRef,
			"connection", conn, "patient", id)
	}
	c := chartLoader{d: d, ctx: ctx, conn: conn, id: id, states: states, statesOK: err == nil}
	body.Sections = []*section{
		c.problems(), c.medications(), c.allergies(),
	}
	vitals, labs := c.observations()
	body.Sections = append(body.Sections, vitals, labs,
		c.encounters(), c.immunizations(), c.procedures(), c.reports(), c.documents())
	since, span := trendSince(r.URL.Query().Get("span"), d.now())
	if t := buildTrends(c.obs, c.meds, c.encs, vitals.Fetched, since); !t.Empty || t.Earlier > 0 {
		t.Spans = spanLinks(chartURL(conn, id), span)
		t.render(d.now())
		body.Trends = t
	}
	d.render(w, r, http.StatusOK, "chart", body.Patient.Name, body)
}

// banner builds the patient header from the Patient record.
func (d *Dashboard) banner(ctx context.Context, rec store.Record) banner {
	var p normalize.Patient
	if err := json.Unmarshal(rec.Normalized, &p); err != nil {
		d.log.WarnContext(ctx, "dashboard: decoding normalized patient", "err", err,
			"connection", rec.Connection, "id", rec.ID)
	}
	b := banner{
		Name: p.Name, MRN: p.MRN, BirthDate: p.BirthDate, Gender: capitalize(p.Gender),
		Language: p.Language, Deceased: p.Deceased, Connection: rec.Connection, ID: rec.ID,
		Age: age(p.BirthDate, d.now()), Identity: headerFacts(&p),
	}
	if b.Name == "" {
		b.Name = strings.TrimSpace(strings.Join(append(slices.Clone(p.Given), p.Family), " "))
	}
	if k := rec.Patient; k != nil {
		if b.Name == "" && len(k.Names) > 0 {
			b.Name = k.Names[0]
		}
		if b.MRN == "" && len(k.MRNs) > 0 {
			b.MRN = k.MRNs[0]
		}
	}
	if b.Name == "" {
		b.Name = "(no name recorded)"
	}
	for _, s := range d.statuses(ctx) {
		if s.Name == rec.Connection && !s.OK() {
			b.Status = &s
			break
		}
	}
	return b
}

// chartLoader reads and decodes one patient's resources for the sections.
type chartLoader struct {
	d        *Dashboard
	ctx      context.Context
	conn, id string
	states   []store.FetchState
	statesOK bool
	// What the trends plot, kept as the sections read it.
	obs  []obsRec
	meds []normalize.MedicationRequest
	encs []normalize.Encounter
}

// list reads the current records of one type; on a store failure it marks
// every given section as such and returns nil.
func (c *chartLoader) list(typ string, secs ...*section) []store.Record {
	recs, err := c.d.r.ListByPatient(c.ctx, c.conn, c.id, typ)
	if err != nil {
		ref := c.d.reference(c.ctx)
		c.d.log.ErrorContext(c.ctx, "dashboard: listing resources", "err", err, "ref", ref,
			"connection", c.conn, "patient", c.id, "type", typ)
		for _, s := range secs {
			s.State, s.Ref = stateStoreError, ref
		}
		return nil
	}
	return recs
}

// decode unmarshals each record's normalized form, logging and counting
// those that cannot be read.
func decode[T any](c *chartLoader, s *section, recs []store.Record) []T {
	out := make([]T, 0, len(recs))
	for _, rec := range recs {
		var v T
		if err := unmarshal(rec.Normalized, &v); err != nil {
			c.d.log.WarnContext(c.ctx, "dashboard: decoding normalized resource", "err", err,
				"connection", rec.Connection, "type", rec.Type, "id", rec.ID)
			s.Bad++
			continue
		}
		out = append(out, v)
	}
	return out
}

// unmarshal decodes a record's normalized JSON into v (a pointer to a zero
// value) with go-json-experiment's encoding/json v1 emulation, about twice
// as fast (a chart decodes thousands of records; normalize decodes raw
// resources the same way), and, when that fails, again with encoding/json,
// whose outcome and error are then those reported.
func unmarshal[T any](b []byte, v *T) error {
	if err := jsonv1.Unmarshal(b, v); err != nil {
		var zero T
		*v = zero
		return json.Unmarshal(b, v)
	}
	return nil
}

// finish sets the section's state from its rows and fetch states.
func (c *chartLoader) finish(s *section) *section {
	if s.State == stateStoreError {
		return s
	}
	var matched []store.FetchState
	for _, st := range c.states {
		if slices.ContainsFunc(s.Sources, func(src source) bool { return src.matches(st.Type) }) {
			matched = append(matched, st)
		}
	}
	var failed, notAvail *store.FetchState
	available := false
	for i, st := range matched {
		if st.FetchedAt.After(s.Fetched) {
			s.Fetched = st.FetchedAt
		}
		switch st.Availability {
		case store.Failed:
			failed = &matched[i]
		case store.NotAvailable:
			notAvail = &matched[i]
		default:
			available = true
		}
	}
	switch {
	case len(s.Rows) > 0:
		s.State = stateData
		if failed != nil {
			s.FetchError = failed.Detail
			if s.FetchError == "" {
				s.FetchError = "no detail given"
			}
		}
	case failed != nil:
		s.State, s.Detail = stateFailed, failed.Detail
	case available:
		s.State = stateNone
	case notAvail != nil:
		s.State, s.Detail = stateNotAvailable, notAvail.Detail
	default:
		s.State = stateNotFetched
	}
	return s
}

// matches reports whether a fetch state of type typ covers this source.
// A state's type is a resource type, optionally qualified by a category
// after "?", ":" or "/" (as in "Observation?category=laboratory"); an
// unqualified state covers every category.
func (src source) matches(typ string) bool {
	base, qual := typ, ""
	if i := strings.IndexAny(typ, "?:/"); i >= 0 {
		base, qual = typ[:i], typ[i+1:]
	}
	if base != src.Type {
		return false
	}
	return qual == "" || src.Category == "" || strings.Contains(qual, src.Category)
}

// limit keeps the first n rows and notes how many were left out.
func (s *section) limit(n int, what string) {
	if len(s.Rows) > n {
		s.Hidden = append(s.Hidden, plural(len(s.Rows)-n, "more "+what, "more "+what+"s")+" not shown")
		s.Rows = s.Rows[:n]
	}
}

// codeCell shows a concept's label with its system and code as a note.
func codeCell(c normalize.Concept) cell {
	out := cell{Text: c.Label()}
	if out.Text == "" {
		out.Text = "(no description)"
	}
	if c.Code != "" && c.Code != out.Text {
		out.Note = strings.TrimSpace(systemName(c.System) + " " + c.Code)
	}
	return out
}

func (c *chartLoader) problems() *section {
	s := &section{ID: "problems", Title: "Active problems", Sources: []source{{Type: "Condition"}},
		Columns: []string{"Problem", "Onset", "Status"}}
	all := decode[normalize.Condition](c, s, c.list("Condition", s))
	inactive := 0
	sortNewest(all, func(x *normalize.Condition) string { return x.Onset })
	var active []*normalize.Condition
	for i := range all {
		if !all[i].Active {
			inactive++
			continue
		}
		active = append(active, &all[i])
	}
	// One row per concept: the same problem coded differently (SNOMED CT
	// and ICD-10-CM) is merged, keeping its sources.
	for _, m := range normalize.MergeConditions(active) {
		p := m.Sources[0]
		status := cell{Text: capitalize(p.ClinicalStatus)}
		if p.VerificationStatus != "" && p.VerificationStatus != "confirmed" {
			status.Badge = capitalize(p.VerificationStatus)
		}
		code := codeCell(m.Code)
		if n := len(m.Sources) - 1; n > 0 {
			code.Note = strings.TrimSpace(code.Note + " · " + plural(n, "duplicate entry merged", "duplicate entries merged"))
		}
		s.Rows = append(s.Rows, []cell{code, {Date: true, Text: displayDate(m.Onset)}, status})
	}
	if inactive > 0 {
		s.Hidden = append(s.Hidden, plural(inactive, "inactive or resolved problem", "inactive or resolved problems")+" not shown")
	}
	return c.finish(s)
}

func (c *chartLoader) medications() *section {
	s := &section{ID: "medications", Title: "Active medications", Sources: []source{{Type: "MedicationRequest"}},
		Columns: []string{"Medication", "Dosage", "Authored", "Status"}}
	all := decode[normalize.MedicationRequest](c, s, c.list("MedicationRequest", s))
	c.meds = all
	sortNewest(all, func(x *normalize.MedicationRequest) string { return x.AuthoredOn })
	inactive := 0
	for _, m := range all {
		if !m.Active {
			inactive++
			continue
		}
		dose := m.Dosage
		if dose == "" {
			dose = "—"
		}
		status := cell{Text: capitalize(m.Status)}
		if m.Stale {
			// "Active" in the EHR but untouched for the quiet period: shown,
			// flagged, never silently dropped or relabelled.
			status.Badge, status.Alert, status.Note = "Possibly stale", true, m.StaleReason
		}
		s.Rows = append(s.Rows, []cell{codeCell(m.Medication), {Text: dose}, {Date: true, Text: displayDate(m.AuthoredOn)}, status})
	}
	if inactive > 0 {
		s.Hidden = append(s.Hidden, plural(inactive, "inactive medication order", "inactive medication orders")+" not shown")
	}
	return c.finish(s)
}

func (c *chartLoader) allergies() *section {
	s := &section{ID: "allergies", Title: "Allergies", Sources: []source{{Type: "AllergyIntolerance"}},
		Columns: []string{"Substance", "Criticality", "Reactions", "Recorded"}}
	all := decode[normalize.AllergyIntolerance](c, s, c.list("AllergyIntolerance", s))
	inactive := 0
	for _, a := range all {
		if !a.Active {
			inactive++
			continue
		}
		crit := cell{Text: "—"}
		switch a.Criticality {
		case "high":
			crit = cell{Badge: "High", Alert: true}
		case "low":
			crit = cell{Text: "Low"}
		case "unable-to-assess":
			crit = cell{Text: "Unable to assess"}
		case "":
		default:
			crit = cell{Text: capitalize(a.Criticality)}
		}
		reactions := strings.Join(a.Reactions, ", ")
		if reactions == "" {
			reactions = "—"
		}
		sub := codeCell(a.Substance)
		if len(a.Category) > 0 {
			sub.Note = strings.TrimSpace(strings.Join(a.Category, ", ") + " · " + sub.Note)
			sub.Note = strings.TrimSuffix(sub.Note, " ·")
		}
		s.Rows = append(s.Rows, []cell{sub, crit, {Text: reactions}, {Date: true, Text: displayDate(a.Recorded)}})
	}
	if inactive > 0 {
		s.Hidden = append(s.Hidden, plural(inactive, "inactive or resolved allergy", "inactive or resolved allergies")+" not shown")
	}
	return c.finish(s)
}

// vitalOrder puts common vital signs in their usual clinical order.
var vitalOrder = map[string]int{
	loincBPPanel: 1, "55284-4": 1, "8867-4": 2, "9279-1": 3, "8310-5": 4, "2708-6": 5, "59408-5": 5,
	"29463-7": 6, "8302-2": 7, "8306-3": 7, "39156-5": 8, "9843-4": 9, "8287-5": 9,
}

// observations builds the vitals and labs sections from one listing.
func (c *chartLoader) observations() (vitals, labs *section) {
	vitals = &section{ID: "vitals", Title: "Recent vitals", Sources: []source{{Type: "Observation", Category: "vital-signs"}},
		Columns: []string{"Vital sign", "Latest value", "Taken"}}
	labs = &section{ID: "labs", Title: "Recent labs", Sources: []source{{Type: "Observation", Category: "laboratory"}},
		Columns: []string{"Test", "Result", "Reference range", "Flag", "Collected"}}
	recs := c.list("Observation", vitals, labs)
	var bad section
	all := make([]normalize.Observation, 0, len(recs))
	c.obs = make([]obsRec, 0, len(recs))
	fetched := make(map[string]time.Time, len(recs))
	for _, rec := range recs {
		var o normalize.Observation
		if err := unmarshal(rec.Normalized, &o); err != nil {
			c.d.log.WarnContext(c.ctx, "dashboard: decoding normalized resource", "err", err,
				"connection", rec.Connection, "type", rec.Type, "id", rec.ID)
			bad.Bad++
			continue
		}
		all = append(all, o)
		c.obs = append(c.obs, obsRec{Observation: o, ID: rec.ID, Connection: rec.Connection, Fetched: rec.FetchedAt})
		fetched[rec.ID] = rec.FetchedAt
	}
	vitals.Bad, labs.Bad = bad.Bad, bad.Bad
	// BMI where the source recorded weight and height but no BMI: computed,
	// shown as calculated, never stored as if the EHR had said it.
	ptrs := make([]*normalize.Observation, len(all))
	for i := range all {
		ptrs[i] = &all[i]
	}
	for _, d := range normalize.DeriveBMI(ptrs) {
		all = append(all, *d)
		r := obsRec{Observation: *d, ID: d.Source.ID, Connection: c.conn}
		if len(d.DerivedFrom) > 0 {
			r.Fetched = fetched[d.DerivedFrom[0].ID]
		}
		c.obs = append(c.obs, r)
	}
	sortNewest(all, func(x *normalize.Observation) string { return x.Effective })

	latest := map[string]bool{}
	var vs, ls []normalize.Observation
	for _, o := range all {
		switch {
		case slices.Contains(o.Category, "vital-signs"):
			key := o.Code.System + "|" + o.Code.Code
			if o.Code.Code == "" {
				key = "|" + strings.ToLower(o.Code.Label())
			}
			if !latest[key] { // all is newest first
				latest[key] = true
				vs = append(vs, o)
			}
		case slices.Contains(o.Category, "laboratory"):
			ls = append(ls, o)
		}
	}
	slices.SortStableFunc(vs, func(a, b normalize.Observation) int {
		oa, ob := vitalOrder[a.Code.Code], vitalOrder[b.Code.Code]
		if oa == 0 {
			oa = 100
		}
		if ob == 0 {
			ob = 100
		}
		return cmp.Or(cmp.Compare(oa, ob), strings.Compare(a.Code.Label(), b.Code.Label()))
	})
	for _, o := range vs {
		s := codeCell(o.Code)
		s.Note = "" // vitals are familiar; codes add noise
		s.Text = cmp.Or(o.Code.Label(), "(no description)")
		s.Text = cmp.Or(map[string]string{loincBPPanel: "Blood pressure"}[o.Code.Code], s.Text)
		if o.Derived {
			s.Note = "calculated by ehrgate from weight and height"
		}
		vitals.Rows = append(vitals.Rows, []cell{s, {Text: observationValue(o)}, {Date: true, Text: displayDate(o.Effective)}})
	}
	for _, o := range ls {
		flag, abnormal := interpretationFlag(o.Interpretation)
		ref := o.ReferenceRange
		if ref == "" {
			ref = "—"
		}
		labs.Rows = append(labs.Rows, []cell{codeCell(o.Code), {Text: observationValue(o)}, {Text: ref},
			{Badge: flag, Alert: abnormal}, {Date: true, Text: displayDate(o.Effective)}})
	}
	labs.limit(labLimit, "result")
	return c.finish(vitals), c.finish(labs)
}

func (c *chartLoader) encounters() *section {
	s := &section{ID: "encounters", Title: "Encounters", Sources: []source{{Type: "Encounter"}},
		Columns: []string{"Date", "Class", "Type", "Status"}}
	all := decode[normalize.Encounter](c, s, c.list("Encounter", s))
	c.encs = all
	sortNewest(all, func(x *normalize.Encounter) string { return x.Start })
	for _, e := range all {
		class := cell{Text: cmp.Or(encounterClass(e.Class), "—")}
		if e.Telehealth {
			class.Badge = "Telehealth"
		}
		date := cell{Date: true, Text: displayDate(e.Start)}
		if e.End != "" && e.End != e.Start {
			date.Note = "until " + displayDate(e.End)
		}
		typ := cell{Text: cmp.Or(e.Type.Label(), "—")}
		s.Rows = append(s.Rows, []cell{date, class, typ, {Text: capitalize(e.Status)}})
	}
	s.limit(encounterLimit, "encounter")
	return c.finish(s)
}

func (c *chartLoader) immunizations() *section {
	s := &section{ID: "immunizations", Title: "Immunizations", Sources: []source{{Type: "Immunization"}},
		Columns: []string{"Vaccine", "Date", "Status"}}
	all := decode[normalize.Immunization](c, s, c.list("Immunization", s))
	sortNewest(all, func(x *normalize.Immunization) string { return x.Occurrence })
	for _, im := range all {
		s.Rows = append(s.Rows, []cell{codeCell(im.Vaccine), {Date: true, Text: displayDate(im.Occurrence)}, {Text: capitalize(im.Status)}})
	}
	s.limit(otherLimit, "immunization")
	return c.finish(s)
}

func (c *chartLoader) procedures() *section {
	s := &section{ID: "procedures", Title: "Procedures", Sources: []source{{Type: "Procedure"}},
		Columns: []string{"Procedure", "Performed", "Status"}}
	all := decode[normalize.Procedure](c, s, c.list("Procedure", s))
	sortNewest(all, func(x *normalize.Procedure) string { return x.Performed })
	for _, p := range all {
		s.Rows = append(s.Rows, []cell{codeCell(p.Code), {Date: true, Text: displayDate(p.Performed)}, {Text: capitalize(p.Status)}})
	}
	s.limit(otherLimit, "procedure")
	return c.finish(s)
}

func (c *chartLoader) reports() *section {
	s := &section{ID: "reports", Title: "Reports", Sources: []source{{Type: "DiagnosticReport"}},
		Columns: []string{"Report", "Date", "Content", "Status"}}
	all := decode[normalize.DiagnosticReport](c, s, c.list("DiagnosticReport", s))
	sortNewest(all, func(x *normalize.DiagnosticReport) string { return x.Effective })
	for _, rep := range all {
		name := codeCell(rep.Code)
		if rep.Conclusion != "" {
			name.Note = rep.Conclusion
		}
		var kind cell
		switch {
		case rep.NarrativeOnly:
			kind = cell{Badge: "Narrative only"}
		case rep.Results > 0:
			kind = cell{Text: "Structured", Note: plural(rep.Results, "result", "results")}
		default:
			kind = cell{Text: "No results attached"}
		}
		s.Rows = append(s.Rows, []cell{name, {Date: true, Text: displayDate(rep.Effective)}, kind, {Text: capitalize(rep.Status)}})
	}
	s.limit(otherLimit, "report")
	return c.finish(s)
}

func (c *chartLoader) documents() *section {
	s := &section{ID: "documents", Title: "Documents", Sources: []source{{Type: "DocumentReference"}},
		Columns: []string{"Document", "Date", "Format", "Status"}}
	all := decode[normalize.DocumentReference](c, s, c.list("DocumentReference", s))
	sortNewest(all, func(x *normalize.DocumentReference) string { return x.Date })
	for _, doc := range all {
		title := cell{Text: cmp.Or(doc.Title, doc.Type.Label(), "(untitled)")}
		if doc.Title != "" && doc.Type.Label() != "" {
			title.Note = doc.Type.Label()
		}
		s.Rows = append(s.Rows, []cell{title, {Date: true, Text: displayDate(doc.Date)}, {Text: cmp.Or(doc.ContentType, "—")}, {Text: capitalize(doc.Status)}})
	}
	s.limit(otherLimit, "document")
	return c.finish(s)
}

// sortNewest orders s newest first by the FHIR time key gives, keeping
// the order of equal keys: unparseable times last, equal instants written
// differently by their text. Each time is parsed once (a chart holds
// thousands of observations).
func sortNewest[T any](s []T, key func(*T) string) {
	type sortKey struct {
		t   time.Time
		ok  bool
		str string
		i   int
	}
	keys := make([]sortKey, len(s))
	for i := range s {
		k := key(&s[i])
		t, ok := fhirTime(k)
		keys[i] = sortKey{t, ok, k, i}
	}
	slices.SortStableFunc(keys, func(a, b sortKey) int {
		switch {
		case a.str == b.str:
			return 0
		case a.ok && b.ok && !a.t.Equal(b.t):
			return b.t.Compare(a.t)
		case a.ok != b.ok:
			if a.ok {
				return -1
			}
			return 1
		case a.str > b.str:
			return -1
		default:
			return 1
		}
	})
	sorted := make([]T, len(s))
	for j, k := range keys {
		sorted[j] = s[k.i]
	}
	copy(s, sorted)
}
