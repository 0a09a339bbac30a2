package storetest

import (
	"context"
	"errors"
	"fmt"
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
		{"MixedBatchesLikePut", testBatchMixed},
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
	got, err := s.LastExports(ctx, "c", "system")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("LastExports(empty) = %v, %v; want an empty map", got, err)
	}
	t1 := time.Date(2026, 7, 1, 10, 0, 0, 123000000, time.UTC)
	t2 := t1.Add(time.Hour)
	steps := []struct {
		scope string
		at    time.Time
		types []string
	}{
		{"system", t1, []string{"Patient", "Observation", "Condition"}},
		{"system", t2, []string{"Patient", "Observation"}}, // Condition incomplete: stays at t1
		{"system", t2, []string{""}},                       // an export without _type
		{"group/g1", t2.Add(time.Hour), []string{"Patient"}},
	}
	for _, st := range steps {
		if err := s.SetLastExport(ctx, "c", st.scope, st.at, st.types); err != nil {
			t.Fatalf("SetLastExport(%s, %v, %v): %v", st.scope, st.at, st.types, err)
		}
	}
	tests := []struct {
		conn, scope string
		want        map[string]time.Time
	}{
		{"c", "system", map[string]time.Time{"Patient": t2, "Observation": t2, "Condition": t1, "": t2}},
		{"c", "group/g1", map[string]time.Time{"Patient": t2.Add(time.Hour)}},
		{"c", "patient", map[string]time.Time{}},
		{"other", "system", map[string]time.Time{}},
	}
	for _, tc := range tests {
		got, err := s.LastExports(ctx, tc.conn, tc.scope)
		if err != nil {
			t.Fatalf("LastExports(%s, %s): %v", tc.conn, tc.scope, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("LastExports(%s, %s) = %v, want %v", tc.conn, tc.scope, got, tc.want)
			continue
		}
		for typ, w := range tc.want {
			if g, ok := got[typ]; !ok || !g.Equal(w) {
				t.Errorf("LastExports(%s, %s)[%q] = %v, want %v", tc.conn, tc.scope, typ, g, w)
			}
		}
	}
	if err := s.SetLastExport(ctx, "c", "system", t2, nil); err == nil {
		t.Error("SetLastExport without types succeeded, want an error")
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

// testBatchMixed covers batches larger than one statement that mix new,
// unchanged and updated resources, new bytes under a stored versionId,
// resources back after a tombstone (with the same or new bytes), several
// types and connections, and batches that start with a new or with a
// stored resource (backends may pick a strategy from either).
func testBatchMixed(t *testing.T, s BulkStore) {
	ctx := context.Background()
	obs := func(id, version, body string) store.Record {
		return rec("c", "Observation", id, version, "p1", `{"resourceType":"Observation","id":"`+id+`","b":"`+body+`"}`)
	}
	write := func(what string, recs []store.Record, want []store.Change) {
		t.Helper()
		r, err := s.WriteBatch(ctx, store.Batch{Records: recs})
		if err != nil {
			t.Fatalf("%s: WriteBatch: %v", what, err)
		}
		if len(r.Changes) != len(want) {
			t.Fatalf("%s: %d changes, want %d", what, len(r.Changes), len(want))
		}
		for i := range want {
			if r.Changes[i] != want[i] {
				t.Errorf("%s: change %d (%s/%s) = %v, want %v", what, i, recs[i].Type, recs[i].ID, r.Changes[i], want[i])
			}
		}
	}
	all := func(n int, c store.Change) []store.Change {
		out := make([]store.Change, n)
		for i := range out {
			out[i] = c
		}
		return out
	}
	versions := func(want int) {
		t.Helper()
		if st, _ := s.Stats(ctx); st.Versions != want {
			t.Errorf("Versions = %d, want %d", st.Versions, want)
		}
	}
	raw := func(conn, typ, id, want string) {
		t.Helper()
		got, err := s.Get(ctx, conn, typ, id)
		if err != nil || string(got.Raw) != want {
			t.Errorf("Get(%s/%s) = %q, %v; want %q", typ, id, got.Raw, err, want)
		}
	}

	// A fresh store; more resources than fit one statement.
	var seed []store.Record
	for i := range 450 {
		seed = append(seed, obs(fmt.Sprintf("o%d", i), "1", "a"))
	}
	pat := rec("c", "Patient", "p1", "1", "p1", `{"resourceType":"Patient","id":"p1"}`)
	pat.Patient = &store.PatientKeys{Names: []string{"Grace Hopper"}}
	seed = append(seed, pat, rec("c", "Condition", "c1", "1", "p1", `{"c":1}`))
	write("first import", seed, all(len(seed), store.New))
	versions(452)
	// The same corpus again changes nothing.
	write("re-import", seed, all(len(seed), store.Unchanged))
	versions(452)
	if ps, _ := s.SearchPatients(ctx, store.PatientQuery{Text: "hopper"}); len(ps) != 1 {
		t.Errorf("SearchPatients(hopper) = %d results, want 1", len(ps))
	}

	del := func(ids ...string) {
		t.Helper()
		var ts []store.Tombstone
		for _, id := range ids {
			ts = append(ts, store.Tombstone{Connection: "c", Type: "Observation", ID: id})
		}
		if _, err := s.WriteBatch(ctx, store.Batch{Deletes: ts}); err != nil {
			t.Fatal(err)
		}
	}
	del("o5", "o6", "o8", "o300")

	// A batch that starts with a new resource.
	mixed := []store.Record{
		obs("n1", "1", "n"), // new
		obs("o1", "1", "a"), // unchanged
		obs("o2", "2", "b"), // new versionId
		obs("o3", "1", "b"), // new bytes, same versionId
		obs("o5", "1", "a"), // back after a tombstone, same bytes
		obs("o6", "1", "b"), // back after a tombstone, new bytes under its versionId
		rec("c", "Condition", "c1", "1", "p1", `{"c":2}`),   // another type, new bytes
		rec("d", "Observation", "o1", "1", "p1", `{"d":1}`), // another connection, new
		obs("o4", "", "b"), // no versionId, new bytes
	}
	for i := 9; i < 250; i++ {
		mixed = append(mixed, obs(fmt.Sprintf("o%d", i), "1", "a")) // unchanged
	}
	mixed = append(mixed, obs("o300", "1", "a"), obs("n2", "1", "n"), obs("o301", "1", "c"))
	want := []store.Change{store.New, store.Unchanged, store.Updated, store.Updated, store.New, store.New,
		store.Updated, store.New, store.Updated}
	want = append(want, all(241, store.Unchanged)...)
	want = append(want, store.New, store.New, store.Updated)
	write("mixed batch starting with a new resource", mixed, want)
	// n1, o2 v2, o3 suffixed, o6 suffixed, c1 suffixed, d/o1, o4 by hash,
	// n2, o301 suffixed.
	versions(452 + 9)
	raw("c", "Observation", "o3", `{"resourceType":"Observation","id":"o3","b":"b"}`)
	raw("c", "Observation", "o6", `{"resourceType":"Observation","id":"o6","b":"b"}`)
	raw("c", "Observation", "o5", `{"resourceType":"Observation","id":"o5","b":"a"}`)
	raw("c", "Condition", "c1", `{"c":2}`)
	raw("d", "Observation", "o1", `{"d":1}`)
	if _, err := s.Tombstone(ctx, "c", "Observation", "o6"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Tombstone(o6) after coming back = %v, want ErrNotFound", err)
	}
	// The same batch again: all unchanged, this time starting with a stored
	// resource.
	write("mixed batch again", mixed, all(len(mixed), store.Unchanged))

	// A batch that starts with a stored resource.
	del("o7")
	mixed2 := []store.Record{
		obs("o1", "1", "a"),  // unchanged
		obs("n3", "1", "n"),  // new
		obs("o7", "1", "z"),  // back after a tombstone, new bytes under its versionId
		obs("o10", "2", "z"), // new versionId
		obs("o2", "1", "a"),  // back to the bytes of version 1: stored already
		rec("c", "Patient", "p1", "1", "p1", `{"resourceType":"Patient","id":"p1","x":1}`),
	}
	mixed2[5].Patient = &store.PatientKeys{Names: []string{"Grace Brewster Murray"}}
	write("mixed batch starting with a stored resource", mixed2,
		[]store.Change{store.Unchanged, store.New, store.New, store.Updated, store.Updated, store.Updated})
	raw("c", "Observation", "o7", `{"resourceType":"Observation","id":"o7","b":"z"}`)
	raw("c", "Observation", "o2", `{"resourceType":"Observation","id":"o2","b":"a"}`)
	raw("c", "Patient", "p1", `{"resourceType":"Patient","id":"p1","x":1}`)
	versions(461 + 4) // n3, o7 suffixed, o10 v2, p1 suffixed
	if ps, _ := s.SearchPatients(ctx, store.PatientQuery{Text: "brewster"}); len(ps) != 1 {
		t.Errorf("SearchPatients(brewster) = %d results, want 1", len(ps))
	}
}
