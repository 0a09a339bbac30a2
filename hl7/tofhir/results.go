package tofhir

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"ehrgate/hl7"
)

// reportStatus maps OBR-25 / OBX-11 result status (table 0123 / 0085).
var reportStatus = map[string]string{
	"F": "final", "P": "preliminary", "C": "corrected", "A": "partial", "I": "registered", "O": "registered",
	"R": "partial", "S": "partial", "X": "cancelled", "D": "entered-in-error", "W": "entered-in-error", "Y": "registered", "Z": "registered",
}

var obsStatus = map[string]string{
	"F": "final", "P": "preliminary", "C": "corrected", "A": "amended", "R": "preliminary", "S": "preliminary",
	"I": "registered", "O": "registered", "X": "cancelled", "D": "entered-in-error", "W": "entered-in-error", "U": "final", "N": "unknown",
}

func (c *conv) oru() error {
	p, err := c.patient()
	if err != nil {
		return err
	}
	// Walk segments: each OBR opens a report; OBX attach to it.
	var reps []*orderGroup
	obrs, obxs, spms := 0, 0, 0
	// noteTo is what an NTE annotates: the segment before it (NTEs after an
	// OBR or OBX, possibly several); NTE after other segments (PID, ORC,
	// SPM, ...) are not converted.
	noteTo := ""
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		if n := s.Name(); n != "NTE" {
			noteTo = ""
			if (n == "OBR" || n == "OBX") && len(reps) > 0 || n == "OBR" {
				noteTo = n
			}
		}
		switch s.Name() {
		case "OBR":
			obrs++
			if err := requireField(s, obrs, 4, "universal service identifier"); err != nil {
				return err
			}
			for _, n := range []int{7, 22} {
				if err := c.checkTime(s, obrs, n); err != nil {
					return err
				}
			}
			reps = append(reps, &orderGroup{obr: s, seq: obrs})
		case "OBX":
			obxs++
			if len(reps) > 0 { // an OBX before any OBR belongs to no order: ignored, kept in the raw message
				if err := c.checkOBX(s, obxs); err != nil {
					return err
				}
				r := reps[len(reps)-1]
				r.obxs = append(r.obxs, s)
				r.obxSeq = append(r.obxSeq, obxs)
				r.obxNTE = append(r.obxNTE, nil)
			}
		case "SPM":
			spms++
			if len(reps) > 0 { // SPM belongs to the order before it (ORU_R01 SPECIMEN group)
				if err := c.checkTime(s, spms, 17); err != nil {
					return err
				}
				r := reps[len(reps)-1]
				r.spms = append(r.spms, s)
			}
		case "NTE":
			if len(reps) == 0 {
				break // notes on the patient or the message: not converted
			}
			r := reps[len(reps)-1]
			switch noteTo {
			case "OBR":
				r.notes = appendNote(r.notes, c.annotation(s))
			case "OBX":
				r.obxNTE[len(r.obxNTE)-1] = appendNote(r.obxNTE[len(r.obxNTE)-1], c.annotation(s))
			}
		}
	}
	if len(reps) == 0 {
		return problem(hl7.ErrSegmentSequence, at("OBR", 1, 0), "ORU^R01 needs at least one OBR")
	}
	c.addPatient(p)
	// Report ids: the order key (filler, else placer number); OBRs of one
	// message that share it (a placer number without filler numbers, as
	// newborn-screening panels send) are told apart by their service code,
	// then by occurrence, so no report overwrites another.
	keys := make([]string, len(reps))
	for i, r := range reps {
		keys[i], _ = c.orderKey(r.obr, i+1)
	}
	keys = disambiguate(keys, func(i int) string { return codeKey(reps[i].obr.Field(4).Repetition(1)) })
	for i, r := range reps {
		c.report(i+1, keys[i], r)
	}
	return nil
}

