package tofhir

import (
	"encoding/base64"
	"strings"

	"ehrgate/hl7"
)

// Documents: MDM^T02 (original document with content) and MDM^T06
// (addendum with content) to DocumentReference, following the HL7
// v2-to-FHIR IG's "Message MDM_T02 to Bundle" map and "Segment TXA to
// DocumentReference" map; the document body is the OBX segments after the
// TXA. Notifications without content (T01, T03, T05, ...) and edits and
// replacements (T08-T11) are not converted. PV1, ORC/OBR and CON of an MDM
// stay in the raw message.

// docStatus maps TXA-17 completion status (table 0271).
var docStatus = map[string]string{
	"AU": "final", "LA": "final", "DI": "preliminary", "DO": "preliminary", "IN": "preliminary",
	"IP": "preliminary", "PA": "preliminary",
}

// docAvailability maps TXA-19 availability status (table 0275) to
// DocumentReference.status.
var docAvailability = map[string]string{"AV": "current", "UN": "current", "OB": "superseded", "CA": "entered-in-error"}

// presentation maps TXA-3 document content presentation (table 0191) to a
// MIME type for text content.
var presentation = map[string]string{"TX": "text/plain", "FT": "text/plain", "HT": "text/html", "": "text/plain"}

// document maps the TXA and its OBX to a DocumentReference: type ← TXA-2
// (v2-0270 when CE-3 is empty), context.period.start ← TXA-4, date and
// content.attachment.creation ← TXA-6, author ← TXA-9 (display),
// masterIdentifier ← TXA-12, relatesTo (appends, T06) ← TXA-13,
// docStatus ← TXA-17, status ← TXA-19 (default current), description ←
// TXA-16 file name, content ← the OBX: text values (TX, FT, ST) joined by
// newlines as one base64 text attachment (content type from TXA-3), ED
// and RP values as attachments of their own; subject → Patient.
//
// Id: hash(patient, TXA-12 unique document number + namespace), else
// hash(patient, message): the patient is part of the key so a document
// number never moves a document between patients.
func (c *conv) document() error {
	txa, err := c.requireSegment("TXA", "transcription document header")
	if err != nil {
		return err
	}
	if err := requireField(txa, 1, 2, "document type"); err != nil {
		return err
	}
	for _, n := range []int{4, 6} {
		if err := c.checkTime(txa, 1, n); err != nil {
			return err
		}
	}
	p, err := c.patient()
	if err != nil {
		return err
	}
	var lines []string
	var parts []any
	after := false
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		switch s.Name() {
		case "TXA":
			after = true
		case "OBX":
			if !after {
				continue
			}
			if a := attachment(s); a != nil {
				if len(a) > 0 {
					parts = append(parts, obj{"attachment": a})
				}
				continue
			}
			switch s.Field(2).Value() {
			case "TX", "FT", "ST", "":
				f := s.Field(5)
				for j := 1; j <= f.NumRepetitions(); j++ {
					lines = append(lines, hl7.Unescape(string(f.Repetition(j).Raw()), c.m.Delimiters()))
				}
			}
		}
	}
	c.addPatient(p)
	creation, _ := dateTime(txa.Field(6).Value(), c.o.Location)
	if len(lines) > 0 {
		a := obj{"contentType": firstNonEmpty(presentation[strings.ToUpper(txa.Field(3).Value())], "text/plain"),
			"data": base64.StdEncoding.EncodeToString([]byte(strings.Join(lines, "\n")))}
		parts = append([]any{obj{"attachment": a}}, parts...)
	}
	for _, pt := range parts {
		set(pt.(obj)["attachment"].(obj), "creation", creation)
	}
	d := obj{"subject": c.patientRef()}
	set(d, "content", parts)
	typ := txa.Field(2).Repetition(1)
	cc := cwe(typ)
	if typ.Component(1).Value() != "" && typ.Component(3).Value() == "" {
		cd := obj{"code": typ.Component(1).Value(), "system": "http://terminology.hl7.org/CodeSystem/v2-0270"}
		set(cd, "display", typ.Component(2).Value())
		cc["coding"] = append([]any{cd}, codingsAfterFirst(cc)...)
	}
	d["type"] = cc
	if t, ok := dateTime(txa.Field(4).Value(), c.o.Location); ok {
		d["context"] = obj{"period": obj{"start": t}}
	}
	set(d, "date", instantOf(creation))
	if a := xcnDisplay(txa.Field(9).Repetition(1)); a != "" {
		d["author"] = []any{obj{"display": a}}
	}
	key := c.source
	ei := func(r hl7.Repetition) obj {
		return obj{"value": r.Component(1).Value(),
			"system": c.system(hd{namespace: r.Component(2).Value(), universal: r.Component(3).Value(), typ: r.Component(4).Value()})}
	}
	if r := txa.Field(12).Repetition(1); c.usableIdentifier(r.Component(1).Value()) == "" {
		d["masterIdentifier"] = ei(r)
		key = firstNonEmpty(r.Component(2).Value(), r.Component(3).Value()) + "|" + r.Component(1).Value()
	}
	if r := txa.Field(13).Repetition(1); c.res.Trigger == "T06" && c.usableIdentifier(r.Component(1).Value()) == "" {
		d["relatesTo"] = []any{obj{"code": "appends", "target": obj{"identifier": ei(r)}}}
	}
	set(d, "docStatus", docStatus[strings.ToUpper(txa.Field(17).Value())])
	d["status"] = firstNonEmpty(docAvailability[strings.ToUpper(txa.Field(19).Value())], "current")
	set(d, "description", txa.Field(16).Value())
	c.add("DocumentReference", id("doc", c.res.PatientID, key), d)
	return nil
}

// instantOf returns a dateTime that has a time (DocumentReference.date is
// an instant), else "".
func instantOf(dt string) string {
	if len(dt) > 10 {
		return dt
	}
	return ""
}
