package hl7store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/events"
	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
	"ehrgate/hl7/tofhir"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

var clock = func() time.Time { return time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC) }

func newStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func msg(t *testing.T, name string) *hl7.Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "tofhir", "testdata", "messages", name+".hl7"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7.Parse(b, hl7.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func handle(t *testing.T, h *Handler, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := h.HandleMessage(context.Background(), msg(t, n)); err != nil {
			t.Fatalf("HandleMessage(%s): %v", n, err)
		}
	}
}

func resource(t *testing.T, s *sqlite.Store, typ, id string) (store.Record, map[string]any) {
	t.Helper()
	rec, err := s.Get(context.Background(), "hl7", typ, id)
	if err != nil {
		t.Fatalf("Get(%s/%s): %v", typ, id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Raw, &m); err != nil {
		t.Fatal(err)
	}
	return rec, m
}

func count(t *testing.T, s *sqlite.Store, typ string) int {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range st.Resources {
		if tc.Connection == "hl7" && tc.Type == typ {
			return tc.Count
		}
	}
	return 0
}

func encounterID(t *testing.T, s *sqlite.Store) string {
	t.Helper()
	res, err := tofhir.Convert(msg(t, "adt-a01"), tofhir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Of("Encounter")[0].ID
}

func TestUpdatesAreUpdates(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	handle(t, h, "adt-a01", "adt-a02", "adt-a08", "adt-a03")
	if n := count(t, s, "Encounter"); n != 1 {
		t.Fatalf("Encounters = %d, want 1 (A02/A08/A03 update the A01 visit)", n)
	}
	if n := count(t, s, "Patient"); n != 1 {
		t.Fatalf("Patients = %d, want 1", n)
	}
	rec, enc := resource(t, s, "Encounter", encounterID(t, s))
	if enc["status"] != "finished" {
		t.Errorf("status after A03 = %v, want finished", enc["status"])
	}
	if rec.Source != "urn:hl7v2:EPICADT|NORTHMC|NMC-1003" {
		t.Errorf("Source = %q, want the A03's", rec.Source)
	}
	if rec.PatientID == "" {
		t.Error("Encounter record has no PatientID")
	}
	st, _ := s.Stats(context.Background())
	if st.Versions < 6 { // 4 encounter versions + 2 patient versions at least
		t.Errorf("versions = %d: every message's version must be kept", st.Versions)
	}
	for _, q := range []string{"quill", "100200"} {
		got, err := s.SearchPatients(context.Background(), store.PatientQuery{Connection: "hl7", Text: q})
		if err != nil || len(got) != 1 {
			t.Errorf("SearchPatients(%q) = %d, %v; want 1", q, len(got), err)
		}
	}
}

func TestCancelAndUncancel(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	id := encounterID(t, s)
	handle(t, h, "adt-a01", "adt-a11")
	_, enc := resource(t, s, "Encounter", id)
	if enc["status"] != "entered-in-error" {
		t.Fatalf("status after A11 = %v", enc["status"])
	}
	// The thin A11 must not have erased what the A01 said.
	if enc["reasonCode"] == nil || enc["participant"] == nil || enc["period"] == nil {
		t.Errorf("A11 lost A01 content: %v", enc)
	}
	handle(t, h, "adt-a03", "adt-a13")
	_, enc = resource(t, s, "Encounter", id)
	if enc["status"] != "in-progress" {
		t.Errorf("status after A13 = %v, want in-progress", enc["status"])
	}
	if p, _ := enc["period"].(map[string]any); p == nil || p["end"] == nil {
		t.Errorf("A13 lost the A03's period: %v", enc["period"])
	}
	if n := count(t, s, "Encounter"); n != 1 {
		t.Errorf("Encounters = %d, want 1", n)
	}
}

func TestMergeKeepsBoth(t *testing.T) {
	s := newStore(t)
	bus := events.NewBus(events.BusOptions{Clock: clock})
	var got []events.Event
	bus.Subscribe(events.SubscriberFunc(func(e events.Event) { got = append(got, e) }))
	h := New(s, Options{Clock: clock, Bus: bus})
	handle(t, h, "adt-a28", "vxu-v04", "adt-a01", "adt-a40")
	res, _ := tofhir.Convert(msg(t, "adt-a40"), tofhir.Options{})
	if n := count(t, s, "Patient"); n != 2 {
		t.Fatalf("Patients = %d, want 2 (merge deletes nothing)", n)
	}
	_, retired := resource(t, s, "Patient", res.Merge.RetiredID)
	_, surviving := resource(t, s, "Patient", res.Merge.SurvivingID)
	link := func(p map[string]any) (string, string) {
		l := p["link"].([]any)[0].(map[string]any)
		return l["type"].(string), l["other"].(map[string]any)["reference"].(string)
	}
	if typ, ref := link(retired); typ != "replaced-by" || ref != "Patient/"+res.Merge.SurvivingID {
		t.Errorf("retired link = %s %s", typ, ref)
	}
	if typ, ref := link(surviving); typ != "replaces" || ref != "Patient/"+res.Merge.RetiredID {
		t.Errorf("surviving link = %s %s", typ, ref)
	}
	if retired["birthDate"] != "2011-09-23" || retired["active"] != false {
		t.Errorf("retired patient lost its demographics or stayed active: %v", retired)
	}
	if n := count(t, s, "Immunization"); n != 1 {
		t.Errorf("Immunizations = %d, want the retired patient's one kept", n)
	}
	kinds := []events.Kind{}
	for _, e := range got {
		kinds = append(kinds, e.Kind)
	}
	want := []events.Kind{events.Registered, events.Immunization, events.Admitted, events.Merged}
	if len(kinds) != len(want) {
		t.Fatalf("events = %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Errorf("event %d = %s, want %s", i, kinds[i], want[i])
		}
	}
	m := got[3]
	if m.Replaced == nil || m.Replaced.Value != "100377" || m.Patient.Value != "100200" || m.Patient.System != "urn:oid:1.2.840.99999.1" {
		t.Errorf("merge event = %+v", m)
	}
}

func TestDuplicatesAndEvents(t *testing.T) {
	s := newStore(t)
	bus := events.NewBus(events.BusOptions{})
	var got []events.Event
	bus.Subscribe(events.SubscriberFunc(func(e events.Event) { got = append(got, e) }))
	h := New(s, Options{Clock: clock, Bus: bus})
	handle(t, h, "oru-r01-prelim", "oru-r01")
	err := h.HandleMessage(context.Background(), msg(t, "oru-r01"))
	if !errors.Is(err, mllp.ErrDuplicate) {
		t.Fatalf("resend = %v, want mllp.ErrDuplicate", err)
	}
	if len(got) != 2 || got[0].Kind != events.ResultPreliminary || got[1].Kind != events.ResultFinal {
		t.Fatalf("events = %+v", got)
	}
	if n := count(t, s, "DiagnosticReport"); n != 1 {
		t.Errorf("DiagnosticReports = %d, want 1 (final updates preliminary)", n)
	}
	if n := count(t, s, "Observation"); n != 5 {
		t.Errorf("Observations = %d, want 5", n)
	}
	c, _ := s.HL7Counts(context.Background(), "hl7")
	if c != (store.HL7Counts{Messages: 2, Processed: 2}) {
		t.Errorf("HL7Counts = %+v", c)
	}
	for _, e := range got {
		b, _ := json.Marshal(e)
		for _, phi := range []string{"Quill", "Glucose", "112", "1979"} {
			if strings.Contains(string(b), phi) {
				t.Errorf("event carries clinical content %q: %s", phi, b)
			}
		}
	}
}

func TestUnsupportedStoredNotLost(t *testing.T) {
	// DFT (financial transactions) is a message type tofhir does not
	// convert (SIU was, until it became Appointments).
	raw := "MSH|^~\\&|BILLING|NORTHMC|||20260101||DFT^P03^DFT_P03|S-1|P|2.5.1\rEVN|P03\r"
	m, _ := hl7.Parse([]byte(raw), hl7.ParseOptions{})
	t.Run("refused by default", func(t *testing.T) {
		s := newStore(t)
		h := New(s, Options{Clock: clock})
		var me *hl7.MessageError
		if err := h.HandleMessage(context.Background(), m); !errors.As(err, &me) || me.AckCode() != hl7.AckApplicationReject ||
			me.Condition != hl7.ErrUnsupportedMessageType {
			t.Fatalf("HandleMessage(DFT^P03) = %v, want an AR refusal with condition 200", err)
		}
		c, _ := s.HL7Counts(context.Background(), "")
		if c != (store.HL7Counts{Messages: 1, Failed: 1}) {
			t.Errorf("HL7Counts = %+v, want the refused message kept", c)
		}
	})
	t.Run("kept when configured", func(t *testing.T) {
		s := newStore(t)
		h := New(s, Options{Clock: clock, KeepUnsupported: true})
		if err := h.HandleMessage(context.Background(), m); err != nil {
			t.Fatalf("HandleMessage(DFT^P03) = %v, want nil (stored, unconverted)", err)
		}
		c, _ := s.HL7Counts(context.Background(), "")
		if c != (store.HL7Counts{Messages: 1, Failed: 1}) {
			t.Errorf("HL7Counts = %+v", c)
		}
	})
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	noID, _ := hl7.Parse([]byte("MSH|^~\\&|A|B|||20260101||ADT^A01|||P|2.5\r"), hl7.ParseOptions{})
	var me *hl7.MessageError
	if err := h.HandleMessage(context.Background(), noID); !errors.As(err, &me) || me.AckCode() != hl7.AckApplicationReject {
		t.Errorf("no MSH-10: %v, want an AR refusal", err)
	}
	if err := h.Quarantine(context.Background(), []byte("garbage"), "parse: no MSH"); err != nil {
		t.Fatal(err)
	}
	q, _ := s.Quarantined(context.Background(), "hl7", 10)
	if len(q) != 1 || q[0].Type != "HL7v2" || string(q[0].Raw) != "garbage" {
		t.Errorf("quarantine = %+v", q)
	}
}

func TestDeferred(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock, Deferred: true})
	handle(t, h, "adt-a01", "adt-a03", "adt-a11")
	if n := count(t, s, "Encounter"); n != 0 {
		t.Fatalf("deferred mode converted before Run: %d", n)
	}
	n, err := h.ProcessPending(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("ProcessPending = %d, %v", n, err)
	}
	// The A11 was converted in the same transaction as the A01 and A03 and
	// still saw them.
	_, enc := resource(t, s, "Encounter", encounterID(t, s))
	if enc["status"] != "entered-in-error" || enc["participant"] == nil {
		t.Errorf("status = %v, participant = %v", enc["status"], enc["participant"])
	}
	if p, _ := enc["period"].(map[string]any); p == nil || p["end"] == nil {
		t.Errorf("period = %v, want the A03's end kept", enc["period"])
	}
	c, _ := s.HL7Counts(context.Background(), "")
	if c != (store.HL7Counts{Messages: 3, Processed: 3}) {
		t.Errorf("HL7Counts = %+v", c)
	}
}

func TestRepeatedDemographicsNoNewVersion(t *testing.T) {
	s := newStore(t)
	h := New(s, Options{Clock: clock})
	handle(t, h, "adt-a01", "adt-a02") // same PID: the Patient does not change
	st, _ := s.Stats(context.Background())
	// Patient v1, Encounter v1 and v2, and each message's MessageHeader
	// and Provenance.
	if st.Versions != 7 {
		t.Errorf("versions = %d, want 7 (unchanged Patient not re-versioned)", st.Versions)
	}
	rec, _ := resource(t, s, "Patient", encounterPatient(t))
	if rec.Source != "urn:hl7v2:EPICADT|NORTHMC|NMC-1001" {
		t.Errorf("Patient source = %q, want the message that last changed it", rec.Source)
	}
}

func encounterPatient(t *testing.T) string {
	res, err := tofhir.Convert(msg(t, "adt-a01"), tofhir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res.PatientID
}
