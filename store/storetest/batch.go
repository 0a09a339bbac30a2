package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

// BatchStore is what RunBatchTests needs from a backend.
type BatchStore interface {
	store.Store
	store.BatchWriter
	store.TombstoneReader
	store.CurrentScanner
}

// RunBatchTests checks a backend's bulk writes (store.BatchWriter) against
// its own PutResources: random batches must give the same changes and leave
// the same store, and concurrent batches over the same resources must
// report each change once. Each subtest gets fresh stores from newStore.
func RunBatchTests(t *testing.T, newStore func(t *testing.T) BatchStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore func(t *testing.T) BatchStore)
	}{
		{"RandomBatchesMatchPut", testBatchesMatchPut},
		{"ConcurrentBatchesReportEachChangeOnce", testConcurrentBatches},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, func(t *testing.T) BatchStore {
				s := newStore(t)
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// testBatchesMatchPut runs random batches (new, unchanged and updated
// resources, reused versionIds with new bytes, resources back after a
// tombstone, now and then a resource twice in one batch, several
// connections and types, patients with search keys) through WriteBatch on
// one store and PutResources on another, and compares every change and
// everything the two stores then show.
func testBatchesMatchPut(t *testing.T, newStore func(t *testing.T) BatchStore) {
	ctx := context.Background()
	bulk, ref := newStore(t), newStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	unique := 0
	deleted := map[store.Key]bool{}
	for round := range 40 {
		n := 1 + rng.IntN(300)
		recs := make([]store.Record, 0, n)
		seen := map[string]bool{}
		for len(recs) < n {
			conn := []string{"c", "c", "c", "d"}[rng.IntN(4)]
			typ := []string{"Observation", "Condition", "Patient"}[rng.IntN(3)]
			id := fmt.Sprint("r", rng.IntN(400))
			if seen[conn+typ+id] && (round%5 != 0 || rng.IntN(10) != 0) { // a resource twice in every fifth batch
				continue
			}
			seen[conn+typ+id] = true
			r := store.Record{
				Key:       store.Key{Connection: conn, Type: typ, ID: id, VersionID: []string{"", "1", "2"}[rng.IntN(3)]},
				PatientID: fmt.Sprint("p", rng.IntN(3)),
				Raw:       fmt.Appendf(nil, `{"id":%q,"b":%d}`, id, rng.IntN(3)),
				FetchedAt: time.Unix(int64(1000+round), 0).UTC(),
				Source:    fmt.Sprint("file", round),
			}
			if rng.IntN(4) > 0 {
				r.Normalized = fmt.Appendf(nil, `{"n":%d}`, rng.IntN(100))
			}
			if rng.IntN(2) == 0 {
				r.LastUpdated = time.Unix(int64(rng.IntN(100)), 0).UTC()
			}
			if typ == "Patient" && rng.IntN(5) > 0 {
				r.Patient = &store.PatientKeys{Names: []string{fmt.Sprint("name", rng.IntN(5))}, BirthDate: fmt.Sprint("2000-01-0", 1+rng.IntN(3))}
			}
			recs = append(recs, r)
		}
		if len(seen) == len(recs) {
			unique++
		}
		got, err := bulk.WriteBatch(ctx, store.Batch{Records: recs})
		if err != nil {
			t.Fatalf("round %d: WriteBatch: %v", round, err)
		}
		want, err := ref.PutResources(ctx, recs)
		if err != nil {
			t.Fatalf("round %d: PutResources: %v", round, err)
		}
		for i := range want {
			if got.Changes[i] != want[i] {
				t.Fatalf("round %d: change %d (%s/%s) = %v, PutResources says %v", round, i, recs[i].Type, recs[i].ID,
					got.Changes[i], want[i])
			}
		}
		if g, w := versionCount(t, bulk), versionCount(t, ref); g != w {
			t.Fatalf("round %d: WriteBatch store has %d versions, PutResources store %d", round, g, w)
		}
		var dels []store.Tombstone
		for range rng.IntN(15) {
			d := store.Tombstone{Connection: "c", Type: []string{"Observation", "Patient"}[rng.IntN(2)],
				ID: fmt.Sprint("r", rng.IntN(400)), DeletedAt: time.Unix(int64(round), 0).UTC(), Source: fmt.Sprint("del", round)}
			deleted[store.Key{Connection: d.Connection, Type: d.Type, ID: d.ID}] = true
			dels = append(dels, d)
		}
		var counts []int
		for _, s := range []BatchStore{bulk, ref} {
			res, err := s.WriteBatch(ctx, store.Batch{Deletes: dels})
			if err != nil {
				t.Fatalf("round %d: deleting: %v", round, err)
			}
			counts = append(counts, res.Deleted)
		}
		if counts[0] != counts[1] {
			t.Fatalf("round %d: deleted %d and %d", round, counts[0], counts[1])
		}
	}
	g, w := dumpStore(t, bulk, deleted), dumpStore(t, ref, deleted)
	if !slices.Equal(g, w) {
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Errorf("first difference: WriteBatch store has %q, PutResources store %q", g[i], w[i])
				break
			}
		}
		t.Fatalf("stores differ: WriteBatch store shows %d lines, PutResources store %d", len(g), len(w))
	}
	t.Logf("%d lines compared; %d of 40 batches without a repeated resource", len(g), unique)
}

