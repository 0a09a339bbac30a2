package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

// AuditTamper changes a stored audit entry behind the store's back, as
// someone with access to the database could (dropping whatever protects the
// table first): the backend's test supplies it.
type AuditTamper struct {
	// Rewrite changes the event bytes of the entry with seq.
	Rewrite func(t *testing.T, seq int64)
	// Delete removes the entry with seq.
	Delete func(t *testing.T, seq int64)
}

var auditT0 = time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC)

func auditEntry(i int, patient, agent string) store.AuditEntry {
	return store.AuditEntry{
		Recorded:   auditT0.Add(time.Duration(i) * time.Minute),
		Type:       "rest",
		Subtype:    "read",
		Action:     "R",
		Outcome:    "0",
		Agent:      agent,
		Connection: "epic",
		Patient:    patient,
		Event:      []byte(fmt.Sprintf(`{"resourceType":"AuditEvent","n":%d}`, i)),
	}
}

// RunAuditTests runs the store.AuditLog conformance suite against stores
// made by newStore (a fresh, empty store per subtest), and the tampering
// tests with tamper (which acts on the store newStore made last).
func RunAuditTests(t *testing.T, newStore func(t *testing.T) store.AuditLog, tamper AuditTamper) {
	ctx := context.Background()
	appendN := func(t *testing.T, s store.AuditLog, n int) []store.AuditEntry {
		t.Helper()
		var out []store.AuditEntry
		for i := range n {
			e, err := s.AppendAudit(ctx, auditEntry(i, fmt.Sprint("p", i%3), fmt.Sprint("user", i%2)))
			if err != nil || len(e) != 1 {
				t.Fatalf("AppendAudit(%d) = %d entries, %v; want 1", i, len(e), err)
			}
			out = append(out, e[0])
		}
		return out
	}
	t.Run("EmptyVerifies", func(t *testing.T) {
		v, err := newStore(t).VerifyAudit(ctx)
		if err != nil || !v.Intact() || v.Entries != 0 {
			t.Errorf("VerifyAudit(empty) = %+v, %v; want intact, 0 entries", v, err)
		}
	})
	t.Run("AppendChains", func(t *testing.T) {
		s := newStore(t)
		got := appendN(t, s, 3)
		prev := store.AuditZeroHash
		for i, e := range got {
			if e.Seq != int64(i+1) {
				t.Errorf("entry %d: Seq = %d, want %d", i, e.Seq, i+1)
			}
			if !bytes.Equal(e.PrevHash, prev) {
				t.Errorf("entry %d: PrevHash = %x, want %x", i, e.PrevHash, prev)
			}
			if want := store.AuditHash(prev, e); !bytes.Equal(e.Hash, want) {
				t.Errorf("entry %d: Hash = %x, want %x", i, e.Hash, want)
			}
			prev = e.Hash
		}
		all, err := s.QueryAudit(ctx, store.AuditQuery{})
		if err != nil || len(all) != 3 {
			t.Fatalf("QueryAudit(all) = %d entries, %v; want 3", len(all), err)
		}
		for i, e := range all {
			w := got[i]
			if e.Seq != w.Seq || !e.Recorded.Equal(w.Recorded) || e.Type != w.Type || e.Subtype != w.Subtype ||
				e.Action != w.Action || e.Outcome != w.Outcome || e.Agent != w.Agent || e.Connection != w.Connection ||
				e.Patient != w.Patient || !bytes.Equal(e.Event, w.Event) || !bytes.Equal(e.Hash, w.Hash) || !bytes.Equal(e.PrevHash, w.PrevHash) {
				t.Errorf("stored entry %d = %+v, want %+v", i, e, w)
			}
		}
		v, err := s.VerifyAudit(ctx)
		if err != nil || !v.Intact() || v.Entries != 3 || v.Last != 3 || !bytes.Equal(v.Head, got[2].Hash) {
			t.Errorf("VerifyAudit = %+v, %v; want intact, 3 entries, head of entry 3", v, err)
		}
	})
	t.Run("RecordedKeptToMicroseconds", func(t *testing.T) {
		s := newStore(t)
		e := auditEntry(0, "p", "u")
		e.Recorded = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.FixedZone("x", 3600))
		got, err := s.AppendAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Date(2026, 3, 1, 8, 0, 0, 123456000, time.UTC)
		if !got[0].Recorded.Equal(want) {
			t.Errorf("AppendAudit Recorded = %v, want %v", got[0].Recorded, want)
		}
		if v, err := s.VerifyAudit(ctx); err != nil || !v.Intact() {
			t.Errorf("VerifyAudit = %+v, %v; want intact", v, err)
		}
	})
	t.Run("EmptyEventRefused", func(t *testing.T) {
		s := newStore(t)
		e := auditEntry(0, "p", "u")
		e.Event = nil
		if _, err := s.AppendAudit(ctx, e); err == nil {
			t.Error("AppendAudit(no event) succeeded")
		}
		// In a batch, one bad entry keeps all out.
		if _, err := s.AppendAudit(ctx, auditEntry(1, "p", "u"), e); err == nil {
			t.Error("AppendAudit(good, no event) succeeded")
		}
		if v, err := s.VerifyAudit(ctx); err != nil || v.Entries != 0 {
			t.Errorf("after refused appends VerifyAudit = %+v, %v; want no entries", v, err)
		}
	})
	t.Run("AppendSeveral", func(t *testing.T) {
		s := newStore(t)
		first := appendN(t, s, 1)
		got, err := s.AppendAudit(ctx, auditEntry(1, "p", "u"), auditEntry(2, "p", "u"), auditEntry(3, "p", "u"))
		if err != nil || len(got) != 3 {
			t.Fatalf("AppendAudit(3 entries) = %d entries, %v; want 3", len(got), err)
		}
		prev := first[0].Hash
		for i, e := range got {
			if e.Seq != int64(i+2) || !bytes.Equal(e.PrevHash, prev) {
				t.Errorf("batch entry %d: Seq %d, PrevHash %x; want %d, %x", i, e.Seq, e.PrevHash, i+2, prev)
			}
			prev = e.Hash
		}
		if got, err := s.AppendAudit(ctx); err != nil || len(got) != 0 {
			t.Errorf("AppendAudit() = %v, %v; want nothing", got, err)
		}
		if v, err := s.VerifyAudit(ctx); err != nil || !v.Intact() || v.Entries != 4 {
			t.Errorf("VerifyAudit = %+v, %v; want intact with 4 entries", v, err)
		}
	})
	t.Run("Query", func(t *testing.T) {
		s := newStore(t)
		appendN(t, s, 12) // patients p0,p1,p2 in turn; user0,user1 in turn; a minute apart
		other := auditEntry(12, "p0", "user0")
		other.Connection, other.Type, other.Subtype, other.Action = "cerner", "rest", "search-type", "E"
		if _, err := s.AppendAudit(ctx, other); err != nil {
			t.Fatal(err)
		}
		seqs := func(q store.AuditQuery) []int64 {
			t.Helper()
			got, err := s.QueryAudit(ctx, q)
			if err != nil {
				t.Fatalf("QueryAudit(%+v): %v", q, err)
			}
			var out []int64
			for _, e := range got {
				out = append(out, e.Seq)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			q    store.AuditQuery
			want []int64
		}{
			{"Patient", store.AuditQuery{Patient: "p0"}, []int64{1, 4, 7, 10, 13}},
			{"PatientOnConnection", store.AuditQuery{Connection: "epic", Patient: "p0"}, []int64{1, 4, 7, 10}},
			{"Agent", store.AuditQuery{Agent: "user1"}, []int64{2, 4, 6, 8, 10, 12}},
			{"PatientAndAgent", store.AuditQuery{Patient: "p0", Agent: "user0"}, []int64{1, 7, 13}},
			{"Subtype", store.AuditQuery{Type: "rest", Subtype: "search-type"}, []int64{13}},
			{"TimeRange", store.AuditQuery{Since: auditT0.Add(2 * time.Minute), Until: auditT0.Add(5 * time.Minute)}, []int64{3, 4, 5}},
			{"Limit", store.AuditQuery{Limit: 2}, []int64{1, 2}},
			{"After", store.AuditQuery{Patient: "p1", After: 5, Limit: 2}, []int64{8, 11}},
			{"None", store.AuditQuery{Patient: "nobody"}, nil},
		} {
			if got := seqs(tc.q); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%s: QueryAudit(%+v) = %v, want %v", tc.name, tc.q, got, tc.want)
			}
		}
		// Paging through everything visits each entry once, in order.
		var all []int64
		q := store.AuditQuery{Limit: 5}
		for {
			page := seqs(q)
			all = append(all, page...)
			if len(page) < q.Limit {
				break
			}
			q.After = page[len(page)-1]
		}
		if len(all) != 13 || all[0] != 1 || all[12] != 13 {
			t.Errorf("paging visited %v, want 1..13", all)
		}
	})
	t.Run("ConcurrentAppendsMakeOneChain", func(t *testing.T) {
		s := newStore(t)
		testAuditConcurrent(t, s, s)
	})
	if tamper.Rewrite != nil {
		t.Run("RewrittenEntryDetected", func(t *testing.T) {
			s := newStore(t)
			appendN(t, s, 5)
			tamper.Rewrite(t, 3)
			v, err := s.VerifyAudit(ctx)
			if err != nil || v.Broken != 3 || v.Entries != 2 || v.Reason == "" {
				t.Errorf("VerifyAudit after rewriting entry 3 = %+v, %v; want broken at 3 after 2 entries", v, err)
			}
		})
	}
	if tamper.Delete != nil {
		t.Run("DeletedEntryDetected", func(t *testing.T) {
			s := newStore(t)
			appendN(t, s, 5)
			tamper.Delete(t, 2)
			v, err := s.VerifyAudit(ctx)
			if err != nil || v.Broken != 2 {
				t.Errorf("VerifyAudit after deleting entry 2 = %+v, %v; want broken at 2", v, err)
			}
		})
	}
}