// orderKey identifies an order: filler number (OBR-3) else placer (OBR-2),
// with their namespace; else the message and OBR position.
func (c *conv) orderKey(obr hl7.Segment, n int) (key string, ident obj) {
	for _, f := range []int{3, 2} {
		r := obr.Field(f).Repetition(1)
		if v := r.Component(1).Value(); v != "" && c.usableIdentifier(v) == "" {
			ns := firstNonEmpty(r.Component(2).Value(), r.Component(3).Value())
			sys := c.system(hd{namespace: r.Component(2).Value(), universal: r.Component(3).Value(), typ: r.Component(4).Value()})
			code := map[int]string{3: "FILL", 2: "PLAC"}[f]
			return ns + "|" + v, obj{"value": v, "system": sys,
				"type": obj{"coding": []any{obj{"system": sysV2_0203, "code": code}}}}
		}
	}
	return fmt.Sprintf("%s#%d", c.source, n), nil
}

// checkOBX applies the result rules: OBX-3 (what was observed) and OBX-11
// (result status) are required, OBX-2 when there is a value, and a numeric
// value must be a number.
func (c *conv) checkOBX(s hl7.Segment, seq int) error {
	if err := requireField(s, seq, 3, "observation identifier"); err != nil {
		return err
	}
	if err := requireField(s, seq, 11, "observation result status"); err != nil {
		return err
	}
	if !s.Field(5).IsEmpty() {
		if err := requireField(s, seq, 2, "value type"); err != nil {
			return err
		}
		if s.Field(2).Value() == "NM" && !s.Field(5).IsNull() {
			if _, ok := jsonNumber(s.Field(5).Value()); !ok {
				return problem(hl7.ErrDataType, at("OBX", seq, 5), "OBX-5 is not a number but OBX-2 says NM")
			}
		}
	}
	return c.checkTime(s, seq, 14)
}

// codeKey is what identifies a coded element for ids: the primary
// triplet's code and system, else the alternate triplet's (CWE-4..6), else
// the text.
func codeKey(r hl7.Repetition) string {
	if v := r.Component(1).Value(); v != "" {
		return v + "^" + r.Component(3).Value()
	}
	if v := r.Component(4).Value(); v != "" {
		return "alt^" + v + "^" + r.Component(6).Value()
	}
	if v := firstNonEmpty(r.Component(2).Value(), r.Component(9).Value()); v != "" {
		return "text^" + v
	}
	return ""
}

// disambiguate makes keys unique within one message, deterministically (a
// resend of the same message gives the same keys): a key that occurs once
// is kept as it is (so a later message about the same order or result
// updates the same resource); repeated ones get detail(i), and those still
// repeated get their occurrence number.
func disambiguate(keys []string, detail func(i int) string) []string {
	count := func(ks []string) map[string]int {
		n := map[string]int{}
		for _, k := range ks {
			n[k]++
		}
		return n
	}
	n := count(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k
		if n[k] > 1 {
			out[i] = k + "|" + detail(i)
		}
	}
	n = count(out)
	seen := map[string]int{}
	for i, k := range out {
		if n[k] > 1 {
			seen[k]++
			out[i] = fmt.Sprintf("%s#%d", k, seen[k])
		}
	}
	return out
}

// orderGroup is one OBR with what follows it in an ORU.
type orderGroup struct {
	obr    hl7.Segment
	seq    int // occurrence of this OBR in the message
	obxs   []hl7.Segment
	obxSeq []int
	notes  []any   // NTE after the OBR, before its first OBX
	obxNTE [][]any // NTE after each OBX
	spms   []hl7.Segment
}