func versionCount(t *testing.T, s store.Statter) int {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st.Versions
}

// dumpStore lists what a store shows through its roles: every current
// record, the counts, patient search results and the tombstones of
// deleted.
func dumpStore(t *testing.T, s BatchStore, deleted map[store.Key]bool) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if err := s.ScanCurrent(ctx, func(r store.Record) error {
		out = append(out, fmt.Sprintf("%s/%s/%s v%s patient %s raw %s norm %s updated %s fetched %s source %s",
			r.Connection, r.Type, r.ID, r.VersionID, r.PatientID, r.Raw, r.Normalized,
			r.LastUpdated.UTC().Format(time.RFC3339), r.FetchedAt.UTC().Format(time.RFC3339), r.Source))
		return nil
	}); err != nil {
		t.Fatalf("ScanCurrent: %v", err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	out = append(out, fmt.Sprintf("stats %v versions %d", st.Resources, st.Versions))
	for _, conn := range []string{"c", "d"} {
		for n := range 5 {
			for _, birth := range []string{"", "2000-01-02"} {
				ps, err := s.SearchPatients(ctx, store.PatientQuery{Connection: conn, Text: fmt.Sprint("name", n), BirthDate: birth, Limit: 1000})
				if err != nil {
					t.Fatalf("SearchPatients: %v", err)
				}
				var ids []string
				for _, p := range ps {
					ids = append(ids, p.ID)
				}
				slices.Sort(ids)
				out = append(out, fmt.Sprintf("search %s name%d %q: %v", conn, n, birth, ids))
			}
		}
	}
	var keys []store.Key
	for k := range deleted {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b store.Key) int {
		return cmp.Or(cmp.Compare(a.Connection, b.Connection), cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
	})
	for _, k := range keys {
		ts, err := s.Tombstone(ctx, k.Connection, k.Type, k.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out = append(out, fmt.Sprintf("tombstone %s/%s: none", k.Type, k.ID))
		case err != nil:
			t.Fatalf("Tombstone: %v", err)
		default:
			out = append(out, fmt.Sprintf("tombstone %s/%s: %s %s", k.Type, k.ID, ts.DeletedAt.UTC().Format(time.RFC3339), ts.Source))
		}
	}
	return out
}

// testConcurrentBatches has writers store the same resources at once,
// through WriteBatch and PutResources: each resource must be reported new
// once, then (all writers sending its next version) updated once, with
// exactly one version row per version.
func testConcurrentBatches(t *testing.T, newStore func(t *testing.T) BatchStore) {
	ctx := context.Background()
	s := newStore(t)
	const workers, resources = 6, 120
	for phase, want := range []store.Change{store.New, store.Updated} {
		var mu sync.Mutex
		counts := map[store.Change]int{}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(phase)))
				recs := make([]store.Record, resources)
				for i, j := range rng.Perm(resources) { // each writer its own order
					recs[i] = rec("c", "Observation", fmt.Sprint("o", j), fmt.Sprint(phase+1), "p1",
						fmt.Sprintf(`{"id":"o%d","v":%d}`, j, phase))
				}
				var changes []store.Change
				var err error
				if w%3 == 2 {
					changes, err = s.PutResources(ctx, recs)
				} else {
					var res store.BatchResult
					res, err = s.WriteBatch(ctx, store.Batch{Records: recs})
					changes = res.Changes
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				for _, c := range changes {
					counts[c]++
				}
			}()
		}
		wg.Wait()
		if counts[want] != resources || counts[store.Unchanged] != resources*(workers-1) {
			t.Errorf("phase %d: changes %v, want %d %v and the rest unchanged", phase, counts, resources, want)
		}
		if got := versionCount(t, s); got != resources*(phase+1) {
			t.Errorf("phase %d: %d versions, want %d", phase, got, resources*(phase+1))
		}
	}
}
