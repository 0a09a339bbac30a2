package tofhir

import (
	"bytes"
	"errors"
	"fmt"

	"ehrgate/hl7"
)

// swap converts ADT^A17 (swap patients): two PID/PV1 pairs, each the new
// state of one patient (HL7 v2.5.1 3.3.17: "the first PID/PV1 pair is the
// patient moved to the location of the second, and the second to that of
// the first"; message structure ADT_A17: MSH EVN PID [PD1] PV1 [PV2] [DB1]
// [OBX] PID [PD1] PV1 [PV2] [DB1] [OBX]).
//
// Each pair is converted on its own, exactly as an ADT visit update of its
// patient (Patient + Encounter with PV1-3 as the new active location, its
// PD1, ROL and OBX; the IG's ADT_A17 message map applies the PID and PV1
// segment maps once per pair), so that each patient's data goes to that
// patient's resources only: the pairs are never merged. The acceptance
// rules apply to both pairs; a refusal names the pair's own PID/PV1
// occurrence (PID[2]-3 for the second patient). Two pairs naming the same
// patient, or the same visit for two patients, are refused (AE 102): a
// swap of a patient with itself is a sender error, and converting it would
// write one person's bed over the other's.
func (c *conv) swap() error {
	pids := c.m.Segments("PID")
	if len(pids) != 2 {
		return problem(hl7.ErrSegmentSequence, at("PID", min(len(pids)+1, 3), 0),
			"%s^%s needs exactly two PID/PV1 pairs, got %d PID", c.res.MessageType, c.res.Trigger, len(pids))
	}
	pairs := c.pairs()
	if len(pairs) != 2 {
		return problem(hl7.ErrSegmentSequence, at("PV1", 1, 0), "%s^%s needs a PV1 after each PID", c.res.MessageType, c.res.Trigger)
	}
	var first *Result
	for n, seg := range pairs {
		sub, err := c.subMessage(seg)
		if err != nil {
			return err
		}
		sc := &conv{m: sub, o: c.o, source: c.source, checkOnly: c.checkOnly,
			res: &Result{MessageType: c.res.MessageType, Trigger: c.res.Trigger, Source: c.source}}
		if err := sc.adt(true); err != nil {
			return renumber(err, seg.before)
		}
		if n == 0 {
			first = sc.res
			*c.res = *sc.res
			c.res.Patients = []PatientRef{{ID: sc.res.PatientID, Identifier: sc.res.Patient}}
			continue
		}
		if sc.res.PatientID == first.PatientID {
			return problem(hl7.ErrDataType, at("PID", 2, 3), "%s swaps a patient with itself", c.res.Trigger)
		}
		if e1, e2 := first.Of("Encounter"), sc.res.Of("Encounter"); len(e1) == 1 && len(e2) == 1 && e1[0].ID == e2[0].ID {
			return problem(hl7.ErrDataType, at("PV1", 2, 19), "%s gives both patients the same visit", c.res.Trigger)
		}
		c.res.Resources = append(c.res.Resources, sc.res.Resources...)
		c.res.Patients = append(c.res.Patients, PatientRef{ID: sc.res.PatientID, Identifier: sc.res.Patient})
	}
	return nil
}

// pairSegs is one PID/PV1 group of an A17: the indexes of its segments in
// the message and, per segment name, how many came before the group (to
// renumber error locations).
type pairSegs struct {
	idx    []int
	before map[string]int
}

// pairs splits the segments after MSH/EVN into the groups that start at
// each PID; a group without a PV1 is not a pair.
func (c *conv) pairs() []pairSegs {
	var out []pairSegs
	seen := map[string]int{}
	cur := -1
	for i := 0; i < c.m.Len(); i++ {
		name := c.m.SegmentAt(i).Name()
		if name == "PID" {
			before := map[string]int{}
			for k, v := range seen {
				before[k] = v
			}
			out = append(out, pairSegs{before: before})
			cur = len(out) - 1
		}
		seen[name]++
		if cur >= 0 {
			out[cur].idx = append(out[cur].idx, i)
		}
	}
	var pairs []pairSegs
	for _, p := range out {
		for _, i := range p.idx {
			if c.m.SegmentAt(i).Name() == "PV1" {
				pairs = append(pairs, p)
				break
			}
		}
	}
	return pairs
}

// subMessage builds the message one pair is converted from: the header
// (MSH, EVN) and the pair's segments. m is already UTF-8.
func (c *conv) subMessage(p pairSegs) (*hl7.Message, error) {
	var b bytes.Buffer
	for i := 0; i < c.m.Len(); i++ {
		s := c.m.SegmentAt(i)
		if s.Name() == "PID" {
			break
		}
		b.Write(s.Raw())
		b.WriteByte('\r')
	}
	for _, i := range p.idx {
		b.Write(c.m.SegmentAt(i).Raw())
		b.WriteByte('\r')
	}
	sub, err := hl7.Parse(b.Bytes(), hl7.ParseOptions{})
	if err != nil { // the segments parsed as part of the whole message
		return nil, fmt.Errorf("splitting %s^%s into its pairs: %w", c.res.MessageType, c.res.Trigger, err)
	}
	return sub, nil
}

// renumber moves the location of a refusal found in a pair's sub-message
// to the segment's occurrence in the whole message.
func renumber(err error, before map[string]int) error {
	var me *hl7.MessageError
	if !errors.As(err, &me) || me.Location.Segment == "" || me.Location.Segment == "MSH" {
		return err
	}
	me.Location.Sequence += before[me.Location.Segment]
	return err
}
