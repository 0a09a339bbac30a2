package tofhir

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"ehrgate/hl7"
)

// The message itself: every converted message adds a MessageHeader (what
// was sent, by whom, to whom) and a Provenance (which resources it created
// or changed, on whose behalf), after its clinical resources, so that a
// reader can trace any stored resource to the message that last changed
// it (and to its raw bytes in the message log, through meta.source).
//
// Both ids are hash(meta.source, hl7.ContentHash): a resend of the same
// message gives the same ids, a control id reused for other content gives
// new ones. The MessageHeader is message-level (Resource.PatientID ""); the
// Provenance belongs to the message's patient (its Patient target: FHIR's
// Patient compartment puts a Provenance in the compartment of the Patient
// it targets, and normalize reads it so).

// messageHeader converts MSH following the IG's "Segment MSH to
// MessageHeader" map (http://hl7.org/fhir/uv/v2mappings/segment-msh-to-messageheader,
// v1.0.0):
//
//   - MSH-3 sending application (MSH-24 sending network address when MSH-3
//     is not valued) → source.name (HD.1), source.endpoint (HD.2 as a URI
//     by HD.3: urn:oid for ISO, urn:uuid for UUID, the URI for URI; else a
//     data-absent-reason, since R4 requires an endpoint)
//   - MSH-4 sending facility → sender (the IG creates an Organization from the
//     HD; ehrgate keeps a logical reference: display HD.1, identifier from
//     HD.2/HD.3), MSH-22 sending responsible organization (XON.1) preferred
//     as its display when valued
//   - MSH-5 receiving application → destination.name / destination.endpoint;
//     MSH-6 receiving facility → destination.receiver (logical reference);
//     MSH-6 alone gives a destination whose endpoint is data-absent;
//     MSH-25 receiving network address → another destination (unless it
//     repeats MSH-5), MSH-23 receiving responsible organization its receiver
//   - MSH-8 security → meta.security; MSH-11 processing id → meta.tag
//     (v2-0103); MSH-9.2 trigger → eventCoding (v2-0003); MSH-19 principal
//     language → language (CWE.1, else CWE.4)
//
// MSH-7 (date/time of message) is the Provenance's recorded time; MSH-10
// (the IG's Bundle.identifier, no MessageHeader element) stays in
// meta.source.
func (c *conv) messageHeader(rid string) {
	h := c.m.Header()
	mh := obj{}
	meta := obj{}
	if sec := h.Field(8).Value(); sec != "" {
		meta["security"] = []any{obj{"code": sec}}
	}
	if p := h.Field(11).Component(1).Value(); p != "" {
		meta["tag"] = []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0103", "code": p}}
	}
	if len(meta) > 0 {
		mh["meta"] = meta
	}
	mh["eventCoding"] = obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": c.res.Trigger}
	app := hdOfField(h.Field(3))
	if app == (hd{}) {
		app = hdOfField(h.Field(24)) // sending network address
	}
	src := obj{}
	setEndpoint(src, app)
	set(src, "name", app.namespace)
	mh["source"] = src
	if ref := c.facilityRef(); ref != nil {
		mh["sender"] = ref
	}
	var dests []any
	seen := map[hd]bool{}
	for _, d := range []struct{ app, fac int }{{5, 6}, {25, 23}} {
		a := hdOfField(h.Field(d.app))
		var recv obj
		if d.fac == 6 {
			if f := hdOfField(h.Field(6)); f != (hd{}) {
				recv = hdRef(f, "Organization")
			}
		} else if n := h.Field(23).Component(1).Value(); n != "" {
			recv = obj{"type": "Organization", "display": n}
		}
		if (a == (hd{}) && recv == nil) || (a != (hd{}) && seen[a]) {
			continue
		}
		seen[a] = true
		dst := obj{}
		setEndpoint(dst, a)
		set(dst, "name", a.namespace)
		if recv != nil {
			dst["receiver"] = recv
		}
		dests = append(dests, dst)
	}
	set(mh, "destination", dests)
	lang := h.Field(19)
	set(mh, "language", firstNonEmpty(lang.Component(1).Value(), lang.Component(4).Value()))
	c.add("MessageHeader", rid, mh)
}