func (c *conv) report(n int, key string, g *orderGroup) {
	obr, obxs, notes, obxNotes := g.obr, g.obxs, g.notes, g.obxNTE
	_, ident := c.orderKey(obr, n)
	rid := id("rpt", c.res.PatientID, key)
	specimens := c.specimens(rid, g.spms)
	status := reportStatus[obr.Field(25).Value()]
	if status == "" {
		status = "final"
		if len(obxs) > 0 {
			if s := obsStatus[obxs[0].Field(11).Value()]; s != "" {
				status = s
			}
		}
	}
	if c.res.ResultStatus == "" {
		c.res.ResultStatus = status
	}
	effective, _ := dateTime(obr.Field(7).Value(), c.o.Location)
	// Observation ids: the code (either triplet) and OBX-4 sub-id, within
	// the report; repeats get their occurrence number.
	var okeys []string
	var values []hl7.Segment
	var results, forms []any
	var valueNotes [][]any
	for j, obx := range obxs {
		// Reference pointers and encapsulated data are the report's
		// presented form (a PDF, an image), not observations.
		if a := attachment(obx); a != nil {
			forms = append(forms, a)
			continue
		}
		values = append(values, obx)
		valueNotes = append(valueNotes, obxNotes[j])
		k := codeKey(obx.Field(3).Repetition(1))
		if k == "" {
			k = fmt.Sprintf("#%d", len(values))
		}
		okeys = append(okeys, k+"^"+obx.Field(4).Value())
	}
	okeys = disambiguate(okeys, func(int) string { return "" })
	for i, obx := range values {
		oid := c.observation(rid, okeys[i], obx, effective, valueNotes[i], specimens)
		results = append(results, obj{"reference": "Observation/" + oid})
	}
	d := obj{"status": status, "subject": c.patientRef(), "code": cwe(obr.Field(4).Repetition(1)),
		"category": []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}}}}}
	if sec := obr.Field(24).Value(); sec != "" {
		d["category"] = []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": sec}}}}
	}
	if ident != nil {
		d["identifier"] = []any{ident}
	}
	set(d, "effectiveDateTime", effective)
	if s, ok := dateTime(obr.Field(22).Value(), c.o.Location); ok {
		d["issued"] = s
	}
	set(d, "result", results)
	set(d, "presentedForm", forms)
	set(d, "specimen", specimens)
	if len(notes) > 0 {
		// R4 DiagnosticReport has no note; the R5 element travels as its
		// cross-version extension.
		var ext []any
		for _, n := range notes {
			ext = append(ext, obj{"url": extDiagnosticReportNote, "valueAnnotation": n})
		}
		d["extension"] = ext
	}
	c.add("DiagnosticReport", rid, d)
}

// attachment converts an RP (reference pointer: URL^^type^subtype) or ED
// (encapsulated data: source^type^subtype^encoding^data) OBX to an
// Attachment; nil for other value types.
func attachment(obx hl7.Segment) obj {
	r := obx.Field(5).Repetition(1)
	mime := func(typ, sub string) string {
		typ, sub = strings.ToLower(typ), strings.ToLower(sub)
		switch {
		case typ == "" && sub == "":
			return ""
		case typ == "ap" || typ == "application" || typ == "":
			return "application/" + sub
		case typ == "im" || typ == "image":
			return "image/" + sub
		case typ == "tx" || typ == "text":
			return "text/" + sub
		}
		return typ + "/" + sub
	}
	switch obx.Field(2).Value() {
	case "RP":
		a := obj{}
		set(a, "url", r.Component(1).Value())
		set(a, "contentType", mime(r.Component(3).Value(), r.Component(4).Value()))
		return a
	case "ED":
		a := obj{}
		set(a, "contentType", mime(r.Component(2).Value(), r.Component(3).Value()))
		if strings.EqualFold(r.Component(4).Value(), "Base64") {
			set(a, "data", r.Component(5).Value())
		}
		return a
	}
	return nil
}

func (c *conv) observation(reportID, key string, obx hl7.Segment, effective string, notes []any, specimens []any) string {
	oid := id("obs", reportID, key)
	o := c.observationObj(obx, effective, "laboratory")
	set(o, "note", notes)
	if len(specimens) == 1 { // Observation.specimen is one reference
		o["specimen"] = specimens[0]
	}
	c.add("Observation", oid, o)
	return oid
}

