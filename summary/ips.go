package summary

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"time"
)

// IPSOptions say what the IPS document refers to.
type IPSOptions struct {
	// PatientURL is the Patient's fullUrl (the API's absolute URL of the
	// served Patient); Patient its resource as served (nil: a Patient
	// with the summary's gender and birth date only).
	PatientURL string
	Patient    json.RawMessage
	// Now is the document's timestamp.
	Now time.Time
}

// IPS terminology.
const (
	loincSystem  = "http://loinc.org"
	emptyReasons = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
	// The IPS Composition (http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips).
	ipsProfile = "http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips"
)

// IPS renders the summary as an International Patient Summary document
// Bundle (HL7 FHIR IPS, http://hl7.org/fhir/uv/ips/): a Composition (LOINC
// 60591-5) with the sections Problems (11450-4), Medications (10160-0),
// Allergies (48765-2), Results (30954-2) and Vital signs (8716-3), then
// the Patient, the authoring Device and one resource per statement
// (Condition, MedicationRequest, AllergyIntolerance, Observation; the
// last and previous value of each result). Each resource's identifiers
// cite its sources (system "urn:ehrgate:connection:" and the connection,
// value "Type/id"). Every section has a generated narrative that also
// says, per source, what it lacks. A section without entries has an
// emptyReason (list-empty-reason): "withheld" when the caller may not
// read the type, "nilknown" when every source was read and recorded none,
// else "unavailable" (a source does not provide the type, its fetch
// failed or it was never fetched); its text says which source and why.
// Encounters have no IPS section and are left out. The same summary and
// options give the same bytes.
func IPS(s *Summary, o IPSOptions) ([]byte, error) {
	ts := o.Now.UTC().Format(time.RFC3339)
	subject := map[string]any{"reference": o.PatientURL}
	d := &doc{}
	var patient any = o.Patient
	if o.Patient == nil {
		p := map[string]any{"resourceType": "Patient", "id": uid("patient", s.Patient.Sources)}
		if s.Patient.Gender != "" {
			p["gender"] = s.Patient.Gender
		}
		if s.Patient.BirthDate != "" {
			p["birthDate"] = s.Patient.BirthDate
		}
		patient = p
	}
	deviceID := uid("device", nil)
	var sections []any

	var refs []string
	for _, p := range s.Problems.Items {
		status := p.Status
		if !validIn(status, "active", "recurrence", "relapse", "inactive", "remission", "resolved") {
			status = map[bool]string{true: "active", false: "inactive"}[p.Active]
		}
		r := map[string]any{"resourceType": "Condition",
			"identifier":     identifiers(p.Sources),
			"clinicalStatus": coded("http://terminology.hl7.org/CodeSystem/condition-clinical", status),
			"code":           concept(p.Code, p.Text), "subject": subject}
		if p.Onset != "" {
			r["onsetDateTime"] = p.Onset
		}
		refs = append(refs, d.add("Condition", p.Sources, r))
	}
	sections = append(sections, section("Problems", "11450-4", "Problem list - Reported", refs,
		mapLines(s.Problems.Items, problemLine), &s.Problems.Section))

	refs = nil
	for _, m := range s.Medications.Items {
		r := map[string]any{"resourceType": "MedicationRequest", "identifier": identifiers(m.Sources),
			"status": "active", "intent": "order", "medicationCodeableConcept": concept(m.Code, m.Text), "subject": subject}
		if m.AuthoredOn != "" {
			r["authoredOn"] = m.AuthoredOn
		}
		if m.Dosage != "" {
			r["dosageInstruction"] = []any{map[string]any{"text": m.Dosage}}
		}
		if m.Stale {
			r["note"] = []any{map[string]any{"text": "Stale order: " + m.StaleReason}}
		}
		refs = append(refs, d.add("MedicationRequest", m.Sources, r))
	}
	sections = append(sections, section("Medication Summary", "10160-0", "History of Medication use Narrative", refs,
		mapLines(s.Medications.Items, medicationLine), &s.Medications.Section))

	refs = nil
	for _, a := range s.Allergies.Items {
		status := a.Status
		if !validIn(status, "active", "inactive", "resolved") {
			status = map[bool]string{true: "active", false: "inactive"}[a.Active]
		}
		r := map[string]any{"resourceType": "AllergyIntolerance", "identifier": identifiers(a.Sources),
			"clinicalStatus": coded("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", status),
			"code":           concept(a.Code, a.Substance), "patient": subject}
		if validIn(a.Criticality, "low", "high", "unable-to-assess") {
			r["criticality"] = a.Criticality
		}
		if len(a.Reactions) > 0 {
			var mf []any
			for _, x := range a.Reactions {
				mf = append(mf, map[string]any{"text": x})
			}
			r["reaction"] = []any{map[string]any{"manifestation": mf}}
		}
		refs = append(refs, d.add("AllergyIntolerance", a.Sources, r))
	}
	sections = append(sections, section("Allergies and Intolerances", "48765-2", "Allergies and adverse reactions Document", refs,
		mapLines(s.Allergies.Items, allergyLine), &s.Allergies.Section))

	results := func(items []Result, category string) []string {
		var refs []string
		for _, x := range items {
			for _, p := range []*Point{&x.Last, x.Previous} {
				if p == nil {
					continue
				}
				refs = append(refs, d.add("Observation", p.Sources, observation(x, *p, category, subject)))
			}
		}
		return refs
	}
	sections = append(sections, section("Results", "30954-2", "Relevant diagnostic tests/laboratory data Narrative",
		results(s.Labs.Items, "laboratory"), mapLines(s.Labs.Items, resultLine), &s.Labs.Section))
	sections = append(sections, section("Vital Signs", "8716-3", "Vital signs", results(s.Vitals.Items, "vital-signs"),
		mapLines(s.Vitals.Items, resultLine), &s.Vitals.Section))

	comp := map[string]any{"resourceType": "Composition", "id": uid("composition "+ts, s.Patient.Sources),
		"meta":    map[string]any{"profile": []string{ipsProfile}},
		"status":  "final",
		"type":    map[string]any{"coding": []any{map[string]any{"system": loincSystem, "code": "60591-5", "display": "Patient summary Document"}}},
		"subject": subject, "date": ts,
		"author":  []any{map[string]any{"reference": "urn:uuid:" + deviceID}},
		"title":   "International Patient Summary",
		"section": sections}
	entries := []any{
		map[string]any{"fullUrl": "urn:uuid:" + comp["id"].(string), "resource": comp},
		map[string]any{"fullUrl": o.PatientURL, "resource": patient},
		map[string]any{"fullUrl": "urn:uuid:" + deviceID, "resource": map[string]any{"resourceType": "Device", "id": deviceID,
			"deviceName": []any{map[string]any{"name": "ehrgate", "type": "user-friendly-name"}}}},
	}
	entries = append(entries, d.entries...)
	bundleID := uid("bundle "+ts, s.Patient.Sources)
	b := map[string]any{"resourceType": "Bundle", "id": bundleID,
		"identifier": map[string]any{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:" + bundleID},
		"type":       "document", "timestamp": ts, "entry": entries}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false) // the narratives are XHTML
	if err := enc.Encode(b); err != nil {
		return nil, fmt.Errorf("summary: encoding the IPS bundle: %w", err)
	}
	return out.Bytes(), nil
}

