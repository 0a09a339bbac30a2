// Package tofhir converts HL7 v2 messages to FHIR R4 resources: ADT
// (A01-A08, A11-A13, A17 swaps, A21-A23, A28, A31; A34/A39/A40/A47 merges)
// to Patient and Encounter, with AllergyIntolerance (AL1), Condition (DG1),
// RelatedPerson (NK1, GT1), Coverage (IN1/IN2, with payer Organization and
// subscriber RelatedPerson) and Observation (OBX); ORU^R01 to
// DiagnosticReport, Observations and Specimens; VXU^V04 to Immunization;
// ORM^O01 and OML^O21 to ServiceRequest; RDE^O11/O25 to
// MedicationRequest; MDM^T02/T06 to DocumentReference; SIU^S12-S15/S26 to
// Appointment. Every converted message also yields its MessageHeader and
// Provenance (message.go).
//
// Conversion is a pure function of the message and Options: resource ids
// are deterministic (hashes of the identifiers they stand for), so a later
// message about the same patient, visit, order or observation produces the
// same id and becomes a new version of the same resource ("updates are
// updates"). Every resource records the message it came from in
// meta.source as "urn:hl7v2:<MSH-3.1>|<MSH-4.1>|<MSH-10>". See README.md for
// the field mapping and where it differs from the FHIR-Converter reference
// output.
package tofhir

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"ehrgate/fhir"
	"ehrgate/hl7"
)

// ErrUnsupported is returned for a message type tofhir does not convert.
var ErrUnsupported = errors.New("tofhir: unsupported message type")

// ErrNoPatient is returned (beside an *hl7.MessageError) when a message
// has no usable PID-3 identifier.
var ErrNoPatient = errors.New("tofhir: no usable patient identifier (PID-3)")

// Options tune the conversion. The zero value is usable.
type Options struct {
	// Authorities maps an assigning authority (CX-4.1 namespace id, or
	// CX-4.2 universal id) to the FHIR identifier.system to use for it,
	// e.g. {"MRN-NORTH": "urn:oid:1.2.3.4"}. Unmapped authorities with an
	// ISO universal id become urn:oid:<id>; others become
	// urn:ehrgate:hl7v2:authority:<namespace>.
	Authorities map[string]string
	// Location is the time zone of v2 times without an offset (default UTC).
	Location *time.Location
	// DefaultAuthority is the assigning authority of identifiers (PID-3,
	// MRG-1, PV1-19) sent without CX-4, looked up in Authorities like a
	// CX-4 namespace. Empty: the sending facility (MSH-4, else MSH-3),
	// unless RequireAuthority is set.
	DefaultAuthority string
	// RequireAuthority refuses identifiers that have neither CX-4 nor a
	// DefaultAuthority instead of qualifying them by the sending facility.
	RequireAuthority bool
	// IdentifierPattern, when set, must match every patient identifier
	// value (PID-3, PID-2, MRG-1) for it to be used; others are ignored as
	// if absent (a message left without any is refused).
	IdentifierPattern *regexp.Regexp
	// Placeholders are identifier values that mean "unknown" at this site
	// (compared case-insensitively), beside the built-in ones (the HL7
	// explicit null, blanks, UNKNOWN, NONE, all zeros, ...).
	Placeholders []string
	// Charset is the character set (HL7 table 0211 name, e.g. "8859/1") of
	// messages without MSH-18; default UTF-8 (ASCII).
	Charset string
}

// Resource is one converted resource.
type Resource struct {
	Type string
	ID   string
	JSON []byte
	// StatusOnly marks a resource produced by a cancel trigger (A11, A13):
	// when a current version exists the caller should change only its
	// status (see ApplyStatus) rather than replace it with the thinner
	// content of the cancel message.
	StatusOnly bool
	Status     string
	// PatientID is the id of the Patient the resource belongs to ("" for
	// MessageHeader and Provenance): an A17 concerns two patients.
	PatientID string
}

// PatientRef names one patient a message concerns.
type PatientRef struct {
	ID         string
	Identifier fhir.Identifier
}

