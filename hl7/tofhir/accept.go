package tofhir

import (
	"fmt"
	"strings"

	"ehrgate/hl7"
)

// Acceptance rules: what a message must satisfy before anything in it is
// stored as clinical data. A message that fails them is refused with an
// *hl7.MessageError (the listener answers AE, or AR when it can never
// succeed, with an ERR segment built from it) and converts to nothing: a
// wrong identity or a half-read result is worse than no data, since the
// sender keeps an AE'd message and a person can see and replay it.
//
// References: HL7 v2.5.1 chapter 2 (2.15.9 MSH, message construction rules:
// Z-segments, ERR and table 0357 error conditions) and chapter 3 (PID-3
// and PID-5 are required, 3.4.2); the segment list is HL7 v2.8 Appendix A.

// standardSegments are the segment IDs HL7 v2.3 to v2.8 define. Any other
// segment is refused unless it is a Z-segment (site-defined).
var standardSegments = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Fields(`ABS ACC ADD ADJ AFF AIG AIL AIP AIS AL1 APR ARQ ARV AUT BHS BLC BLG BPO BPX
		BTS BTX BUI CDM CDO CER CM0 CM1 CM2 CNS CON CSP CSR CSS CTD CTI CTR DB1 DEV DG1 DMI DON DPS DRG DSC DSP
		DST ECD ECR EDU EQL EQP EQU ERQ ERR EVN FAC FHS FT1 FTS GOL GP1 GP2 GT1 IAM IAR IIM ILT IN1 IN2 IN3 INV
		IPC IPR ISD ITM IVC IVT KEY LAN LCC LCH LDP LOC LRL MFA MFE MFI MRG MSA MSH NCK NDS NK1 NPU NSC NST NTE
		OBR OBX ODS ODT OM1 OM2 OM3 OM4 OM5 OM6 OM7 OMC ORC ORG OVR PAC PCE PCR PD1 PDA PDC PEO PES PID PKG PMT
		PR1 PRA PRB PRC PRD PRT PSG PSH PSL PSS PTH PV1 PV2 PYE QAK QID QPD QRD QRF QRI RCP RDF RDT REL RF1 RFI
		RGS RMI ROL RQ1 RQD RXA RXC RXD RXE RXG RXO RXR RXV SAC SCD SCH SCP SDD SFT SGH SGT SHP SID SLT SPM STF
		STZ TCC TCD TQ1 TQ2 TXA UAC UB1 UB2 URD URS VAR VND`) {
		m[s] = true
	}
	return m
}()

// placeholderIDs are identifier values that stand for "unknown" rather
// than for a person; they are never used as an identity.
var placeholderIDs = map[string]bool{
	"UNKNOWN": true, "UNK": true, "NULL": true, "NONE": true, "N/A": true, "NA": true, "TBD": true,
	"TEMP": true, "?": true, "-": true,
}

func problem(cond hl7.ErrorCondition, loc hl7.ErrorLocation, format string, args ...any) *hl7.MessageError {
	return &hl7.MessageError{Condition: cond, Location: loc, Reason: fmt.Sprintf(format, args...)}
}

func at(seg string, seq, field int) hl7.ErrorLocation {
	return hl7.ErrorLocation{Segment: seg, Sequence: seq, Field: field}
}