// doc collects a document's statement resources.
type doc struct {
	entries []any
	seen    map[string]int
}

// add adds a resource with an id derived from its sources and returns its
// fullUrl.
func (d *doc) add(typ string, sources []Source, r map[string]any) string {
	if d.seen == nil {
		d.seen = map[string]int{}
	}
	key := typ + fmt.Sprint(sources)
	d.seen[key]++
	id := uid(fmt.Sprintf("%s#%d", typ, d.seen[key]), sources)
	r["id"] = id
	url := "urn:uuid:" + id
	d.entries = append(d.entries, map[string]any{"fullUrl": url, "resource": r})
	return url
}

func observation(x Result, p Point, category string, subject any) map[string]any {
	r := map[string]any{"resourceType": "Observation", "identifier": identifiers(p.Sources), "status": "final",
		"category": []any{map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}}}},
		"code": concept(x.Code, x.Name), "subject": subject}
	if p.Date != "" {
		r["effectiveDateTime"] = p.Date
	}
	q := p.Quantity
	switch {
	case p.Systolic != nil && p.Diastolic != nil:
		r["component"] = []any{
			map[string]any{"code": concept(Code{System: loincSystem, Code: "8480-6"}, "Systolic blood pressure"), "valueQuantity": quantity(Quantity{Value: *p.Systolic, Unit: q.Unit, UCUM: q.UCUM})},
			map[string]any{"code": concept(Code{System: loincSystem, Code: "8462-4"}, "Diastolic blood pressure"), "valueQuantity": quantity(Quantity{Value: *p.Diastolic, Unit: q.Unit, UCUM: q.UCUM})},
		}
	case q != nil:
		r["valueQuantity"] = quantity(*q)
	default:
		r["valueString"] = p.Value
	}
	if p.Flag != "" {
		r["interpretation"] = []any{map[string]any{"text": p.Flag}}
	}
	return r
}