// Merge describes an A40: the retired patient (MRG-1) is linked to the
// surviving one (PID-3). Nothing is deleted: the caller keeps the retired
// Patient and adds the replaced-by link to it (see LinkRetired).
type Merge struct {
	SurvivingID string
	RetiredID   string
	Retired     fhir.Identifier
}

// Result is the outcome of converting one message.
type Result struct {
	Source      string          // meta.source value of every resource
	Trigger     string          // e.g. "A01", "R01", "V04"
	MessageType string          // e.g. "ADT"
	PatientID   string          // id of the Patient resource
	Patient     fhir.Identifier // the patient's primary identifier (system from its authority)
	Resources   []Resource      // Patient first
	// Patients are the patients the message concerns, PatientID first:
	// one, or two for an A17 swap (never the retired patient of a merge,
	// see Merge).
	Patients []PatientRef
	Merge    *Merge
	// ResultStatus is the status of the first DiagnosticReport (ORU).
	ResultStatus string
}

// Of returns the resources of type typ.
func (r *Result) Of(typ string) []Resource {
	var out []Resource
	for _, res := range r.Resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	return out
}

// Source returns the meta.source string of a message.
func Source(m *hl7.Message) string {
	h := m.Header()
	// Invalid UTF-8 would not survive JSON; replace it so meta.source and
	// store.Record.Source are the same string.
	return strings.ToValidUTF8("urn:hl7v2:"+h.Field(3).Value()+"|"+h.Field(4).Value()+"|"+m.ControlID(), "\uFFFD")
}

type conv struct {
	m      *hl7.Message
	o      Options
	source string
	res    *Result

	primaryIsMR bool
	checkOnly   bool   // Check: resources are built but not encoded
	encID       string // id of the Encounter this message produced, if any
}

// Convert converts m. A message that breaks the acceptance rules (see
// accept.go: header, segments, control characters, usable identifiers,
// required fields and data types of the trigger) returns an error holding
// an *hl7.MessageError (errors.As) and no resources; so do message types
// outside the list in the package comment, whose error also wraps
// ErrUnsupported. A message without a usable PID-3 also wraps ErrNoPatient.
func Convert(m *hl7.Message, o Options) (*Result, error) {
	return convert(m, o, false)
}

// Check applies Convert's acceptance rules to m and returns the error
// Convert would, without encoding any resource: for a listener that logs
// messages before the ACK and converts them later.
func Check(m *hl7.Message, o Options) error {
	_, err := convert(m, o, true)
	return err
}

func convert(m *hl7.Message, o Options, checkOnly bool) (*Result, error) {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	m, err := toUTF8(m, o.Charset)
	if err != nil {
		return nil, err
	}
	mt := m.MessageType()
	c := &conv{m: m, o: o, source: Source(m), res: &Result{MessageType: mt.Code, Trigger: mt.Trigger}, checkOnly: checkOnly}
	c.res.Source = c.source
	switch mt.Code + "^" + mt.Trigger {
	case "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A05", "ADT^A06", "ADT^A07", "ADT^A08",
		"ADT^A11", "ADT^A12", "ADT^A13", "ADT^A21", "ADT^A22", "ADT^A23":
		err = c.adt(true)
	case "ADT^A28", "ADT^A31":
		err = c.adt(false)
	case "ADT^A17":
		err = c.swap()
	case "ADT^A40", "ADT^A34", "ADT^A39", "ADT^A47":
		err = c.merge()
	case "ORU^R01":
		err = c.oru()
	case "VXU^V04":
		err = c.vxu()
	case "ORM^O01", "OML^O21":
		err = c.orders()
	case "MDM^T02", "MDM^T06":
		err = c.document()
	case "RDE^O11", "RDE^O25":
		err = c.pharmacy()
	case "SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15", "SIU^S26":
		err = c.appointment() // appointments.go
	default:
		cond := hl7.ErrUnsupportedEventCode
		switch mt.Code {
		case "ADT", "ORU", "VXU", "ORM", "OML", "MDM", "RDE", "SIU":
		default:
			cond = hl7.ErrUnsupportedMessageType
		}
		return nil, unsupportedAs(cond, mt.Code, mt.Trigger, "is not converted by this feed")
	}
	if err != nil {
		return nil, err
	}
	if len(c.res.Patients) == 0 && c.res.PatientID != "" {
		c.res.Patients = []PatientRef{{ID: c.res.PatientID, Identifier: c.res.Patient}}
	}
	c.addMessage()
	return c.res, nil
}