// checkMessage applies the rules that do not depend on the trigger: the
// header, known segments, no control characters.
func checkMessage(m *hl7.Message) error {
	h := m.Header()
	if h.Name() != "MSH" {
		return &hl7.MessageError{Condition: hl7.ErrSegmentSequence, Location: at(h.Name(), 1, 0),
			Reason: "message does not start with MSH", Reject: true}
	}
	if h.NumFields() < 12 || h.Field(12).Value() == "" {
		return &hl7.MessageError{Condition: hl7.ErrRequiredFieldMissing, Location: at("MSH", 1, 12),
			Reason: "MSH-12 version id is missing (truncated header)", Reject: true}
	}
	if m.ControlID() == "" {
		return &hl7.MessageError{Condition: hl7.ErrRequiredFieldMissing, Location: at("MSH", 1, 10),
			Reason: "MSH-10 message control id is missing", Reject: true}
	}
	if mt := m.MessageType(); mt.Code == "" || mt.Trigger == "" {
		return &hl7.MessageError{Condition: hl7.ErrRequiredFieldMissing, Location: at("MSH", 1, 9),
			Reason: "MSH-9 message type and trigger event are required", Reject: true}
	}
	seq := map[string]int{}
	for i := 0; i < m.Len(); i++ {
		s := m.SegmentAt(i)
		name := s.Name()
		seq[name]++
		if i > 0 && name == "MSH" {
			return problem(hl7.ErrSegmentSequence, at(name, seq[name], 0), "a second MSH inside one message")
		}
		if !standardSegments[name] && !strings.HasPrefix(name, "Z") {
			return problem(hl7.ErrSegmentSequence, at(name, seq[name], 0),
				"segment %d is not an HL7 segment (only Z-segments may be site-defined)", i+1)
		}
		if f, ok := controlChar(s, m.Delimiters().Field); ok {
			return problem(hl7.ErrDataType, at(name, seq[name], f), "control character in the field")
		}
	}
	return nil
}

// controlChar finds a control character (other than TAB, which free text
// may carry) in a segment and returns its field number.
func controlChar(s hl7.Segment, sep byte) (int, bool) {
	raw := s.Raw()
	field := 0
	if len(raw) >= 3 && string(raw[:3]) == "MSH" {
		field = 1 // MSH-1 is the separator itself
	}
	for i, c := range raw {
		if i >= 3 && c == sep {
			field++
			continue
		}
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return field, true
		}
	}
	return 0, false
}

// usableIdentifier reports why a CX value cannot identify anyone ("" when
// it can): empty, the explicit null, blanks, control characters (a TAB is
// refused here too), a placeholder, or (when configured) not matching the
// feed's identifier pattern.
func (c *conv) usableIdentifier(v string) string {
	switch {
	case strings.TrimSpace(v) == "":
		return "blank"
	case v == `""`:
		return "explicit null"
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "control character"
		}
	}
	t := strings.ToUpper(strings.TrimSpace(v))
	if placeholderIDs[t] || strings.Trim(t, "0-. ") == "" {
		return "placeholder value"
	}
	for _, p := range c.o.Placeholders {
		if strings.EqualFold(strings.TrimSpace(p), t) {
			return "placeholder value"
		}
	}
	if c.o.IdentifierPattern != nil && !c.o.IdentifierPattern.MatchString(v) {
		return "does not match the feed's identifier pattern"
	}
	return ""
}

// hasAuthority reports whether a CX repetition has an assigning authority,
// or the feed supplies one.
func (c *conv) hasAuthority(r hl7.Repetition) bool {
	a := hdOf(r.Component(4))
	return a.namespace != "" || a.universal != "" || c.o.DefaultAuthority != "" || !c.o.RequireAuthority
}

// requireField returns a 101 error when field n of seg (occurrence seq) is empty.
func requireField(s hl7.Segment, seq, n int, what string) error {
	if f := s.Field(n); f.IsEmpty() || f.IsNull() || strings.TrimSpace(f.Value()) == "" && strings.TrimSpace(string(f.Raw())) == "" {
		return problem(hl7.ErrRequiredFieldMissing, at(s.Name(), seq, n), "%s-%d (%s) is required", s.Name(), n, what)
	}
	return nil
}

// requireSegment returns the first segment named name or a 100 error.
func (c *conv) requireSegment(name, what string) (hl7.Segment, error) {
	s, ok := c.m.Segment(name, 1)
	if !ok {
		return hl7.Segment{}, problem(hl7.ErrSegmentSequence, at(name, 1, 0), "%s segment (%s) is required for %s^%s",
			name, what, c.res.MessageType, c.res.Trigger)
	}
	return s, nil
}

// checkTime validates a TS/DTM field that the conversion uses.
func (c *conv) checkTime(s hl7.Segment, seq, n int) error {
	v := s.Field(n).Value()
	if v == "" || v == `""` {
		return nil
	}
	if _, ok := dateTime(v, c.o.Location); !ok {
		return problem(hl7.ErrDataType, at(s.Name(), seq, n), "%s-%d is not a valid date/time", s.Name(), n)
	}
	return nil
}
