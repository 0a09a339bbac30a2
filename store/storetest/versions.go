package storetest

import (
	"context"
	"errors"
	"testing"

	"ehrgate/store"
)

// VersionStore is a store that also reads past versions.
type VersionStore interface {
	store.Store
	store.VersionReader
}

// RunVersionTests checks store.VersionReader: every stored version stays
// readable by its version id after newer ones arrive, byte for byte.
func RunVersionTests(t *testing.T, newStore func(t *testing.T) VersionStore) {
	ctx := context.Background()
	s := newStore(t)
	t.Cleanup(func() { s.Close() })
	v1 := rec("c1", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1","status":"preliminary"}`)
	v2 := rec("c1", "Observation", "o1", "2", "p1", `{"resourceType":"Observation","id":"o1","status":"final"}`)
	put(t, s, v1)
	put(t, s, v2)
	for _, want := range []store.Record{v1, v2} {
		got, err := s.GetVersion(ctx, "c1", "Observation", "o1", want.VersionID)
		if err != nil {
			t.Fatalf("GetVersion(o1, %q): %v", want.VersionID, err)
		}
		if string(got.Raw) != string(want.Raw) || got.VersionID != want.VersionID || got.PatientID != "p1" {
			t.Errorf("GetVersion(o1, %q) = %s (version %q, patient %q), want %s", want.VersionID, got.Raw, got.VersionID, got.PatientID, want.Raw)
		}
	}
	cur, err := s.Get(ctx, "c1", "Observation", "o1")
	if err != nil || cur.VersionID != "2" {
		t.Errorf("Get(o1) = version %q, %v; want the newest, 2", cur.VersionID, err)
	}
	for _, k := range []store.Key{
		{Connection: "c1", Type: "Observation", ID: "o1", VersionID: "3"},
		{Connection: "c2", Type: "Observation", ID: "o1", VersionID: "1"},
		{Connection: "c1", Type: "Condition", ID: "o1", VersionID: "1"},
	} {
		if _, err := s.GetVersion(ctx, k.Connection, k.Type, k.ID, k.VersionID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetVersion(%+v) error = %v, want store.ErrNotFound", k, err)
		}
	}
}