func (c *conv) add(typ, rid string, o obj) Resource {
	o["resourceType"] = typ
	o["id"] = rid
	if meta, ok := o["meta"].(obj); ok {
		meta["source"] = c.source
	} else {
		o["meta"] = obj{"source": c.source}
	}
	if c.checkOnly {
		r := Resource{Type: typ, ID: rid, PatientID: c.res.PatientID}
		c.res.Resources = append(c.res.Resources, r)
		return r
	}
	b, err := marshal(o)
	if err != nil { // maps of strings, slices and maps always encode
		panic(fmt.Sprintf("tofhir: encoding %s: %v", typ, err))
	}
	r := Resource{Type: typ, ID: rid, JSON: b, PatientID: c.res.PatientID}
	c.res.Resources = append(c.res.Resources, r)
	return r
}

// system returns identifier.system for an assigning authority; an empty
// authority falls back to the sending facility (MSH-4), so an identifier
// always carries one.
func (c *conv) system(a hd) string {
	if a.namespace == "" && a.universal == "" && c.o.DefaultAuthority != "" {
		a = hd{namespace: c.o.DefaultAuthority}
	}
	if a.namespace == "" && a.universal == "" {
		a = hdOfField(c.m.Header().Field(4))
		a.namespace = firstNonEmpty(a.namespace, c.m.Header().Field(3).Value())
	}
	for _, k := range []string{a.namespace, a.universal} {
		if s, ok := c.o.Authorities[k]; ok && k != "" {
			return s
		}
	}
	if a.universal != "" && strings.EqualFold(a.typ, "ISO") {
		return "urn:oid:" + a.universal
	}
	if a.universal != "" && strings.EqualFold(a.typ, "UUID") {
		return "urn:uuid:" + a.universal
	}
	if a.universal != "" && strings.EqualFold(a.typ, "URI") {
		return a.universal
	}
	return "urn:ehrgate:hl7v2:authority:" + a.String()
}

// identifier converts a CX repetition.
func (c *conv) identifier(r hl7.Repetition) (obj, fhir.Identifier) {
	value := r.Component(1).Value()
	sys := c.system(hdOf(r.Component(4)))
	o := obj{"value": value, "system": sys}
	if t := r.Component(5).Value(); t != "" {
		o["type"] = obj{"coding": []any{obj{"system": sysV2_0203, "code": t}}}
	}
	return o, fhir.Identifier{System: sys, Value: value}
}

