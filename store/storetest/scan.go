package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"ehrgate/store"
)

// ScanStore is what RunScanTests needs from a backend.
type ScanStore interface {
	store.Store
	store.PagedScanner
	store.NormalizedRewriter
	store.RawPatientLister
}

// RunScanTests runs the conformance tests of the store.PagedScanner and
// store.NormalizedRewriter roles against stores made by newStore, each
// subtest on a fresh, empty store.
func RunScanTests(t *testing.T, newStore func(t *testing.T) ScanStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ScanStore)
	}{
		{"ScanPagesEverythingOnce", testScanPages},
		{"ScanFilters", testScanFilters},
		{"ScanReturnsCurrentVersionOnly", testScanCurrentOnly},
		{"ScanRawOnly", testScanRawOnly},
		{"ScanTypeAcrossConnections", testScanTypeAcrossConnections},
		{"RewriteNormalizedInPlace", testRewriteInPlace},
		{"RewriteUnknownKeyFailsBatch", testRewriteUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func scanAll(t *testing.T, s store.PagedScanner, q store.ScanQuery) []store.Record {
	t.Helper()
	var out []store.Record
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("ScanCurrent does not terminate")
		}
		page, err := s.ScanCurrentPage(context.Background(), q)
		if err != nil {
			t.Fatalf("ScanCurrent: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		if q.Limit > 0 && len(page) > q.Limit {
			t.Fatalf("ScanCurrent returned %d records, limit %d", len(page), q.Limit)
		}
		out = append(out, page...)
		q.After = page[len(page)-1].Key
	}
}

func testScanPages(t *testing.T, s ScanStore) {
	var recs []store.Record
	for _, conn := range []string{"b", "a"} {
		for _, typ := range []string{"Patient", "Observation"} {
			for i := range 7 {
				id := fmt.Sprintf("%s%d", typ[:1], i)
				recs = append(recs, rec(conn, typ, id, "1", "p1", `{"resourceType":"`+typ+`","id":"`+id+`"}`))
			}
		}
	}
	put(t, s, recs...)
	got := scanAll(t, s, store.ScanQuery{Limit: 3})
	if len(got) != len(recs) {
		t.Fatalf("scan returned %d records, want %d", len(got), len(recs))
	}
	seen := map[store.Key]bool{}
	for i, r := range got {
		k := r.Key
		k.VersionID = ""
		if seen[k] {
			t.Errorf("record %v returned twice", k)
		}
		seen[k] = true
		if i > 0 {
			p := got[i-1].Key
			if !(p.Connection < k.Connection || p.Connection == k.Connection && (p.Type < k.Type || p.Type == k.Type && p.ID < k.ID)) {
				t.Errorf("records out of order: %v then %v", p, k)
			}
		}
		if len(r.Raw) == 0 || len(r.Normalized) == 0 {
			t.Errorf("record %v lacks raw or normalized bytes", k)
		}
	}
}

func testScanFilters(t *testing.T, s ScanStore) {
	put(t, s,
		rec("a", "Patient", "p1", "1", "p1", `{"resourceType":"Patient","id":"p1"}`),
		rec("a", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`),
		rec("b", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1","x":1}`),
	)
	if got := scanAll(t, s, store.ScanQuery{Connection: "a"}); len(got) != 2 {
		t.Errorf("scan of connection a returned %d records, want 2", len(got))
	}
	if got := scanAll(t, s, store.ScanQuery{Type: "Observation"}); len(got) != 2 {
		t.Errorf("scan of Observation returned %d records, want 2", len(got))
	}
	if got := scanAll(t, s, store.ScanQuery{Connection: "b", Type: "Patient"}); len(got) != 0 {
		t.Errorf("scan of b Patient returned %d records, want 0", len(got))
	}
}

func testScanCurrentOnly(t *testing.T, s ScanStore) {
	put(t, s, rec("a", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1","v":1}`))
	put(t, s, rec("a", "Observation", "o1", "2", "p1", `{"resourceType":"Observation","id":"o1","v":2}`))
	got := scanAll(t, s, store.ScanQuery{})
	if len(got) != 1 || got[0].VersionID != "2" {
		t.Fatalf("scan = %d records (version %v), want the current version 2 only", len(got), got)
	}
}

func testRewriteInPlace(t *testing.T, s ScanStore) {
	ctx := context.Background()
	r := rec("a", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`)
	put(t, s, r)
	before, err := s.Get(ctx, "a", "Observation", "o1")
	if err != nil {
		t.Fatal(err)
	}
	_, versionsBefore := count(t, s)
	newNorm := []byte(`{"source":{"type":"Observation","id":"o1"},"remapped":true}`)
	if err := s.RewriteNormalized(ctx, []store.NormalizedUpdate{{Key: before.Key, Normalized: newNorm}}); err != nil {
		t.Fatalf("RewriteNormalized: %v", err)
	}
	after, err := s.Get(ctx, "a", "Observation", "o1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.Normalized, newNorm) {
		t.Errorf("Normalized after rewrite = %s, want %s", after.Normalized, newNorm)
	}
	if !bytes.Equal(after.Raw, before.Raw) || after.VersionID != before.VersionID || !after.FetchedAt.Equal(before.FetchedAt) {
		t.Errorf("rewrite changed raw, version or fetch time: %+v -> %+v", before.Key, after.Key)
	}
	if _, v := count(t, s); v != versionsBefore {
		t.Errorf("rewrite created versions: %d -> %d", versionsBefore, v)
	}
	// Re-putting the same raw bytes is still unchanged.
	if ch := put(t, s, r); ch[0] != store.Unchanged {
		t.Errorf("put after rewrite = %v, want unchanged", ch[0])
	}
}

func testRewriteUnknown(t *testing.T, s ScanStore) {
	ctx := context.Background()
	put(t, s, rec("a", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`))
	cur, _ := s.Get(ctx, "a", "Observation", "o1")
	err := s.RewriteNormalized(ctx, []store.NormalizedUpdate{
		{Key: cur.Key, Normalized: []byte(`{"changed":1}`)},
		{Key: store.Key{Connection: "a", Type: "Observation", ID: "nope", VersionID: "1"}, Normalized: []byte(`{}`)},
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RewriteNormalized with an unknown key = %v, want ErrNotFound", err)
	}
	after, _ := s.Get(ctx, "a", "Observation", "o1")
	if !bytes.Equal(after.Normalized, cur.Normalized) {
		t.Errorf("failed batch was partly applied")
	}
}

func testScanRawOnly(t *testing.T, s ScanStore) {
	put(t, s, rec("a", "Observation", "o1", "1", "p1", `{"resourceType":"Observation","id":"o1"}`))
	for _, rawOnly := range []bool{false, true} {
		got := scanAll(t, s, store.ScanQuery{Type: "Observation", RawOnly: rawOnly})
		if len(got) != 1 || string(got[0].Raw) != `{"resourceType":"Observation","id":"o1"}` {
			t.Fatalf("scan (RawOnly %v) = %+v", rawOnly, got)
		}
		if (got[0].Normalized == nil) != rawOnly {
			t.Errorf("scan (RawOnly %v) normalized = %q", rawOnly, got[0].Normalized)
		}
	}
	raw, err := s.ListRawByPatient(context.Background(), "a", "p1", "Observation")
	full, err2 := s.ListByPatient(context.Background(), "a", "p1", "Observation")
	if err != nil || err2 != nil || len(raw) != 1 || len(full) != 1 || string(raw[0].Raw) != string(full[0].Raw) ||
		raw[0].Normalized != nil || raw[0].Key != full[0].Key || raw[0].PatientID != "p1" {
		t.Errorf("ListRawByPatient = %+v, %v; want ListByPatient's records without the normalized form", raw, err)
	}
}

// testScanTypeAcrossConnections: a type-filtered scan with small pages
// returns exactly what filtering a whole scan does, in the same order,
// whatever connections and types surround it, and resumes from cursors
// of other types.
func testScanTypeAcrossConnections(t *testing.T, s ScanStore) {
	var recs []store.Record
	for _, conn := range []string{"a", "b", "c-empty", "d"} {
		for _, typ := range []string{"Condition", "Observation", "Patient"} {
			if conn == "c-empty" && typ == "Observation" {
				continue
			}
			for i := range 4 {
				id := fmt.Sprintf("%s%d", typ[:1], i)
				recs = append(recs, rec(conn, typ, id, "1", "p1", `{"resourceType":"`+typ+`","id":"`+id+`"}`))
			}
		}
	}
	put(t, s, recs...)
	all := scanAll(t, s, store.ScanQuery{Limit: 1000})
	for _, typ := range []string{"Condition", "Observation", "Patient", "Procedure"} {
		var want []store.Key
		for _, r := range all {
			if r.Type == typ {
				want = append(want, r.Key)
			}
		}
		for _, limit := range []int{1, 3, 5, 100} {
			var got []store.Key
			for _, r := range scanAll(t, s, store.ScanQuery{Type: typ, Limit: limit}) {
				got = append(got, r.Key)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("scan of %s by %d = %v, want %v", typ, limit, got, want)
			}
		}
		// One connection only, and a cursor of another type.
		got := scanAll(t, s, store.ScanQuery{Type: typ, Connection: "b", After: store.Key{Connection: "a", Type: "Patient", ID: "P3"}, Limit: 2})
		n := 0
		for _, w := range want {
			if w.Connection == "b" {
				n++
			}
		}
		if len(got) != n {
			t.Errorf("scan of %s on b from a cursor on a = %d records, want %d", typ, len(got), n)
		}
		from := scanAll(t, s, store.ScanQuery{Type: typ, After: store.Key{Connection: "b", Type: "Zzz", ID: ""}, Limit: 2})
		m := 0
		for _, w := range want {
			if w.Connection > "b" {
				m++
			}
		}
		if len(from) != m {
			t.Errorf("scan of %s from past b's rows = %d records, want %d", typ, len(from), m)
		}
	}
}
