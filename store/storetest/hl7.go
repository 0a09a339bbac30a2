package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

// HL7Store is what a backend must provide to run RunHL7Tests.
type HL7Store interface {
	store.Store
	store.HL7Log
}

// RunHL7Tests runs the HL7 v2 message-log conformance suite against stores
// made by newStore.
func RunHL7Tests(t *testing.T, newStore func(t *testing.T) HL7Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s HL7Store)
	}{
		{"PutAndCount", testHL7Put},
		{"DuplicateIdentityRejected", testHL7Duplicate},
		{"ReusedControlIDWithOtherContentIsNew", testHL7ReusedControlID},
		{"ConcurrentDuplicatesStoreOnce", testHL7ConcurrentDuplicates},
		{"ProcessedStoresRecordsAtomically", testHL7Atomic},
		{"PendingAndComplete", testHL7Pending},
		{"FailedNotPending", testHL7Failed},
		{"EventsWrittenWithMessage", testHL7Events},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func hl7Msg(id string) store.HL7Message {
	return store.HL7Message{Connection: "hl7", SendingApp: "LAB", SendingFacility: "NORTH", ControlID: id,
		MessageType: "ADT^A01", Raw: []byte("MSH|^~\\&|LAB|NORTH|||20260101||ADT^A01|" + id + "|P|2.5\r"),
		ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func hl7Rec(id string) store.Record {
	return store.Record{Key: store.Key{Connection: "hl7", Type: "Patient", ID: id}, PatientID: id,
		Raw: []byte(`{"resourceType":"Patient","id":"` + id + `"}`), Source: "urn:hl7v2:LAB|NORTH|" + id,
		Patient: &store.PatientKeys{Names: []string{"Test " + id}}}
}

func counts(t *testing.T, s store.HL7Log, conn string) store.HL7Counts {
	t.Helper()
	c, err := s.HL7Counts(context.Background(), conn)
	if err != nil {
		t.Fatalf("HL7Counts: %v", err)
	}
	return c
}

func testHL7Put(t *testing.T, s HL7Store) {
	ctx := context.Background()
	m := hl7Msg("1")
	m.Processed = true
	seq1, err := s.PutHL7(ctx, m, []store.Record{hl7Rec("p1")})
	if err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	seq2, err := s.PutHL7(ctx, hl7Msg("2"), nil)
	if err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	if seq2 <= seq1 {
		t.Errorf("seq %d then %d, want increasing", seq1, seq2)
	}
	if got, want := counts(t, s, ""), (store.HL7Counts{Messages: 2, Processed: 1}); got != want {
		t.Errorf("HL7Counts = %+v, want %+v", got, want)
	}
	if got := counts(t, s, "other"); got.Messages != 0 {
		t.Errorf("HL7Counts(other) = %+v, want none", got)
	}
	rec, err := s.Get(ctx, "hl7", "Patient", "p1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if rec.Source != "urn:hl7v2:LAB|NORTH|p1" {
		t.Errorf("Source = %q", rec.Source)
	}
	pend, err := s.PendingHL7(ctx, "", 0, 10)
	if err != nil {
		t.Fatalf("PendingHL7: %v", err)
	}
	if len(pend) != 1 || pend[0].ControlID != "2" || !bytes.Equal(pend[0].Raw, hl7Msg("2").Raw) || pend[0].Seq != seq2 {
		t.Errorf("PendingHL7 = %+v, want message 2 with its raw bytes", pend)
	}
}

func testHL7Duplicate(t *testing.T, s HL7Store) {
	ctx := context.Background()
	if _, err := s.PutHL7(ctx, hl7Msg("1"), nil); err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	_, err := s.PutHL7(ctx, hl7Msg("1"), nil)
	if !errors.Is(err, store.ErrDuplicateMessage) {
		t.Fatalf("second PutHL7 = %v, want ErrDuplicateMessage", err)
	}
	other := hl7Msg("1")
	other.SendingFacility = "SOUTH"
	if _, err := s.PutHL7(ctx, other, nil); err != nil {
		t.Fatalf("same control id, other facility: %v", err)
	}
	// A duplicate's records are not written either.
	dup := hl7Msg("1")
	dup.Processed = true
	if _, err := s.PutHL7(ctx, dup, []store.Record{hl7Rec("px")}); !errors.Is(err, store.ErrDuplicateMessage) {
		t.Fatalf("duplicate with records = %v", err)
	}
	if _, err := s.Get(ctx, "hl7", "Patient", "px"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("duplicate's record stored: %v", err)
	}
	if got := counts(t, s, "hl7").Messages; got != 2 {
		t.Errorf("messages = %d, want 2", got)
	}
}

func testHL7ConcurrentDuplicates(t *testing.T, s HL7Store) {
	concurrentDuplicates(t, s, s)
}

// RunSharedHL7Tests checks that two handles on one storage (two processes,
// as MLLP listeners on two replicas behind a load balancer) recognise each
// other's messages: every resend is stored once, whichever receives it.
// open returns two such handles on a fresh, empty storage.
func RunSharedHL7Tests(t *testing.T, open func(t *testing.T) (a, b HL7Store)) {
	t.Run("ResendsAcrossProcessesStoreOnce", func(t *testing.T) {
		a, b := open(t)
		concurrentDuplicates(t, a, b)
	})
}

// concurrentDuplicates sends every message from eight writers, alternately
// through a and b, and checks that each is stored once.
func concurrentDuplicates(t *testing.T, a, b HL7Store) {
	ctx := context.Background()
	s := a
	const workers, ids = 8, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, dup := 0, 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := a
			if w%2 == 1 {
				h = b
			}
			for i := 0; i < ids; i++ {
				_, err := h.PutHL7(ctx, hl7Msg(fmt.Sprint(i)), nil)
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrDuplicateMessage):
					dup++
				default:
					t.Errorf("PutHL7: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != ids || dup != ids*(workers-1) {
		t.Errorf("stored %d, duplicates %d; want %d and %d", ok, dup, ids, ids*(workers-1))
	}
	if got := counts(t, s, "").Messages; got != ids {
		t.Errorf("messages = %d, want %d", got, ids)
	}
}

func testHL7Atomic(t *testing.T, s HL7Store) {
	ctx := context.Background()
	m := hl7Msg("1")
	m.Processed = true
	// A record the store refuses (no type) fails the whole put: no message either.
	if _, err := s.PutHL7(ctx, m, []store.Record{hl7Rec("p1"), {Key: store.Key{Connection: "hl7", ID: "x"}}}); err == nil {
		t.Fatal("PutHL7 with an invalid record succeeded")
	}
	if got := counts(t, s, "").Messages; got != 0 {
		t.Errorf("messages after failed put = %d, want 0", got)
	}
	if _, err := s.Get(ctx, "hl7", "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of a failed put stored: %v", err)
	}
	// The identity is free again: a resend stores it.
	if _, err := s.PutHL7(ctx, m, []store.Record{hl7Rec("p1")}); err != nil {
		t.Fatalf("resend after failure: %v", err)
	}
}

func testHL7Pending(t *testing.T, s HL7Store) {
	ctx := context.Background()
	var seqs []int64
	for i := 0; i < 5; i++ {
		seq, err := s.PutHL7(ctx, hl7Msg(fmt.Sprint(i)), nil)
		if err != nil {
			t.Fatalf("PutHL7: %v", err)
		}
		seqs = append(seqs, seq)
	}
	p, err := s.PendingHL7(ctx, "hl7", seqs[1], 2)
	if err != nil {
		t.Fatalf("PendingHL7: %v", err)
	}
	if len(p) != 2 || p[0].Seq != seqs[2] || p[1].Seq != seqs[3] {
		t.Fatalf("PendingHL7(after %d, 2) = %v, want seqs %v", seqs[1], p, seqs[2:4])
	}
	if err := s.CompleteHL7(ctx, []store.HL7Completion{{Seq: seqs[2], Records: []store.Record{hl7Rec("p2")}}}); err != nil {
		t.Fatalf("CompleteHL7: %v", err)
	}
	if _, err := s.Get(ctx, "hl7", "Patient", "p2"); err != nil {
		t.Errorf("record of completed message: %v", err)
	}
	p, _ = s.PendingHL7(ctx, "", 0, 100)
	if len(p) != 4 {
		t.Errorf("pending after complete = %d, want 4", len(p))
	}
	if err := s.CompleteHL7(ctx, []store.HL7Completion{{Seq: seqs[3], Records: []store.Record{hl7Rec("p3")}}, {Seq: 999999}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CompleteHL7(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "hl7", "Patient", "p3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed CompleteHL7 stored part of its work: %v", err)
	}
	if got, want := counts(t, s, ""), (store.HL7Counts{Messages: 5, Processed: 1}); got != want {
		t.Errorf("HL7Counts = %+v, want %+v", got, want)
	}
}

func testHL7Failed(t *testing.T, s HL7Store) {
	ctx := context.Background()
	m := hl7Msg("1")
	m.Error = "unsupported message type"
	seq, err := s.PutHL7(ctx, m, []store.Record{hl7Rec("p1")})
	if err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	if _, err := s.Get(ctx, "hl7", "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("records of an unprocessed message stored: %v", err)
	}
	seq2, _ := s.PutHL7(ctx, hl7Msg("2"), nil)
	if err := s.CompleteHL7(ctx, []store.HL7Completion{{Seq: seq2, Error: "conversion failed"}}); err != nil {
		t.Fatalf("CompleteHL7 with error: %v", err)
	}
	p, _ := s.PendingHL7(ctx, "", 0, 10)
	if len(p) != 0 {
		t.Errorf("pending = %v, want none (failed messages wait for an operator)", p)
	}
	if got, want := counts(t, s, ""), (store.HL7Counts{Messages: 2, Failed: 2}); got != want {
		t.Errorf("HL7Counts = %+v, want %+v", got, want)
	}
	if seq == 0 {
		t.Errorf("seq of a failed message = 0")
	}
}

func testHL7ReusedControlID(t *testing.T, s HL7Store) {
	ctx := context.Background()
	first := hl7Msg("1")
	if _, err := s.PutHL7(ctx, first, nil); err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	// Same identity, other content (another patient, another trigger): a
	// new message, not a duplicate.
	other := hl7Msg("1")
	other.MessageType = "ORU^R01"
	other.Raw = []byte("MSH|^~\\&|LAB|NORTH|||20260101||ORU^R01|1|P|2.5\rPID|||999^^^NORTH\r")
	seq, err := s.PutHL7(ctx, other, nil)
	if err != nil {
		t.Fatalf("PutHL7 of a reused control id with other content = %v, want stored", err)
	}
	// Its resend is a duplicate.
	if _, err := s.PutHL7(ctx, other, nil); !errors.Is(err, store.ErrDuplicateMessage) {
		t.Fatalf("resend of the second message = %v, want ErrDuplicateMessage", err)
	}
	// A caller-supplied content hash decides (a resend with a new MSH-7).
	withHash := hl7Msg("2")
	withHash.ContentHash = []byte("same-content")
	if _, err := s.PutHL7(ctx, withHash, nil); err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	resent := withHash
	resent.Raw = append([]byte(nil), withHash.Raw...)
	resent.Raw = append(resent.Raw, "ZZZ|resent\r"...)
	if _, err := s.PutHL7(ctx, resent, nil); !errors.Is(err, store.ErrDuplicateMessage) {
		t.Fatalf("same ContentHash, other bytes = %v, want ErrDuplicateMessage", err)
	}
	if got, want := counts(t, s, "hl7"), (store.HL7Counts{Messages: 3, Reused: 1}); got != want {
		t.Errorf("HL7Counts = %+v, want %+v", got, want)
	}
	pend, err := s.PendingHL7(ctx, "hl7", 0, 10)
	if err != nil {
		t.Fatalf("PendingHL7: %v", err)
	}
	var found bool
	for _, m := range pend {
		if m.Seq == seq {
			found = true
			if !m.ReusedControlID || !bytes.Equal(m.Raw, other.Raw) {
				t.Errorf("pending reused message = %+v, want ReusedControlID and its own raw bytes", m)
			}
		} else if m.ReusedControlID {
			t.Errorf("message %d marked as a reuse", m.Seq)
		}
	}
	if !found {
		t.Errorf("the reused-id message is not pending conversion: %+v", pend)
	}
}

// testHL7Events: a message's events go to the event log in its
// transaction, with their positions handed back; a duplicate, an
// unprocessed message and a failed completion log none.
func testHL7Events(t *testing.T, s HL7Store) {
	ctx := context.Background()
	log, ok := s.(store.EventLog)
	if !ok {
		t.Skip("the backend has no event log")
	}
	ev := func(b string) store.StoredEvent { return store.StoredEvent{Recorded: t0, Body: []byte(b)} }
	m := hl7Msg("1")
	m.Processed = true
	m.Events = []store.StoredEvent{ev(`{"n":1}`), ev(`{"n":2}`)}
	if _, err := s.PutHL7(ctx, m, []store.Record{hl7Rec("p1")}); err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	if m.Events[0].Seq != 1 || m.Events[1].Seq != 2 {
		t.Errorf("PutHL7 gave the events positions %d, %d; want 1, 2", m.Events[0].Seq, m.Events[1].Seq)
	}
	dup := m
	dup.Events = []store.StoredEvent{ev(`{"dup":1}`)}
	if _, err := s.PutHL7(ctx, dup, nil); !errors.Is(err, store.ErrDuplicateMessage) {
		t.Fatalf("PutHL7(duplicate) = %v", err)
	}
	pending := hl7Msg("2")
	pending.Events = []store.StoredEvent{ev(`{"unprocessed":1}`)}
	seq2, err := s.PutHL7(ctx, pending, nil)
	if err != nil {
		t.Fatalf("PutHL7(unprocessed): %v", err)
	}
	seq3, err := s.PutHL7(ctx, hl7Msg("3"), nil)
	if err != nil {
		t.Fatalf("PutHL7: %v", err)
	}
	done := []store.HL7Completion{
		{Seq: seq2, Error: "bad", Events: []store.StoredEvent{ev(`{"failed":1}`)}},
		{Seq: seq3, Records: []store.Record{hl7Rec("p3")}, Events: []store.StoredEvent{ev(`{"n":3}`)}},
	}
	if err := s.CompleteHL7(ctx, done); err != nil {
		t.Fatalf("CompleteHL7: %v", err)
	}
	if done[1].Events[0].Seq != 3 {
		t.Errorf("CompleteHL7 gave the event position %d, want 3", done[1].Events[0].Seq)
	}
	// An unknown message fails the whole call: its events are not logged.
	bad := []store.HL7Completion{{Seq: 999999, Events: []store.StoredEvent{ev(`{"unknown":1}`)}}}
	if err := s.CompleteHL7(ctx, bad); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompleteHL7(unknown) = %v, want ErrNotFound", err)
	}
	got, err := log.EventsSince(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, e := range got {
		bodies = append(bodies, string(e.Body))
	}
	if fmt.Sprint(bodies) != `[{"n":1} {"n":2} {"n":3}]` {
		t.Errorf("event log = %v, want the processed messages' events only", bodies)
	}
}
