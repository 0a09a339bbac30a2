package feedhealth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"ehrgate/hl7/feedhealth"
	"ehrgate/store"
	"ehrgate/store/sqlite"
)

var now = time.Date(2026, 3, 9, 10, 40, 0, 0, time.UTC)

type feed struct {
	t *testing.T
	s *sqlite.Store
	n int
}

func newFeed(t *testing.T) *feed {
	s, err := sqlite.OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &feed{t: t, s: s}
}

func (f *feed) put(at time.Time, typ, reason string) {
	f.t.Helper()
	f.n++
	id := fmt.Sprint(f.n)
	m := store.HL7Message{Connection: "north", SendingApp: "A", SendingFacility: "F", ControlID: id, MessageType: typ,
		Raw: []byte("MSH|^~\\&|A|F|||||" + typ + "|" + id + "|P|2.5\r"), ReceivedAt: at, Processed: reason == "", Ack: "AA"}
	if reason != "" {
		m.Error, m.Ack = reason, "AE"
	}
	if _, err := f.s.PutHL7(context.Background(), m, nil); err != nil {
		f.t.Fatal(err)
	}
}

// busy logs n messages in hour 10 (UTC) of each of the 7 days before now.
func (f *feed) busy(n int) {
	for d := 1; d <= 7; d++ {
		day := now.Truncate(time.Hour).Add(-time.Duration(d) * 24 * time.Hour)
		for i := range n {
			f.put(day.Add(time.Duration(i)*time.Minute), "ADT^A01", "")
		}
	}
}

func names(as []feedhealth.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func TestSilentDuringBusyHour(t *testing.T) {
	f := newFeed(t)
	f.busy(20)
	f.put(now.Add(-30*time.Minute), "ORU^R01", "")
	r, err := feedhealth.Build(context.Background(), f.s, "north", now, feedhealth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Expected != 20 {
		t.Errorf("Expected = %v, want 20", r.Expected)
	}
	if got := names(r.Alerts); len(got) != 1 || got[0] != feedhealth.FeedSilent {
		t.Errorf("Alerts = %v, want [%s]", got, feedhealth.FeedSilent)
	}
	// The same silence at an hour the feed is normally quiet raises nothing.
	q := newFeed(t)
	q.busy(2)
	q.put(now.Add(-30*time.Minute), "ORU^R01", "")
	r, _ = feedhealth.Build(context.Background(), q.s, "north", now, feedhealth.Options{})
	if len(r.Alerts) != 0 {
		t.Errorf("quiet hour: Alerts = %v, want none", names(r.Alerts))
	}
}

func TestRejectsRising(t *testing.T) {
	f := newFeed(t)
	f.busy(20)
	for i := range 10 {
		reason := ""
		if i%2 == 0 {
			reason = "refused: PID-3: no usable identifier (HL7 101 Required field missing)"
		}
		f.put(now.Add(-time.Duration(i)*time.Minute), "ADT^A08", reason)
	}
	r, err := feedhealth.Build(context.Background(), f.s, "north", now, feedhealth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(r.Alerts); len(got) != 1 || got[0] != feedhealth.RejectsRising {
		t.Errorf("Alerts = %v, want [%s]", got, feedhealth.RejectsRising)
	}
	if r.RecentRejected["101"] != 5 || r.Recent != 10 || r.Acks["AE"] != 5 || r.Acks["AA"] != 25 {
		t.Errorf("recent %d, rejected %v, acks %v; want 10, 101: 5, AE 5 AA 25 (24 h window)", r.Recent, r.RecentRejected, r.Acks)
	}
	if len(r.Types) != 2 || r.Types[0] != "ADT^A01" || r.Types[1] != "ADT^A08" {
		t.Errorf("Types = %v", r.Types)
	}
}

func TestReasonCode(t *testing.T) {
	for in, want := range map[string]string{
		"refused: MSH-10 (HL7 101 Required field missing)": "101",
		"not converted: DFT^P03 is not converted":          "not converted",
		"normalizing converted Patient: bad":               "other",
	} {
		if got := feedhealth.ReasonCode(in); got != want {
			t.Errorf("ReasonCode(%q) = %q, want %q", in, got, want)
		}
	}
}