// patient converts PID into the Patient resource; the primary identifier
// (and so the id) is the first PID-3 repetition typed MR, else the first.
func (c *conv) patient() (obj, error) {
	pid, ok := c.m.Segment("PID", 1)
	if !ok {
		return nil, fmt.Errorf("%w: %w", ErrNoPatient, problem(hl7.ErrSegmentSequence, at("PID", 1, 0),
			"PID segment is required for %s^%s", c.res.MessageType, c.res.Trigger))
	}
	p := obj{"active": true}
	var ids []any
	var primary fhir.Identifier
	var why string // why the last non-empty identifier was not usable
	usable := func(r hl7.Repetition) bool {
		if r.IsEmpty() {
			return false
		}
		if w := c.usableIdentifier(r.Component(1).Value()); w != "" {
			why = w
			return false
		}
		if !c.hasAuthority(r) {
			why = "no assigning authority (CX-4) and the feed has no default"
			return false
		}
		return true
	}
	f := pid.Field(3)
	for i := 1; i <= f.NumRepetitions(); i++ {
		r := f.Repetition(i)
		if !usable(r) {
			continue
		}
		o, ident := c.identifier(r)
		ids = append(ids, o)
		if primary.Value == "" || (r.Component(5).Value() == "MR" && !c.primaryIsMR) {
			primary = ident
			c.primaryIsMR = r.Component(5).Value() == "MR"
		}
	}
	if primary.Value == "" {
		// v2.3 and earlier sometimes carry the id in PID-2 (external id) only.
		if r := pid.Field(2).Repetition(1); usable(r) {
			o, ident := c.identifier(r)
			ids = append(ids, o)
			primary = ident
		}
	}
	if primary.Value == "" {
		reason := "PID-3 has no patient identifier"
		if why != "" {
			reason = "PID-3 has no usable patient identifier (" + why + ")"
		}
		return nil, fmt.Errorf("%w: %w", ErrNoPatient, problem(hl7.ErrRequiredFieldMissing, at("PID", 1, 3), "%s", reason))
	}
	if err := requireField(pid, 1, 5, "patient name"); err != nil {
		return nil, err
	}
	if err := c.checkTime(pid, 1, 7); err != nil {
		return nil, err
	}
	ids = c.otherIdentifiers(pid, ids)
	set(p, "identifier", ids)
	c.res.Patient = primary
	c.res.PatientID = PatientID(primary)
	var names []any
	f = pid.Field(5)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if n := xpn(f.Repetition(i)); len(n) > 0 {
			names = append(names, n)
		}
	}
	set(p, "name", names)
	set(p, "birthDate", date(pid.Field(7).Value(), c.o.Location))
	set(p, "gender", map[string]string{"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}[pid.Field(8).Value()])
	var addrs []any
	f = pid.Field(11)
	for i := 1; i <= f.NumRepetitions(); i++ {
		if a := xad(f.Repetition(i)); len(a) > 0 {
			addrs = append(addrs, a)
		}
	}
	set(p, "address", addrs)
	var tel []any
	for _, ft := range []struct {
		n   int
		use string
	}{{13, "home"}, {14, "work"}} {
		f = pid.Field(ft.n)
		for i := 1; i <= f.NumRepetitions(); i++ {
			if t := xtn(f.Repetition(i), ft.use); t != nil {
				tel = append(tel, t)
			}
		}
	}
	set(p, "telecom", tel)
	if ms := pid.Field(16).Repetition(1); ms.Component(1).Value() != "" {
		p["maritalStatus"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
			"code": ms.Component(1).Value()}}}
	}
	if d, ok := dateTime(pid.Field(29).Value(), c.o.Location); ok {
		p["deceasedDateTime"] = d
	} else if pid.Field(30).Value() == "Y" {
		p["deceasedBoolean"] = true
	}
	c.primaryCare(p)
	return p, nil
}

// PatientID is the deterministic Patient id for an identifier.
func PatientID(ident fhir.Identifier) string { return id("pat", ident.System, ident.Value) }

func (c *conv) addPatient(p obj) {
	c.add("Patient", c.res.PatientID, p)
}

func (c *conv) patientRef() obj { return obj{"reference": "Patient/" + c.res.PatientID} }

func (c *conv) adt(withEncounter bool) error {
	p, err := c.patient()
	if err != nil {
		return err
	}
	c.addPatient(p)
	if !withEncounter {
		return c.adtClinical()
	}
	pv1, err := c.requireSegment("PV1", "patient visit")
	if err != nil {
		return err
	}
	if err := requireField(pv1, 1, 2, "patient class"); err != nil {
		return err
	}
	for _, n := range []int{44, 45} {
		if err := c.checkTime(pv1, 1, n); err != nil {
			return err
		}
	}
	if err := c.encounter(pv1); err != nil {
		return err
	}
	return c.adtClinical()
}