// provenance records what the message did, following the IG's
// "MSH[Provenance-Source]" map (CSV source "HL7 Segment - FHIR E2_
// MSH[Provenance-Source]" in github.com/HL7/v2-to-fhir):
//
//   - target ← every resource the message converted, plus the retired
//     Patient of a merge (the store-backed handler keeps only those it
//     created or changed, see RetargetProvenance)
//   - recorded and occurredDateTime ← MSH-7 (when it has a time; R4
//     requires an instant, so a date-only MSH-7 leaves both out)
//   - activity ← MSH-9: coding.display "message - MSG.1^MSG.2^MSG.3" (the
//     map), with the trigger as a v2-0003 code
//   - agent author ← MSH-4 sending facility (unless MSH-22 is valued) and
//     MSH-22 sending responsible organization, logical Organization
//     references; only when neither is valued the sending application
//     (R4 requires an agent)
//   - entity source ← the message: the MessageHeader (the map points at a
//     DocumentReference holding the raw message; ehrgate keeps the raw
//     bytes in its message log, found by meta.source), and ← MSH-3 sending
//     application as a logical Device reference
func (c *conv) provenance(rid, headerID, patientID string) {
	h := c.m.Header()
	var targets []any
	seen := map[string]bool{}
	addTarget := func(ref string) {
		if !seen[ref] {
			seen[ref] = true
			targets = append(targets, obj{"reference": ref})
		}
	}
	for _, r := range c.res.Resources {
		if r.Type != "MessageHeader" && r.Type != "Provenance" && (patientID == "" || r.PatientID == patientID) {
			addTarget(r.Type + "/" + r.ID)
		}
	}
	if c.res.Merge != nil {
		addTarget("Patient/" + c.res.Merge.RetiredID)
	}
	p := obj{"target": targets}
	if t, ok := dateTime(h.Field(7).Value(), c.o.Location); ok && len(t) > 10 {
		p["recorded"] = t
		p["occurredDateTime"] = t
	}
	mt := h.Field(9)
	p["activity"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": c.res.Trigger,
		"display": "message - " + mt.Component(1).Value() + "^" + mt.Component(2).Value() + "^" + mt.Component(3).Value()}}}
	author := obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}}}
	var agents []any
	if fac := hdOfField(h.Field(4)); fac != (hd{}) && h.Field(22).Component(1).Value() == "" {
		agents = append(agents, obj{"type": author, "who": hdRef(fac, "Organization")})
	}
	if n := h.Field(22).Component(1).Value(); n != "" {
		agents = append(agents, obj{"type": author, "who": obj{"type": "Organization", "display": n}})
	}
	app := hdOfField(h.Field(3))
	if len(agents) == 0 {
		who := obj{"display": "sender not stated (MSH-3, MSH-4 empty)"}
		if app != (hd{}) {
			who = hdRef(app, "Device")
		}
		agents = append(agents, obj{"type": author, "who": who})
	}
	p["agent"] = agents
	entities := []any{obj{"role": "source", "what": obj{"reference": "MessageHeader/" + headerID}}}
	if app != (hd{}) {
		entities = append(entities, obj{"role": "source", "what": hdRef(app, "Device")})
	}
	p["entity"] = entities
	c.add("Provenance", rid, p)
}

// addMessage adds the MessageHeader and the Provenance of a converted
// message (see the comment at the top of this file). A message about two
// patients (A17) gets one Provenance per patient, each targeting that
// patient's resources, so that each patient's record holds its own.
func (c *conv) addMessage() {
	key := hex.EncodeToString(hl7.ContentHash(c.m))
	hid := id("msg", c.source, key)
	patient := c.res.PatientID
	c.res.PatientID = "" // MessageHeader: message-level, no patient
	c.messageHeader(hid)
	if len(c.res.Patients) <= 1 {
		c.res.PatientID = patient
		c.provenance(id("prov", c.source, key), hid, "")
	} else {
		for _, p := range c.res.Patients {
			c.res.PatientID = p.ID
			c.provenance(id("prov", c.source, key, p.ID), hid, p.ID)
		}
	}
	c.res.PatientID = patient
}

// facilityRef is the logical reference to the sending facility: MSH-4
// (HD), with MSH-22 (XON.1, sending responsible organization) as the
// display when valued; nil when neither is.
func (c *conv) facilityRef() obj {
	h := c.m.Header()
	fac := hdOfField(h.Field(4))
	if fac == (hd{}) && h.Field(22).Component(1).Value() == "" {
		return nil
	}
	ref := hdRef(fac, "Organization")
	set(ref, "display", h.Field(22).Component(1).Value())
	return ref
}

// hdRef is a logical reference to what an HD names: display ← HD.1,
// identifier ← HD.2 as a URI (HD[Identifier]: system urn:ietf:rfc:3986).
func hdRef(a hd, typ string) obj {
	ref := obj{"type": typ}
	set(ref, "display", a.namespace)
	if u := hdURI(a); u != "" {
		ref["identifier"] = obj{"system": "urn:ietf:rfc:3986", "value": u}
	}
	return ref
}

// hdURI renders HD.2 as a URI by its type HD.3 ("" when it cannot).
func hdURI(a hd) string {
	switch {
	case a.universal == "":
		return ""
	case strings.EqualFold(a.typ, "ISO"):
		return "urn:oid:" + a.universal
	case strings.EqualFold(a.typ, "UUID"):
		return "urn:uuid:" + a.universal
	case strings.EqualFold(a.typ, "URI"):
		return a.universal
	}
	return ""
}

// setEndpoint sets MessageHeader.source/destination.endpoint (R4: 1..1)
// from an HD: HD.2 as a URI by its type HD.3, else the data-absent-reason
// extension "unknown", as the IG's HD[uri] map leaves it when there is no
// universal id.
func setEndpoint(o obj, a hd) {
	if u := hdURI(a); u != "" {
		o["endpoint"] = u
		return
	}
	o["_endpoint"] = obj{"extension": []any{obj{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}}}
}

// RetargetProvenance returns the Provenance raw (as Convert made it) with
// only the targets keep accepts, and false when none is left: a message
// that changed nothing (every resource repeated unchanged) has no
// Provenance of its own, since R4 requires a target and each unchanged
// resource already has the Provenance of the message that last changed it.
func RetargetProvenance(raw []byte, keep func(ref string) bool) ([]byte, bool, error) {
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, false, fmt.Errorf("reading converted Provenance: %w", err)
	}
	ts, _ := p["target"].([]any)
	var kept []any
	for _, t := range ts {
		m, _ := t.(map[string]any)
		if ref, _ := m["reference"].(string); ref != "" && keep(ref) {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		return nil, false, nil
	}
	if len(kept) == len(ts) {
		return raw, true, nil
	}
	p["target"] = kept
	b, err := json.Marshal(p)
	if err != nil {
		return nil, false, fmt.Errorf("encoding Provenance: %w", err)
	}
	return b, true, nil
}