// observationObj maps an OBX (Segment OBX to Observation map) for ORU
// results and ADT observations alike; category is the
// observation-category code ("" for none).
func (c *conv) observationObj(obx hl7.Segment, effective, category string) obj {
	code := cwe(obx.Field(3).Repetition(1))
	o := obj{"subject": c.patientRef(), "code": code}
	if category != "" {
		o["category"] = []any{obj{"coding": []any{obj{"system": sysObsCat, "code": category}}}}
	}
	o["status"] = firstNonEmpty(obsStatus[obx.Field(11).Value()], "final")
	if e, ok := dateTime(obx.Field(14).Value(), c.o.Location); ok {
		o["effectiveDateTime"] = e
	} else {
		set(o, "effectiveDateTime", effective)
	}
	c.value(o, obx)
	if rr := obx.Field(7).Value(); rr != "" {
		o["referenceRange"] = []any{referenceRange(rr, obx.Field(6).Component(1).Value())}
	}
	var interp []any
	f := obx.Field(8)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if v := f.Repetition(i).Component(1).Value(); v != "" {
			interp = append(interp, obj{"coding": []any{obj{"system": sysInterp, "code": v}}})
		}
	}
	set(o, "interpretation", interp)
	return o
}

// value sets value[x] from OBX-2 and OBX-5 (first repetition).
func (c *conv) value(o obj, obx hl7.Segment) {
	f := obx.Field(5)
	if f.IsEmpty() {
		return
	}
	r := f.Repetition(1)
	switch obx.Field(2).Value() {
	case "NM":
		if q := quantity(r.Component(1).Value(), obx.Field(6).Repetition(1)); q != nil {
			o["valueQuantity"] = q
			return
		}
	case "SN":
		cmp, num, sep := r.Component(1).Value(), r.Component(2).Value(), r.Component(3).Value()
		if sep == "" {
			if q := quantity(num, obx.Field(6).Repetition(1)); q != nil {
				if cmp == "<" || cmp == ">" || cmp == "<=" || cmp == ">=" {
					q["comparator"] = cmp
				}
				o["valueQuantity"] = q
				return
			}
		}
		o["valueString"] = strings.Join(nonEmpty(cmp, num, sep, r.Component(4).Value()), "")
		return
	case "CE", "CWE", "CNE", "CF":
		o["valueCodeableConcept"] = cwe(r)
		return
	case "DT", "TS", "DTM":
		if d, ok := dateTime(r.Component(1).Value(), c.o.Location); ok {
			o["valueDateTime"] = d
			return
		}
	}
	// ST, TX, FT: the text, repetitions joined by lines (components of
	// free text are part of the text). Anything else: its first component.
	switch obx.Field(2).Value() {
	case "ST", "TX", "FT", "":
		var lines []string
		for i := 1; i <= f.NumRepetitions(); i++ {
			lines = append(lines, hl7.Unescape(string(f.Repetition(i).Raw()), c.m.Delimiters()))
		}
		set(o, "valueString", strings.Join(lines, "\n"))
	default:
		set(o, "valueString", r.Component(1).Value())
	}
}

func quantity(num string, units hl7.Repetition) obj {
	num = strings.TrimSpace(num)
	if num == "" {
		return nil
	}
	v, ok := jsonNumber(num)
	if !ok {
		return nil
	}
	q := obj{"value": v}
	u := units.Component(1).Value()
	set(q, "unit", firstNonEmpty(units.Component(2).Value(), u))
	setUnitCode(q, u, units.Component(3).Value())
	return q
}

// setUnitCode sets a quantity's system and code for unit u named in coding
// system sys: UCUM (sys empty, UCUM, ANS+ or ISO+) only when u really is a
// UCUM code (isUCUM), else the unit text alone; a local or other system
// keeps its code.
func setUnitCode(q obj, u, sys string) {
	if u == "" {
		return
	}
	if sys == "" || strings.EqualFold(sys, "UCUM") || sys == "ANS+" || sys == "ISO+" {
		if isUCUM(u) {
			q["system"], q["code"] = sysUCUM, u
		}
		return
	}
	q["system"], q["code"] = codingSystem(sys), u
}

var jsonNumberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// jsonNumber turns a v2 NM ("+5", "0.50", "007", ".5") into a JSON number,
// keeping the sender's digits when they already are one.
func jsonNumber(s string) (json.Number, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	if jsonNumberRE.MatchString(s) {
		return json.Number(s), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || strings.ContainsAny(s, "xXpPnNiI_") {
		return "", false
	}
	return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), true
}

// referenceRange parses "low-high", "<x", ">x" and keeps the text.
func referenceRange(s, unit string) obj {
	rr := obj{"text": s}
	bound := func(v string) any {
		n, ok := jsonNumber(v)
		if !ok {
			return nil
		}
		q := obj{"value": n}
		if unit != "" {
			q["unit"] = unit
		}
		return q
	}
	if i := strings.Index(s[1:], "-"); i >= 0 {
		lo, hi := bound(s[:i+1]), bound(s[i+2:])
		if lo != nil && hi != nil {
			rr["low"], rr["high"] = lo, hi
		}
	}
	return rr
}

var immunizationStatus = map[string]string{"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}

func (c *conv) vxu() error {
	p, err := c.patient()
	if err != nil {
		return err
	}
	c.addPatient(p)
	segs := c.m.Segments("RXA")
	if len(segs) == 0 {
		return problem(hl7.ErrSegmentSequence, at("RXA", 1, 0), "VXU^V04 needs at least one RXA")
	}
	for i, rxa := range segs {
		if err := requireField(rxa, i+1, 3, "date/time start of administration"); err != nil {
			return err
		}
		if err := requireField(rxa, i+1, 5, "administered code"); err != nil {
			return err
		}
		if err := c.checkTime(rxa, i+1, 3); err != nil {
			return err
		}
	}
	// RXR and OBX follow their RXA (until the next ORC or RXA).
	routes := map[int]hl7.Segment{}
	obxs := map[int][]hl7.Segment{}
	n, cur := -1, -1
	for i := 0; i < c.m.Len(); i++ {
		switch s := c.m.SegmentAt(i); s.Name() {
		case "RXA":
			n++
			cur = n
		case "ORC":
			cur = -1
		case "RXR":
			if cur >= 0 {
				routes[cur] = s
			}
		case "OBX":
			if cur >= 0 {
				obxs[cur] = append(obxs[cur], s)
			}
		}
	}
	for i, rxa := range segs {
		im := obj{"patient": c.patientRef(), "vaccineCode": cwe(rxa.Field(5).Repetition(1))}
		when, ok := dateTime(rxa.Field(3).Value(), c.o.Location)
		if ok {
			im["occurrenceDateTime"] = when
		} else {
			im["occurrenceString"] = "unknown"
		}
		status := firstNonEmpty(immunizationStatus[rxa.Field(20).Value()], "completed")
		if rxa.Field(21).Value() == "D" {
			status = "entered-in-error"
		}
		im["status"] = status
		if amt := rxa.Field(6).Value(); amt != "" && amt != "999" {
			if q := quantity(amt, rxa.Field(7).Repetition(1)); q != nil {
				im["doseQuantity"] = q
			}
		}
		set(im, "lotNumber", rxa.Field(15).Value())
		set(im, "expirationDate", date(rxa.Field(16).Value(), c.o.Location))
		if m := rxa.Field(17).Repetition(1); m.Component(1).Value() != "" || m.Component(2).Value() != "" {
			im["manufacturer"] = obj{"display": firstNonEmpty(m.Component(2).Value(), m.Component(1).Value())}
			if m.Component(1).Value() != "" {
				im["manufacturer"].(obj)["identifier"] = obj{"system": sysMVX, "value": m.Component(1).Value()}
			}
		}
		switch rxa.Field(9).Component(1).Value() {
		case "00":
			im["primarySource"] = true
		case "":
		default:
			im["primarySource"] = false
		}
		if rxr, ok := routes[i]; ok {
			if r := rxr.Field(1).Repetition(1); r.Component(1).Value() != "" {
				im["route"] = cwe(r)
			}
			if r := rxr.Field(2).Repetition(1); r.Component(1).Value() != "" {
				im["site"] = cwe(r)
			}
		}
		key := rxa.Field(5).Component(1).Value() + "|" + rxa.Field(3).Value()
		var ids []any
		if orc, ok := c.m.Segment("ORC", i+1); ok {
			if v := orc.Field(3).Component(1).Value(); v != "" {
				key = "fill|" + orc.Field(3).Component(2).Value() + "|" + v
				ids = append(ids, obj{"value": v, "system": c.system(hd{namespace: orc.Field(3).Component(2).Value(),
					universal: orc.Field(3).Component(3).Value(), typ: orc.Field(3).Component(4).Value()})})
			}
		}
		set(im, "identifier", ids)
		immID := id("imm", c.res.PatientID, key)
		vaccineObs := c.vaccineObservations(im, obxs[i])
		c.add("Immunization", immID, im)
		c.addVaccineObservations(immID, vaccineObs)
	}
	// NK1: parents and guardians, which immunization registries rely on.
	return c.relatedPersons()
}

// LinkRetired returns the retired patient of an A40 with a replaced-by link
// to the surviving one and active=false, keeping everything else of
// existing (its current stored JSON; nil when the store has none, in which
// case a minimal Patient with the retired identifier is made). meta.source
// becomes source.
func LinkRetired(existing []byte, m *Merge, source string) ([]byte, error) {
	p := obj{}
	if len(existing) > 0 {
		if err := json.Unmarshal(existing, &p); err != nil {
			return nil, fmt.Errorf("reading retired patient: %w", err)
		}
	} else {
		p["identifier"] = []any{obj{"system": m.Retired.System, "value": m.Retired.Value}}
	}
	p["resourceType"], p["id"] = "Patient", m.RetiredID
	link := obj{"other": obj{"reference": "Patient/" + m.SurvivingID}, "type": "replaced-by"}
	var links []any
	if old, ok := p["link"].([]any); ok {
		for _, l := range old {
			if lo, ok := l.(obj); ok {
				if t, _ := lo["type"].(string); t == "replaced-by" {
					continue // a later merge supersedes the earlier target
				}
			}
			links = append(links, l)
		}
	}
	p["link"] = append(links, link)
	p["active"] = false
	setSource(p, source)
	return json.Marshal(p)
}

// ApplyStatus returns existing (a stored resource's JSON) with status and
// meta.source replaced, everything else kept: how a cancel (A11) or
// un-cancel (A13) changes an Encounter without losing what earlier
// messages said about it.
func ApplyStatus(existing []byte, status, source string) ([]byte, error) {
	p := obj{}
	if err := json.Unmarshal(existing, &p); err != nil {
		return nil, fmt.Errorf("reading current resource: %w", err)
	}
	p["status"] = status
	setSource(p, source)
	return json.Marshal(p)
}

func setSource(p obj, source string) {
	meta, _ := p["meta"].(obj)
	if meta == nil {
		meta = obj{}
	}
	delete(meta, "versionId")
	delete(meta, "lastUpdated")
	meta["source"] = source
	p["meta"] = meta
}

// extDiagnosticReportNote is the FHIR R5 DiagnosticReport.note element as an
// R4 cross-version extension.
const extDiagnosticReportNote = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"

// annotation converts an NTE (Segment NTE to Annotation map): text ←
// NTE-3 (repetitions joined by newlines, escapes resolved), authorString
// ← NTE-5 (display), time ← NTE-6. nil when NTE-3 is empty.
func (c *conv) annotation(nte hl7.Segment) obj {
	f := nte.Field(3)
	var lines []string
	for i := 1; i <= f.NumRepetitions(); i++ {
		lines = append(lines, hl7.Unescape(string(f.Repetition(i).Raw()), c.m.Delimiters()))
	}
	text := strings.TrimRight(strings.Join(lines, "\n"), " \n")
	if strings.TrimSpace(text) == "" {
		return nil
	}
	a := obj{"text": text}
	set(a, "authorString", xcnDisplay(nte.Field(5).Repetition(1)))
	if t, ok := dateTime(nte.Field(6).Value(), c.o.Location); ok {
		a["time"] = t
	}
	return a
}

func appendNote(notes []any, a obj) []any {
	if a == nil {
		return notes
	}
	return append(notes, a)
}

// LOINC codes of the OBX that CDC's HL7 v2.5.1 immunization guide puts
// under an RXA.
const (
	loincFundingSource  = "30963-3"
	loincEligibility    = "64994-7"
	loincVISDocument    = "69764-9"
	loincVISPublished   = "29768-9"
	loincVISPresented   = "29769-7"
	loincVISVaccineType = "30956-7"
)

// vaccineObservations reads the OBX under one RXA into the Immunization
// (Message VXU_V04 to Bundle map, with the CDC immunization guide's OBX
// codes): fundingSource ← 30963-3, programEligibility ← 64994-7,
// education ← the VIS OBX grouped by OBX-4 sub-id (documentType ←
// 69764-9, publicationDate ← 29768-9, presentationDate ← 29769-7). It
// returns the OBX that convert to Observations: all that follow the
// result rules (others are skipped, not refused: the vaccination stays
// usable).
func (c *conv) vaccineObservations(im obj, obxs []hl7.Segment) []hl7.Segment {
	var keep []hl7.Segment
	edu := map[string]obj{}
	var eduOrder []string
	for i, obx := range obxs {
		if c.checkOBX(obx, i+1) != nil || attachment(obx) != nil {
			continue
		}
		keep = append(keep, obx)
		code := obx.Field(3).Component(1).Value()
		if codingSystem(obx.Field(3).Component(3).Value()) != sysLOINC {
			continue
		}
		v := obx.Field(5).Repetition(1)
		switch code {
		case loincFundingSource:
			im["fundingSource"] = cwe(v)
		case loincEligibility:
			im["programEligibility"] = append(asList(im["programEligibility"]), cwe(v))
		case loincVISDocument, loincVISPublished, loincVISPresented, loincVISVaccineType:
			sub := obx.Field(4).Value()
			e, ok := edu[sub]
			if !ok {
				e = obj{}
				edu[sub] = e
				eduOrder = append(eduOrder, sub)
			}
			switch code {
			case loincVISDocument:
				set(e, "documentType", v.Component(1).Value())
			case loincVISPublished:
				set(e, "publicationDate", c.visDate(v))
			case loincVISPresented:
				set(e, "presentationDate", c.visDate(v))
			}
		}
	}
	var education []any
	for _, sub := range eduOrder {
		if e := edu[sub]; len(e) > 0 {
			education = append(education, e)
		}
	}
	set(im, "education", education)
	return keep
}

func (c *conv) visDate(v hl7.Repetition) string {
	d, _ := dateTime(v.Component(1).Value(), c.o.Location)
	return d
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// addVaccineObservations adds the OBX under an RXA as Observations (the
// ORU mapping, no category) with partOf → the Immunization. Id:
// hash(Immunization id, OBX-3 code, OBX-4 sub-id), occurrence when repeated.
func (c *conv) addVaccineObservations(immID string, obxs []hl7.Segment) {
	keys := make([]string, len(obxs))
	for i, obx := range obxs {
		keys[i] = codeKey(obx.Field(3).Repetition(1)) + "^" + obx.Field(4).Value()
	}
	keys = disambiguate(keys, func(int) string { return "" })
	for i, obx := range obxs {
		o := c.observationObj(obx, "", "")
		o["partOf"] = []any{obj{"reference": "Immunization/" + immID}}
		c.add("Observation", id("obs", immID, keys[i]), o)
	}
}

// specimens converts the SPM segments of one order (Segment SPM to
// Specimen map): identifier ← SPM-2 (EIP: placer PLAC, filler FILL),
// type ← SPM-4, collection.method ← SPM-7, collection.bodySite ← SPM-8,
// collection.quantity ← SPM-12 (CQ: amount^units), collection.collected
// ← SPM-17 (DR: dateTime, or period when it has an end), receivedTime ←
// SPM-18, note ← SPM-14 description, subject → Patient. It returns the
// references the report and its observations carry.
//
// Id: hash(report id, SPM-2 filler id, else placer id, else the SPM-4
// type), occurrence when repeated within the order.
func (c *conv) specimens(reportID string, spms []hl7.Segment) []any {
	keys := make([]string, len(spms))
	for i, spm := range spms {
		eip := spm.Field(2).Repetition(1)
		switch {
		case eip.Component(2).Value() != "":
			keys[i] = "fill^" + eip.Component(2).Value()
		case eip.Component(1).Value() != "":
			keys[i] = "plac^" + eip.Component(1).Value()
		default:
			keys[i] = "type^" + codeKey(spm.Field(4).Repetition(1))
		}
	}
	keys = disambiguate(keys, func(int) string { return "" })
	var refs []any
	for i, spm := range spms {
		sp := obj{"subject": c.patientRef()}
		eip := spm.Field(2).Repetition(1)
		var ids []any
		for _, part := range []struct {
			comp int
			code string
		}{{1, "PLAC"}, {2, "FILL"}} {
			ei := eip.Component(part.comp)
			if v := ei.SubComponent(1); v != "" {
				ids = append(ids, obj{"value": v, "system": c.system(hd{namespace: ei.SubComponent(2), universal: ei.SubComponent(3), typ: ei.SubComponent(4)}),
					"type": obj{"coding": []any{obj{"system": sysV2_0203, "code": part.code}}}})
			}
		}
		set(sp, "identifier", ids)
		if r := spm.Field(4).Repetition(1); !r.IsEmpty() {
			set(sp, "type", cwe(r))
		}
		coll := obj{}
		if r := spm.Field(7).Repetition(1); !r.IsEmpty() {
			set(coll, "method", cwe(r))
		}
		if r := spm.Field(8).Repetition(1); !r.IsEmpty() {
			set(coll, "bodySite", cwe(r))
		}
		if q := spm.Field(12).Repetition(1); q.Component(1).Value() != "" {
			if qq := cqQuantity(q); qq != nil {
				coll["quantity"] = qq
			}
		}
		start, okStart := dateTime(spm.Field(17).Component(1).SubComponent(1), c.o.Location)
		end, okEnd := dateTime(spm.Field(17).Component(2).SubComponent(1), c.o.Location)
		switch {
		case okStart && okEnd:
			coll["collectedPeriod"] = obj{"start": start, "end": end}
		case okStart:
			coll["collectedDateTime"] = start
		}
		set(sp, "collection", coll)
		if t, ok := dateTime(spm.Field(18).Value(), c.o.Location); ok {
			sp["receivedTime"] = t
		}
		if d := strings.TrimSpace(spm.Field(14).Value()); d != "" {
			sp["note"] = []any{obj{"text": d}}
		}
		sid := id("spm", reportID, keys[i])
		c.add("Specimen", sid, sp)
		refs = append(refs, obj{"reference": "Specimen/" + sid})
	}
	return refs
}

// cqQuantity converts a CQ (quantity^units, units a CE in subcomponents).
func cqQuantity(r hl7.Repetition) obj {
	v, ok := jsonNumber(r.Component(1).Value())
	if !ok {
		return nil
	}
	q := obj{"value": v}
	u := r.Component(2)
	code, text, sys := u.SubComponent(1), u.SubComponent(2), u.SubComponent(3)
	set(q, "unit", firstNonEmpty(text, code))
	setUnitCode(q, code, sys)
	return q
}