// RunSharedAuditTests checks that two handles on one storage (two processes
// opening the same database) append to one chain. open returns two such
// handles on a fresh, empty storage.
func RunSharedAuditTests(t *testing.T, open func(t *testing.T) (a, b store.AuditLog)) {
	t.Run("ConcurrentAppendsMakeOneChain", func(t *testing.T) {
		a, b := open(t)
		testAuditConcurrent(t, a, b)
	})
}

// testAuditConcurrent appends from many goroutines, half through a and half
// through b, and checks that the result is one intact chain 1..n.
func testAuditConcurrent(t *testing.T, a, b store.AuditLog) {
	ctx := context.Background()
	const n = 40 // of which every fourth appends two entries
	var wg sync.WaitGroup
	const total = n + n/4
	errs := make(chan error, n)
	seqs := make(chan int64, total)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			es := []store.AuditEntry{auditEntry(i, "p", fmt.Sprint("agent", i))}
			if i%4 == 0 {
				es = append(es, auditEntry(i, "p", fmt.Sprint("agent", i, "b")))
			}
			got, err := s.AppendAudit(ctx, es...)
			if err != nil {
				errs <- err
				return
			}
			for _, e := range got {
				seqs <- e.Seq
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(seqs)
	for err := range errs {
		t.Fatalf("concurrent AppendAudit: %v", err)
	}
	seen := map[int64]bool{}
	for s := range seqs {
		if s < 1 || s > total || seen[s] {
			t.Errorf("sequence %d assigned twice or out of 1..%d", s, total)
		}
		seen[s] = true
	}
	for _, s := range []store.AuditLog{a, b} {
		v, err := s.VerifyAudit(ctx)
		if err != nil || !v.Intact() || v.Entries != total || v.Last != total {
			t.Errorf("VerifyAudit after %d concurrent appends = %+v, %v; want intact with %d entries", n, v, err, total)
		}
	}
}

// BenchAuditAppend measures AppendAudit from parallel goroutines (as
// concurrent requests record their accesses).
func BenchAuditAppend(b *testing.B, s store.AuditLog) {
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.AppendAudit(ctx, auditEntry(i, "p", "bench")); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
