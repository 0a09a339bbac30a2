package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"ehrgate/store"
)

// BulkStore is what a backend must provide to run RunBulkTests.
type BulkStore interface {
	store.Store
	store.BulkStore
	store.TombstoneReader
	store.CurrentScanner
}

// RunBulkTests runs the bulk-ingest conformance suite (batches with
// checkpoints, tombstones, export state) against stores made by newStore.
func RunBulkTests(t *testing.T, newStore func(t *testing.T) BulkStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s BulkStore)
	}{
		{"BatchIdempotentLikePut", testBatchIdempotent},
		{"BatchKeepsVersionsLikePut", testBatchVersions},
		{"CheckpointCommittedWithBatch", testCheckpoint},
		{"FailedBatchWritesNothing", testFailedBatch},
		{"TombstoneHidesAndKeepsRaw", testTombstone},
		{"ResourceComesBackAfterTombstone", testTombstoneThenBack},
		{"LastExport", testLastExport},
		{"ScanCurrent", testScanCurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func countOf(t *testing.T, s store.Statter, conn, typ string) int {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	for _, tc := range st.Resources {
		if tc.Connection == conn && tc.Type == typ {
			return tc.Count
		}
	}
	return 0
}

func testBatchIdempotent(t *testing.T, s BulkStore) {
	ctx := context.Background()
	b := store.Batch{Records: []store.Record{
		rec("c", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`),
		rec("c", "Observation", "o2", "1", "p1", `{"resourceType":"Observation","id":"o2"}`),
	}}
	r, err := s.WriteBatch(ctx, b)
	if err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	if got := r.Changes; len(got) != 2 || got[0] != store.New || got[1] != store.New {
		t.Fatalf("first WriteBatch changes = %v, want [new new]", got)
	}
	r, err = s.WriteBatch(ctx, b)
	if err != nil {
		t.Fatalf("WriteBatch again: %v", err)
	}
	if got := r.Changes; got[0] != store.Unchanged || got[1] != store.Unchanged {
		t.Fatalf("second WriteBatch changes = %v, want [unchanged unchanged]", got)
	}
	// PutResources and WriteBatch agree on what is already stored.
	ch, err := s.PutResources(ctx, b.Records[:1])
	if err != nil || ch[0] != store.Unchanged {
		t.Fatalf("PutResources after WriteBatch = %v, %v; want [unchanged]", ch, err)
	}
	st, _ := s.Stats(ctx)
	if st.Versions != 2 {
		t.Errorf("Versions = %d, want 2", st.Versions)
	}
}

func testBatchVersions(t *testing.T, s BulkStore) {
	ctx := context.Background()
	if _, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{rec("c", "Patient", "p1", "1", "p1", `{"a":1}`)}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{rec("c", "Patient", "p1", "1", "p1", `{"a":2}`)}})
	if err != nil || r.Changes[0] != store.Updated {
		t.Fatalf("same versionId, new bytes = %v, %v; want updated", r.Changes, err)
	}
	r, err = s.WriteBatch(ctx, store.Batch{Records: []store.Record{rec("c", "Patient", "p1", "2", "p1", `{"a":3}`)}})
	if err != nil || r.Changes[0] != store.Updated {
		t.Fatalf("new versionId = %v, %v; want updated", r.Changes, err)
	}
	got, err := s.Get(ctx, "c", "Patient", "p1")
	if err != nil || string(got.Raw) != `{"a":3}` {
		t.Fatalf("Get = %q, %v; want the latest bytes", got.Raw, err)
	}
	st, _ := s.Stats(ctx)
	if st.Versions != 3 {
		t.Errorf("Versions = %d, want 3 (every received version kept)", st.Versions)
	}
	// The same within one batch, as PutResources would do record by record.
	r, err = s.WriteBatch(ctx, store.Batch{Records: []store.Record{
		rec("c", "Patient", "p2", "1", "p2", `{"b":1}`),
		rec("c", "Patient", "p2", "1", "p2", `{"b":2}`),
		rec("c", "Patient", "p2", "1", "p2", `{"b":2}`),
	}})
	if err != nil || r.Changes[0] != store.New || r.Changes[1] != store.Updated || r.Changes[2] != store.Unchanged {
		t.Fatalf("one batch with one versionId and two bodies = %v, %v; want [new updated unchanged]", r.Changes, err)
	}
	if got, _ := s.Get(ctx, "c", "Patient", "p2"); string(got.Raw) != `{"b":2}` {
		t.Errorf("Get = %q, want the last bytes", got.Raw)
	}
	if st, _ := s.Stats(ctx); st.Versions != 5 {
		t.Errorf("Versions = %d, want 5", st.Versions)
	}
}

func testCheckpoint(t *testing.T, s BulkStore) {
	ctx := context.Background()
	cp := store.Checkpoint{Connection: "c", Job: "j1", File: "f1", Offset: 100, Line: 2}
	_, err := s.WriteBatch(ctx, store.Batch{
		Records:    []store.Record{rec("c", "Observation", "o1", "1", "p1", `{}`)},
		Quarantine: []store.QuarantineItem{{Connection: "c", Source: "f1#L2", Reason: "bad", Raw: []byte("x")}},
		Checkpoint: &cp,
	})
	if err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
	cp2 := cp
	cp2.Offset, cp2.Line, cp2.Done = 250, 5, true
	if _, err := s.WriteBatch(ctx, store.Batch{Checkpoint: &cp2}); err != nil {
		t.Fatalf("WriteBatch checkpoint only: %v", err)
	}
	got, err := s.Checkpoints(ctx, "c", "j1")
	if err != nil {
		t.Fatalf("Checkpoints: %v", err)
	}
	if g := got["f1"]; g != cp2 || len(got) != 1 {
		t.Errorf("Checkpoints = %+v, want {f1: %+v}", got, cp2)
	}
	if other, _ := s.Checkpoints(ctx, "c", "j2"); len(other) != 0 {
		t.Errorf("Checkpoints of another job = %v, want none", other)
	}
	st, _ := s.Stats(ctx)
	if st.Quarantined != 1 {
		t.Errorf("Quarantined = %d, want 1", st.Quarantined)
	}
}

func testFailedBatch(t *testing.T, s BulkStore) {
	ctx := context.Background()
	cp := store.Checkpoint{Connection: "c", Job: "j", File: "f", Offset: 10, Line: 1}
	_, err := s.WriteBatch(ctx, store.Batch{
		Records:    []store.Record{rec("c", "Observation", "o1", "1", "", `{}`), rec("c", "", "", "1", "", `{}`)},
		Checkpoint: &cp,
	})
	if err == nil {
		t.Fatal("WriteBatch with an invalid record succeeded, want an error")
	}
	if cps, _ := s.Checkpoints(ctx, "c", "j"); len(cps) != 0 {
		t.Errorf("checkpoint stored by a failed batch: %v", cps)
	}
	if n := countOf(t, s, "c", "Observation"); n != 0 {
		t.Errorf("records stored by a failed batch: %d", n)
	}
}

func testTombstone(t *testing.T, s BulkStore) {
	ctx := context.Background()
	recs := []store.Record{
		rec("c", "Patient", "p1", "1", "p1", `{"resourceType":"Patient","id":"p1"}`),
		rec("c", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`),
		rec("c", "Observation", "o2", "1", "p1", `{"resourceType":"Observation","id":"o2"}`),
	}
	recs[0].Patient = &store.PatientKeys{Names: []string{"Ada Lovelace"}}
	if _, err := s.WriteBatch(ctx, store.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	r, err := s.WriteBatch(ctx, store.Batch{Deletes: []store.Tombstone{
		{Connection: "c", Type: "Observation", ID: "o1", DeletedAt: at, Source: "del#L1"},
		{Connection: "c", Type: "Patient", ID: "p1", DeletedAt: at},
		{Connection: "c", Type: "Observation", ID: "never", DeletedAt: at},
	}})
	if err != nil {
		t.Fatalf("WriteBatch deletes: %v", err)
	}
	if r.Deleted != 2 {
		t.Errorf("Deleted = %d, want 2", r.Deleted)
	}
	if _, err := s.Get(ctx, "c", "Observation", "o1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(deleted) error = %v, want ErrNotFound", err)
	}
	if n := countOf(t, s, "c", "Observation"); n != 1 {
		t.Errorf("Observation count = %d, want 1 (deleted excluded)", n)
	}
	if ps, _ := s.SearchPatients(ctx, store.PatientQuery{Text: "lovelace"}); len(ps) != 0 {
		t.Errorf("SearchPatients found a deleted patient")
	}
	ts, err := s.Tombstone(ctx, "c", "Observation", "o1")
	if err != nil || !ts.DeletedAt.Equal(at) || ts.Source != "del#L1" {
		t.Errorf("Tombstone = %+v, %v", ts, err)
	}
	st, _ := s.Stats(ctx)
	if st.Versions != 3 {
		t.Errorf("Versions = %d, want 3 (raw kept)", st.Versions)
	}
	// Deleting again changes nothing.
	r, err = s.WriteBatch(ctx, store.Batch{Deletes: []store.Tombstone{{Connection: "c", Type: "Observation", ID: "o1", DeletedAt: at}}})
	if err != nil || r.Deleted != 0 {
		t.Errorf("second delete = %+v, %v; want 0 deleted", r, err)
	}
}

func testTombstoneThenBack(t *testing.T, s BulkStore) {
	ctx := context.Background()
	r1 := rec("c", "Observation", "o1", "1", "p1", `{"v":1}`)
	if _, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{r1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteBatch(ctx, store.Batch{Deletes: []store.Tombstone{{Connection: "c", Type: "Observation", ID: "o1"}}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{r1}})
	if err != nil || res.Changes[0] != store.New {
		t.Fatalf("re-put after delete = %v, %v; want new", res.Changes, err)
	}
	if _, err := s.Get(ctx, "c", "Observation", "o1"); err != nil {
		t.Errorf("Get after coming back: %v", err)
	}
	if _, err := s.Tombstone(ctx, "c", "Observation", "o1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Tombstone after coming back = %v, want ErrNotFound", err)
	}
	if st, _ := s.Stats(ctx); st.Versions != 1 {
		t.Errorf("Versions = %d, want 1", st.Versions)
	}
}

func testLastExport(t *testing.T, s BulkStore) {
	ctx := context.Background()
	got, err := s.LastExport(ctx, "c", "system")
	if err != nil || !got.IsZero() {
		t.Fatalf("LastExport(empty) = %v, %v; want zero", got, err)
	}
	t1 := time.Date(2026, 7, 1, 10, 0, 0, 123000000, time.UTC)
	if err := s.SetLastExport(ctx, "c", "system", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastExport(ctx, "c", "group/g1", t1.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LastExport(ctx, "c", "system"); !got.Equal(t1) {
		t.Errorf("LastExport(system) = %v, want %v", got, t1)
	}
	if got, _ := s.LastExport(ctx, "c", "group/g1"); !got.Equal(t1.Add(time.Hour)) {
		t.Errorf("LastExport(group) = %v, want %v", got, t1.Add(time.Hour))
	}
	if got, _ := s.LastExport(ctx, "other", "system"); !got.IsZero() {
		t.Errorf("LastExport(other connection) = %v, want zero", got)
	}
}

func testScanCurrent(t *testing.T, s BulkStore) {
	ctx := context.Background()
	if _, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{
		rec("c", "Observation", "o2", "1", "p1", `{"x":2}`),
		rec("c", "Observation", "o1", "1", "p1", `{"x":1}`),
		rec("c", "Condition", "c1", "1", "p1", `{"x":3}`),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{rec("c", "Observation", "o1", "2", "p1", `{"x":4}`)}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := s.ScanCurrent(ctx, func(r store.Record) error {
		got = append(got, r.Type+"/"+r.ID+"/"+r.VersionID+"/"+string(r.Raw))
		return nil
	})
	if err != nil {
		t.Fatalf("ScanCurrent: %v", err)
	}
	want := []string{`Condition/c1/1/{"x":3}`, `Observation/o1/2/{"x":4}`, `Observation/o2/1/{"x":2}`}
	if len(got) != len(want) {
		t.Fatalf("ScanCurrent = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ScanCurrent[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}