func quantity(q Quantity) map[string]any {
	m := map[string]any{"value": q.Value}
	if q.Comparator != "" {
		m["comparator"] = q.Comparator
	}
	if q.Unit != "" {
		m["unit"] = q.Unit
		if q.UCUM {
			m["system"], m["code"] = "http://unitsofmeasure.org", q.Unit
		}
	}
	return m
}

// section builds a Composition section with its narrative and entries, or
// its emptyReason.
func section(title, code, display string, refs, lines []string, s *Section) map[string]any {
	sec := map[string]any{"title": title,
		"code": map[string]any{"coding": []any{map[string]any{"system": loincSystem, "code": code, "display": display}}}}
	var div strings.Builder
	div.WriteString(`<div xmlns="http://www.w3.org/1999/xhtml">`)
	if len(lines) > 0 {
		div.WriteString("<ul>")
		for _, l := range lines {
			div.WriteString("<li>" + html.EscapeString(l) + "</li>")
		}
		div.WriteString("</ul>")
	}
	ns := notes(s, strings.ToLower(title), "")
	for _, l := range ns {
		div.WriteString("<p>" + html.EscapeString(l) + "</p>")
	}
	div.WriteString("</div>")
	sec["text"] = map[string]any{"status": "generated", "div": div.String()}
	if len(refs) > 0 {
		var es []any
		for _, r := range refs {
			es = append(es, map[string]any{"reference": r})
		}
		sec["entry"] = es
		return sec
	}
	reason, label := "unavailable", "Unavailable"
	switch s.State {
	case StateWithheld:
		reason, label = "withheld", "Information Withheld"
	case StateNone:
		reason, label = "nilknown", "Nil Known"
	}
	sec["emptyReason"] = map[string]any{"coding": []any{map[string]any{"system": emptyReasons, "code": reason, "display": label}},
		"text": strings.Join(ns, " ")}
	return sec
}

func identifiers(ss []Source) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = map[string]any{"system": "urn:ehrgate:connection:" + s.Connection, "value": s.Type + "/" + s.ID}
	}
	return out
}

func coded(system, code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}
}

func concept(c Code, text string) map[string]any {
	m := map[string]any{}
	if c.Code != "" {
		co := map[string]any{"code": c.Code}
		if c.System != "" {
			co["system"] = c.System
		}
		m["coding"] = []any{co}
	}
	if text != "" {
		m["text"] = text
	}
	return m
}

func validIn(s string, vals ...string) bool {
	for _, v := range vals {
		if s == v {
			return true
		}
	}
	return false
}

// uid derives a stable UUID-shaped id (version 8, RFC 9562 section 5.8)
// from a kind and sources.
func uid(kind string, sources []Source) string {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, s := range sources {
		fmt.Fprintf(h, "|%s/%s/%s", s.Connection, s.Type, s.ID)
	}
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
