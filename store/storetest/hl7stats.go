package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ehrgate/store"
)

// HL7StatsStore is what a backend must provide to run RunHL7StatsTests.
type HL7StatsStore interface {
	store.Store
	store.HL7Log
	store.HL7Stats
}

// RunHL7StatsTests runs the store.HL7Stats conformance suite against
// stores made by newStore (a fresh, empty store per subtest).
func RunHL7StatsTests(t *testing.T, newStore func(t *testing.T) HL7StatsStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s HL7StatsStore)
	}{
		{"HourlyByTypeAndAck", testHL7Hourly},
		{"ProblemsWithoutContent", testHL7Problems},
		{"FeedState", testHL7Feed},
		{"Replay", testHL7Replay},
		{"Empty", testHL7StatsEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var statsT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// putStats logs a message of connection conn received at t.
func putStats(t *testing.T, s store.HL7Log, conn, id, typ string, at time.Time, mod func(*store.HL7Message)) int64 {
	t.Helper()
	m := hl7Msg(id)
	m.Connection, m.MessageType, m.ReceivedAt = conn, typ, at
	m.Processed, m.Ack = true, "AA"
	if mod != nil {
		mod(&m)
	}
	seq, err := s.PutHL7(context.Background(), m, nil)
	if err != nil {
		t.Fatalf("PutHL7(%s): %v", id, err)
	}
	return seq
}

func refused(ack string) func(*store.HL7Message) {
	return func(m *store.HL7Message) {
		m.Processed, m.Ack, m.Error = false, ack, "refused: PID-3 has no usable identifier"
	}
}

func testHL7Hourly(t *testing.T, s HL7StatsStore) {
	ctx := context.Background()
	putStats(t, s, "north", "1", "ADT^A01", statsT0.Add(5*time.Minute), nil)
	putStats(t, s, "north", "2", "ADT^A01", statsT0.Add(59*time.Minute+500*time.Millisecond), nil)
	putStats(t, s, "north", "3", "ORU^R01", statsT0.Add(10*time.Minute), refused("AE"))
	putStats(t, s, "north", "4", "ORU^R01", statsT0.Add(70*time.Minute), refused("AR"))
	putStats(t, s, "north", "5", "ORU^R01", statsT0.Add(71*time.Minute), nil)
	putStats(t, s, "north", "0", "ADT^A01", statsT0.Add(-time.Second), nil) // before since
	putStats(t, s, "south", "9", "ADT^A01", statsT0.Add(5*time.Minute), nil)
	// A control-id reuse: same identity, other content.
	putStats(t, s, "north", "5", "ORU^R01", statsT0.Add(72*time.Minute), func(m *store.HL7Message) {
		m.Raw = append(m.Raw, "PID|1\r"...)
	})
	got, err := s.HL7Hourly(ctx, "north", statsT0.Add(30*time.Minute)) // truncated to the hour
	if err != nil {
		t.Fatalf("HL7Hourly: %v", err)
	}
	h0, h1 := statsT0, statsT0.Add(time.Hour)
	want := []store.HL7HourCount{
		{Hour: h0, MessageType: "ADT^A01", Ack: "AA", Messages: 2},
		{Hour: h0, MessageType: "ORU^R01", Ack: "AE", Messages: 1, Failed: 1},
		{Hour: h1, MessageType: "ORU^R01", Ack: "AA", Messages: 2, Reused: 1},
		{Hour: h1, MessageType: "ORU^R01", Ack: "AR", Messages: 1, Failed: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HL7Hourly (-want +got):\n%s", diff)
	}
	reused, err := s.HL7Reused(ctx, "north", statsT0, 10)
	if err != nil || len(reused) != 1 || reused[0].ControlID != "5" || !reused[0].ReceivedAt.Equal(statsT0.Add(72*time.Minute)) {
		t.Errorf("HL7Reused = %+v, %v; want the second message 5", reused, err)
	}
	if reused, err := s.HL7Reused(ctx, "north", statsT0.Add(73*time.Minute), 10); err != nil || len(reused) != 0 {
		t.Errorf("HL7Reused(later) = %+v, %v; want none", reused, err)
	}
}

func testHL7Problems(t *testing.T, s HL7StatsStore) {
	ctx := context.Background()
	putStats(t, s, "north", "1", "ADT^A01", statsT0, nil)
	s2 := putStats(t, s, "north", "2", "ADT^A01", statsT0.Add(time.Minute), refused("AE"))
	s3 := putStats(t, s, "north", "3", "VXU^V04", statsT0.Add(2*time.Minute), func(m *store.HL7Message) {
		m.Processed, m.Error = false, "not converted: VXU^V04 is not converted"
	})
	putStats(t, s, "south", "4", "ADT^A01", statsT0, refused("AR"))
	// Logged before ACK codes were recorded: a refusal counts as AE.
	s5 := putStats(t, s, "north", "5", "ADT^A08", statsT0.Add(3*time.Minute), func(m *store.HL7Message) {
		refused("")(m)
	})
	got, err := s.HL7Problems(ctx, "north", 10)
	if err != nil {
		t.Fatalf("HL7Problems: %v", err)
	}
	want := []store.HL7Problem{
		{Seq: s5, ControlID: "5", MessageType: "ADT^A08", Ack: "AE", ReceivedAt: statsT0.Add(3 * time.Minute), Reason: "refused: PID-3 has no usable identifier"},
		{Seq: s3, ControlID: "3", MessageType: "VXU^V04", Ack: "AA", ReceivedAt: statsT0.Add(2 * time.Minute), Reason: "not converted: VXU^V04 is not converted"},
		{Seq: s2, ControlID: "2", MessageType: "ADT^A01", Ack: "AE", ReceivedAt: statsT0.Add(time.Minute), Reason: "refused: PID-3 has no usable identifier"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HL7Problems (-want +got):\n%s", diff)
	}
	if got, err := s.HL7Problems(ctx, "north", 1); err != nil || len(got) != 1 || got[0].Seq != s5 {
		t.Errorf("HL7Problems(limit 1) = %+v, %v; want the newest", got, err)
	}
}

func testHL7Feed(t *testing.T, s HL7StatsStore) {
	ctx := context.Background()
	putStats(t, s, "north", "1", "ADT^A01", statsT0, nil)
	s2 := putStats(t, s, "north", "2", "ADT^A01", statsT0.Add(time.Minute), func(m *store.HL7Message) { m.Processed = false })
	putStats(t, s, "north", "3", "ADT^A01", statsT0.Add(2*time.Minute), func(m *store.HL7Message) { m.Processed = false })
	putStats(t, s, "north", "4", "ADT^A01", statsT0.Add(3*time.Minute), refused("AE"))
	putStats(t, s, "south", "5", "ADT^A01", statsT0.Add(time.Hour), nil)
	f, err := s.HL7Feed(ctx, "north")
	if err != nil {
		t.Fatalf("HL7Feed: %v", err)
	}
	if !f.LastMessage.Equal(statsT0.Add(3*time.Minute)) || !f.OldestPending.Equal(statsT0.Add(time.Minute)) || f.Pending != 2 {
		t.Errorf("HL7Feed = last %v, oldest pending %v, pending %d; want %v, %v, 2",
			f.LastMessage, f.OldestPending, f.Pending, statsT0.Add(3*time.Minute), statsT0.Add(time.Minute))
	}
	if len(f.Lags) != 1 || f.Lags[0] != 0 {
		t.Errorf("Lags = %v, want one inline conversion (0)", f.Lags)
	}
	if err := s.CompleteHL7(ctx, []store.HL7Completion{{Seq: s2}}); err != nil {
		t.Fatalf("CompleteHL7: %v", err)
	}
	f, err = s.HL7Feed(ctx, "north")
	if err != nil {
		t.Fatalf("HL7Feed: %v", err)
	}
	if f.Pending != 1 || !f.OldestPending.Equal(statsT0.Add(2*time.Minute)) {
		t.Errorf("after completion: pending %d, oldest %v; want 1, %v", f.Pending, f.OldestPending, statsT0.Add(2*time.Minute))
	}
	// Completed now, received in 2026-03: a positive delay, newest first.
	if len(f.Lags) != 2 || f.Lags[0] <= 0 || f.Lags[1] != 0 {
		t.Errorf("Lags = %v, want [positive 0]", f.Lags)
	}
}

func testHL7Replay(t *testing.T, s HL7StatsStore) {
	ctx := context.Background()
	ok := putStats(t, s, "north", "1", "ADT^A01", statsT0, nil)
	bad := putStats(t, s, "north", "2", "ADT^A01", statsT0, refused("AE"))
	other := putStats(t, s, "south", "3", "ADT^A01", statsT0, refused("AE"))
	for _, tc := range []struct {
		conn string
		seq  int64
	}{{"north", ok}, {"north", other}, {"south", bad}, {"north", 999999}} {
		if err := s.ReplayHL7(ctx, tc.conn, tc.seq); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReplayHL7(%q, %d) = %v, want ErrNotFound", tc.conn, tc.seq, err)
		}
	}
	if err := s.ReplayHL7(ctx, "north", bad); err != nil {
		t.Fatalf("ReplayHL7: %v", err)
	}
	pend, err := s.PendingHL7(ctx, "north", 0, 10)
	if err != nil || len(pend) != 1 || pend[0].Seq != bad || pend[0].Ack != "AE" || pend[0].Error != "" {
		t.Fatalf("PendingHL7 after replay = %+v, %v; want the replayed message, ACK kept", pend, err)
	}
	if got, err := s.HL7Problems(ctx, "north", 10); err != nil || len(got) != 0 {
		t.Errorf("HL7Problems after replay = %+v, %v; want none", got, err)
	}
	if err := s.ReplayHL7(ctx, "north", bad); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second ReplayHL7 = %v, want ErrNotFound (it is pending)", err)
	}
	if err := s.CompleteHL7(ctx, []store.HL7Completion{{Seq: bad}}); err != nil {
		t.Fatalf("CompleteHL7: %v", err)
	}
	if c := counts(t, s, "north"); c.Processed != 2 || c.Failed != 0 {
		t.Errorf("HL7Counts after replay and conversion = %+v, want 2 processed, 0 failed", c)
	}
}

func testHL7StatsEmpty(t *testing.T, s HL7StatsStore) {
	ctx := context.Background()
	h, err := s.HL7Hourly(ctx, "none", statsT0)
	if err != nil || len(h) != 0 {
		t.Errorf("HL7Hourly(empty) = %v, %v", h, err)
	}
	p, err := s.HL7Problems(ctx, "none", 0)
	if err != nil || len(p) != 0 {
		t.Errorf("HL7Problems(empty) = %v, %v", p, err)
	}
	f, err := s.HL7Feed(ctx, "none")
	if err != nil || !f.LastMessage.IsZero() || !f.OldestPending.IsZero() || f.Pending != 0 || len(f.Lags) != 0 {
		t.Errorf("HL7Feed(empty) = %+v, %v", f, err)
	}
	if err := s.ReplayHL7(ctx, "none", 1); !errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), "MSH") {
		t.Errorf("ReplayHL7(empty) = %v, want ErrNotFound", err)
	}
}
