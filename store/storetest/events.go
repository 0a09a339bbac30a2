package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

// RunEventLogTests checks store.EventLog on stores made by newStore.
func RunEventLogTests(t *testing.T, newStore func(t *testing.T) store.EventLog) {
	ctx := context.Background()
	t.Run("AppendAndRead", func(t *testing.T) {
		s := newStore(t)
		if oldest, err := s.OldestEvent(ctx); err != nil || oldest != 0 {
			t.Errorf("OldestEvent(empty) = %d, %v; want 0", oldest, err)
		}
		seqs, err := s.AppendEvents(ctx, t0, []byte(`{"a":1}`), []byte(`{"a":2}`))
		if err != nil || len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 {
			t.Fatalf("AppendEvents = %v, %v; want [1 2]", seqs, err)
		}
		got, err := s.EventsSince(ctx, 1, 0)
		if err != nil || len(got) != 1 || got[0].Seq != 2 || string(got[0].Body) != `{"a":2}` || !got[0].Recorded.Equal(t0) {
			t.Errorf("EventsSince(1) = %+v, %v", got, err)
		}
		if _, err := s.AppendEvents(ctx, t0, nil); err == nil {
			t.Error("AppendEvents(empty body) = nil error")
		}
	})
	t.Run("ConcurrentAppendsLeaveNoGaps", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					if _, err := s.AppendEvents(ctx, t0, []byte(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))); err != nil {
						t.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		got, err := s.EventsSince(ctx, 0, 1000)
		if err != nil || len(got) != 80 {
			t.Fatalf("EventsSince(0) = %d events, %v; want 80", len(got), err)
		}
		for i, e := range got {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d: the log has a gap or a duplicate", i, e.Seq)
			}
		}
		page, _ := s.EventsSince(ctx, 10, 5)
		if len(page) != 5 || page[0].Seq != 11 {
			t.Errorf("EventsSince(10, limit 5) = %d events from %d", len(page), page[0].Seq)
		}
	})
	t.Run("Trim", func(t *testing.T) {
		s := newStore(t)
		s.AppendEvents(ctx, t0, []byte(`{"old":1}`))
		s.AppendEvents(ctx, t0.Add(time.Hour), []byte(`{"new":1}`))
		n, err := s.TrimEvents(ctx, t0.Add(time.Minute))
		if err != nil || n != 1 {
			t.Errorf("TrimEvents = %d, %v; want 1", n, err)
		}
		if oldest, _ := s.OldestEvent(ctx); oldest != 2 {
			t.Errorf("OldestEvent after trimming = %d, want 2", oldest)
		}
		if newest, _ := s.NewestEvent(ctx); newest != 2 {
			t.Errorf("NewestEvent = %d, want 2", newest)
		}
		seqs, _ := s.AppendEvents(ctx, t0.Add(2*time.Hour), []byte(`{"newer":1}`))
		if len(seqs) != 1 || seqs[0] != 3 {
			t.Errorf("an append after trimming got %v, want [3] (positions are never reused)", seqs)
		}
	})
}
