package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"ehrgate/store"
)

// ProvenanceStore is what RunProvenanceTests needs from a backend.
type ProvenanceStore interface {
	store.Store
	store.ProvenanceFinder
	store.BatchWriter
}

// RunProvenanceTests checks store.ProvenanceFinder: the Provenance of a
// resource are found by their targets as written by every record path
// (PutResources and WriteBatch), follow a Provenance's new versions and
// tombstones, stay on their connection, and Latest picks each target's
// most recent one. Each subtest gets a fresh store.
func RunProvenanceTests(t *testing.T, newStore func(t *testing.T) ProvenanceStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ProvenanceStore)
	}{
		{"FoundByTarget", testProvenanceByTarget},
		{"FollowsVersionsAndTombstones", testProvenanceVersions},
		{"BatchPathIndexes", testProvenanceBatch},
		{"ManyTargets", testProvenanceMany},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// provenance is a Provenance record on conn recorded at recorded
// targeting refs.
func provenance(conn, id, version, recorded string, refs ...string) store.Record {
	targets := ""
	for i, r := range refs {
		if i > 0 {
			targets += ","
		}
		targets += `{"reference":"` + r + `"}`
	}
	return rec(conn, "Provenance", id, version, "p1",
		`{"resourceType":"Provenance","id":"`+id+`","target":[`+targets+`],"recorded":"`+recorded+`"}`)
}

// provIDs asks s for the Provenance of ids and returns theirs.
func provIDs(t *testing.T, s store.ProvenanceFinder, conn, typ string, latest bool, ids ...string) []string {
	t.Helper()
	recs, err := s.ProvenanceFor(context.Background(), store.ProvenanceQuery{Connection: conn, Type: typ, IDs: ids, Latest: latest, RawOnly: true})
	if err != nil {
		t.Fatalf("ProvenanceFor(%s %s %v): %v", conn, typ, ids, err)
	}
	out := []string{}
	for _, r := range recs {
		if r.Type != "Provenance" || r.Connection != conn || len(r.Raw) == 0 {
			t.Errorf("ProvenanceFor returned %s/%s on %s (%d raw bytes)", r.Type, r.ID, r.Connection, len(r.Raw))
		}
		out = append(out, r.ID)
	}
	return out
}

func wantProv(t *testing.T, s store.ProvenanceFinder, conn, typ string, latest bool, ids []string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := provIDs(t, s, conn, typ, latest, ids...); !slices.Equal(got, want) {
		t.Errorf("ProvenanceFor(%s %s %v, latest=%v) = %v, want %v", conn, typ, ids, latest, got, want)
	}
}

func testProvenanceByTarget(t *testing.T, s ProvenanceStore) {
	put(t, s,
		rec("c1", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`),
		rec("c1", "Observation", "o2", "1", "p1", `{"resourceType":"Observation","id":"o2"}`),
		provenance("c1", "pv1", "1", "2026-01-01T00:00:00Z", "Observation/o1", "Patient/p1", "#contained", "urn:uuid:x"),
		provenance("c1", "pv2", "1", "2026-02-01T00:00:00+01:00", "https://ehr.test/fhir/Observation/o1/_history/3", "Observation/o2"),
		provenance("c2", "pv3", "1", "2026-03-01T00:00:00Z", "Observation/o1"),
	)
	wantProv(t, s, "c1", "Observation", false, []string{"o1"}, "pv1", "pv2")
	wantProv(t, s, "c1", "Observation", false, []string{"o2", "o1", "o2"}, "pv1", "pv2")
	wantProv(t, s, "c1", "Observation", true, []string{"o1"}, "pv2")
	wantProv(t, s, "c1", "Observation", true, []string{"o1", "o2"}, "pv2")
	wantProv(t, s, "c1", "Patient", true, []string{"p1"}, "pv1")
	wantProv(t, s, "c1", "Patient", false, []string{"o1"})
	wantProv(t, s, "c2", "Observation", false, []string{"o1", "o2"}, "pv3")
	wantProv(t, s, "c1", "Observation", false, []string{"nope"})
	wantProv(t, s, "c1", "Observation", false, nil)
}

func testProvenanceVersions(t *testing.T, s ProvenanceStore) {
	ctx := context.Background()
	put(t, s,
		provenance("c1", "pv1", "1", "2026-01-01T00:00:00Z", "Observation/o1"),
		provenance("c1", "pv2", "1", "2026-02-01T00:00:00Z", "Observation/o1"),
	)
	wantProv(t, s, "c1", "Observation", true, []string{"o1"}, "pv2")
	// pv2's next version targets another resource: o1's latest is pv1.
	put(t, s, provenance("c1", "pv2", "2", "2026-02-01T00:00:00Z", "Observation/o2"))
	wantProv(t, s, "c1", "Observation", true, []string{"o1"}, "pv1")
	wantProv(t, s, "c1", "Observation", false, []string{"o2"}, "pv2")
	// Writing the same bytes again changes nothing.
	put(t, s, provenance("c1", "pv2", "2", "2026-02-01T00:00:00Z", "Observation/o2"))
	wantProv(t, s, "c1", "Observation", false, []string{"o1", "o2"}, "pv1", "pv2")
	// A tombstoned Provenance is nobody's.
	if _, err := s.WriteBatch(ctx, store.Batch{Deletes: []store.Tombstone{{Connection: "c1", Type: "Provenance", ID: "pv1"}}}); err != nil {
		t.Fatal(err)
	}
	wantProv(t, s, "c1", "Observation", false, []string{"o1"})
	// Without recorded, the time it was received orders it.
	put(t, s,
		provenance("c1", "pv5", "1", "2025-12-31T00:00:00Z", "Observation/o3"),
		provenance("c1", "pv0", "1", "", "Observation/o3"))
	wantProv(t, s, "c1", "Observation", true, []string{"o3"}, "pv0")
}

func testProvenanceBatch(t *testing.T, s ProvenanceStore) {
	ctx := context.Background()
	recs := []store.Record{
		rec("c1", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`),
		provenance("c1", "pv1", "1", "2026-01-01T00:00:00Z", "Observation/o1"),
		provenance("c1", "pv2", "1", "2026-02-01T00:00:00Z", "Observation/o1"),
		// pv2 twice in one batch: its last record is what is current.
		provenance("c1", "pv2", "2", "2026-02-01T00:00:00Z", "Observation/o9"),
	}
	if _, err := s.WriteBatch(ctx, store.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	wantProv(t, s, "c1", "Observation", false, []string{"o1"}, "pv1")
	wantProv(t, s, "c1", "Observation", true, []string{"o9"}, "pv2")
	// A batch of unique keys (the backends' fastest path).
	if _, err := s.WriteBatch(ctx, store.Batch{Records: []store.Record{
		provenance("c1", "pv3", "1", "2026-03-01T00:00:00Z", "Observation/o1"),
		provenance("c1", "pv4", "1", "2026-04-01T00:00:00Z", "Observation/o2"),
	}}); err != nil {
		t.Fatal(err)
	}
	wantProv(t, s, "c1", "Observation", true, []string{"o1", "o2"}, "pv3", "pv4")
}

func testProvenanceMany(t *testing.T, s ProvenanceStore) {
	var recs []store.Record
	var ids, want []string
	for i := range 1100 {
		id := fmt.Sprintf("o%04d", i)
		ids = append(ids, id)
		if i%3 == 0 {
			continue
		}
		want = append(want, "pv"+id)
		recs = append(recs, provenance("c1", "pv"+id, "1", "2026-01-01T00:00:00Z", "Observation/"+id))
	}
	if _, err := s.WriteBatch(context.Background(), store.Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
	got := provIDs(t, s, "c1", "Observation", true, ids...)
	if !slices.Equal(got, want) {
		t.Errorf("ProvenanceFor(1100 ids) = %d Provenance, want %d in id order", len(got), len(want))
	}
}

// ProvenanceBackfill opens one database again and again, and can migrate
// it back to before the Provenance index existed.
type ProvenanceBackfill struct {
	// Open opens the store (migrating it to the latest schema).
	Open func(t *testing.T) ProvenanceStore
	// Downgrade migrates the closed store down to the version before
	// provenance_targets.
	Downgrade func(t *testing.T)
}

// RunProvenanceBackfillTest checks that the Provenance a store held
// before the index existed are found after the upgrade.
func RunProvenanceBackfillTest(t *testing.T, h ProvenanceBackfill) {
	s := h.Open(t)
	put(t, s,
		rec("c1", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`),
		provenance("c1", "pv1", "1", "2026-01-01T00:00:00Z", "Observation/o1"),
		provenance("c1", "pv2", "1", "2026-02-01T00:00:00Z", "Observation/o1", "Patient/p1"),
	)
	s.Close()
	h.Downgrade(t)
	s = h.Open(t)
	wantProv(t, s, "c1", "Observation", false, []string{"o1"}, "pv1", "pv2")
	wantProv(t, s, "c1", "Patient", true, []string{"p1"}, "pv2")
	s.Close()
	// The backfill runs once: opening again changes nothing.
	s = h.Open(t)
	defer s.Close()
	wantProv(t, s, "c1", "Observation", true, []string{"o1"}, "pv2")
}