// encounterStatus is the Encounter.status each ADT trigger sets.
//
// A05 pre-admit: planned. A06 / A07 (outpatient to inpatient and back) and
// A12 (cancel transfer: PV1-3 is the location before the transfer, HL7
// v2.5.1 3.3.12) are full updates of the visit, in-progress. A21 leave of
// absence: onleave (the bed is kept: location reserved); A22 return:
// in-progress. A23 delete visit: entered-in-error, status only, like A11.
var encounterStatus = map[string]string{
	"A01": "in-progress", "A02": "in-progress", "A03": "finished", "A04": "in-progress",
	"A05": "planned", "A06": "in-progress", "A07": "in-progress",
	"A11": "entered-in-error", "A12": "in-progress", "A13": "in-progress", "A17": "in-progress",
	"A21": "onleave", "A22": "in-progress", "A23": "entered-in-error",
}

// statusOnly are the triggers that change only the status of the stored
// Encounter (see Resource.StatusOnly).
var statusOnly = map[string]bool{"A11": true, "A13": true, "A23": true}

var patientClass = map[string][2]string{
	"I": {"IMP", "inpatient encounter"}, "O": {"AMB", "ambulatory"}, "E": {"EMER", "emergency"},
	"P": {"PRENC", "pre-admission"}, "R": {"AMB", "ambulatory"}, "B": {"OBSENC", "observation encounter"},
	"N": {"AMB", "ambulatory"},
}

// EncounterID is the deterministic Encounter id for a visit number and its
// assigning authority system.
func EncounterID(system, visit string) string { return id("enc", system, visit) }

func (c *conv) encounter(pv1 hl7.Segment) error {
	e := obj{"subject": c.patientRef()}
	trig := c.res.Trigger
	visit := pv1.Field(19).Repetition(1)
	var rid string
	if v := visit.Component(1).Value(); v != "" && c.usableIdentifier(v) == "" && c.hasAuthority(visit) {
		ident, fi := c.identifier(visit)
		if visit.Component(5).Value() == "" {
			ident["type"] = obj{"coding": []any{obj{"system": sysV2_0203, "code": "VN"}}}
		}
		e["identifier"] = []any{ident}
		rid = EncounterID(fi.System, fi.Value)
	} else {
		// No visit number: one encounter per patient and admit time (or,
		// without one, per message), documented as a limitation.
		rid = id("enc", c.res.PatientID, firstNonEmpty(pv1.Field(44).Value(), c.source))
	}
	status := encounterStatus[trig]
	if status == "" { // A08: from the visit itself
		status = "in-progress"
		if pv1.Field(45).Value() != "" {
			status = "finished"
		}
	}
	e["status"] = status
	cls := pv1.Field(2).Value()
	if pc, ok := patientClass[cls]; ok {
		e["class"] = obj{"system": sysActCode, "code": pc[0], "display": pc[1]}
	} else {
		e["class"] = obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": firstNonEmpty(cls, "U")}
	}
	period := obj{}
	if s, ok := dateTime(pv1.Field(44).Value(), c.o.Location); ok {
		period["start"] = s
	}
	if s, ok := dateTime(pv1.Field(45).Value(), c.o.Location); ok {
		period["end"] = s
	}
	set(e, "period", period)
	var locs []any
	if l := locationDisplay(pv1.Field(3).Repetition(1)); l != "" {
		st := map[string]string{"finished": "completed", "planned": "planned", "onleave": "reserved"}[status]
		if st == "" {
			st = "active"
		}
		locs = append(locs, obj{"location": obj{"display": l}, "status": st})
	}
	if trig == "A02" {
		if l := locationDisplay(pv1.Field(6).Repetition(1)); l != "" {
			locs = append(locs, obj{"location": obj{"display": l}, "status": "completed"})
		}
	}
	set(e, "location", locs)
	var parts []any
	for _, pf := range []struct {
		n    int
		code string
	}{{7, "ATND"}, {8, "REF"}, {9, "CON"}, {17, "ADM"}} {
		if d := xcnDisplay(pv1.Field(pf.n).Repetition(1)); d != "" {
			parts = append(parts, obj{"type": []any{obj{"coding": []any{obj{
				"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": pf.code}}}},
				"individual": obj{"display": d}})
		}
	}
	parts = append(parts, c.visitRoles()...)
	set(e, "participant", parts)
	if svc := pv1.Field(10).Value(); svc != "" {
		e["serviceType"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0069", "code": svc}}}
	}
	hosp := obj{}
	if d := pv1.Field(36).Repetition(1); d.Component(1).Value() != "" {
		hosp["dischargeDisposition"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0112", "code": d.Component(1).Value()}}}
	}
	if a := pv1.Field(4).Value(); a != "" {
		hosp["admitSource"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0007", "code": a}}}
	}
	set(e, "hospitalization", hosp)
	if pv2, ok := c.m.Segment("PV2", 1); ok {
		if r := pv2.Field(3).Repetition(1); r.Component(1).Value() != "" || r.Component(2).Value() != "" {
			e["reasonCode"] = []any{cwe(r)}
		}
	}
	diags, err := c.encounterDiagnoses(rid)
	if err != nil {
		return err
	}
	set(e, "diagnosis", diags)
	c.encID = rid
	c.add("Encounter", rid, e)
	if statusOnly[trig] {
		last := &c.res.Resources[len(c.res.Resources)-1]
		last.StatusOnly, last.Status = true, status
	}
	return nil
}

// locationDisplay renders a PL (point of care^room^bed^facility...).
func locationDisplay(r hl7.Repetition) string {
	var parts []string
	for _, i := range []int{4, 1, 2, 3} {
		if v := r.Component(i).SubComponent(1); v != "" {
			parts = append(parts, v)
		}
	}
	return strings.Join(parts, " ")
}

// merge converts a merge or identifier change with one PID/MRG pair: A40
// (merge patient, identifier list), A34 (patient id only), A39 (merge
// person), A47 (change identifier list: MRG-1 is the wrong identifier,
// PID-3 the right one; the wrong one is retired the same way). A message
// with several pairs is refused as unsupported (AR) rather than
// converting only its first pair: Result has room for one merge.
func (c *conv) merge() error {
	if n, m := len(c.m.Segments("PID")), len(c.m.Segments("MRG")); n > 1 || m > 1 {
		return unsupported(c.res.MessageType, c.res.Trigger, fmt.Sprintf("with %d PID/MRG pairs is not converted by this feed (one pair per message)", max(n, m)))
	}
	p, err := c.patient()
	if err != nil {
		return err
	}
	mrg, err := c.requireSegment("MRG", "merge patient information")
	if err != nil {
		return err
	}
	prior := mrg.Field(1).Repetition(1)
	if w := c.usableIdentifier(prior.Component(1).Value()); w != "" || !c.hasAuthority(prior) {
		if w == "" {
			w = "no assigning authority"
		}
		return problem(hl7.ErrRequiredFieldMissing, at("MRG", 1, 1), "MRG-1 has no usable prior patient identifier (%s)", w)
	}
	_, old := c.identifier(prior)
	oldID := PatientID(old)
	if oldID == c.res.PatientID {
		return problem(hl7.ErrDataType, at("MRG", 1, 1), "%s merges a patient into itself", c.res.Trigger)
	}
	p["link"] = []any{obj{"other": obj{"reference": "Patient/" + oldID}, "type": "replaces"}}
	c.addPatient(p)
	c.res.Merge = &Merge{SurvivingID: c.res.PatientID, RetiredID: oldID, Retired: old}
	return nil
}

// unsupported is the ErrUnsupported refusal (AR, 201) of a message of a
// converted type whose content this feed does not convert.
func unsupported(code, trigger, why string) error {
	return unsupportedAs(hl7.ErrUnsupportedEventCode, code, trigger, why)
}

func unsupportedAs(cond hl7.ErrorCondition, code, trigger, why string) error {
	return fmt.Errorf("%w: %w", ErrUnsupported, &hl7.MessageError{Condition: cond, Location: at("MSH", 1, 9),
		Reason: fmt.Sprintf("message type %s^%s %s", code, trigger, why), Reject: true})
}
