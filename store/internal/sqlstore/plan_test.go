package sqlstore

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"ehrgate/store"
)

func TestPlan(t *testing.T) {
	r := func(id, version, body string) store.Record {
		return store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: id, VersionID: version}, Raw: []byte(body)}
	}
	pat := func(rec store.Record) store.Record {
		rec.Patient = &store.PatientKeys{Names: []string{"x"}}
		return rec
	}
	k := func(id string) ResourceKey { return ResourceKey{"c", "Observation", id} }
	h := func(body string) []byte { return store.ContentHash([]byte(body)) }
	dis := func(version, body string) string { return store.DisambiguatedVersion(version, h(body)) }
	const N, U, X = store.New, store.Updated, store.Unchanged
	tests := []struct {
		name     string
		recs     []store.Record
		current  map[ResourceKey]Current
		versions map[VersionKey][]byte
		want     Plan
	}{{
		name: "new resources",
		recs: []store.Record{r("a", "1", "A"), r("b", "1", "B")},
		want: Plan{Changes: []store.Change{N, N}, Writes: []Write{
			{Index: 0, Version: "1", Insert: true, Current: true}, {Index: 1, Version: "1", Insert: true, Current: true}}},
	}, {
		name:    "unchanged",
		recs:    []store.Record{r("a", "1", "A")},
		current: map[ResourceKey]Current{k("a"): {"1", h("A")}},
		want:    Plan{Changes: []store.Change{X}},
	}, {
		name:     "new bytes under a stored versionId",
		recs:     []store.Record{r("a", "1", "B")},
		current:  map[ResourceKey]Current{k("a"): {"1", h("A")}},
		versions: map[VersionKey][]byte{{k("a"), "1"}: h("A")},
		want:     Plan{Changes: []store.Change{U}, Writes: []Write{{Index: 0, Version: dis("1", "B"), Insert: true, Current: true}}},
	}, {
		name:     "suffixed version stored already",
		recs:     []store.Record{r("a", "1", "B")},
		current:  map[ResourceKey]Current{k("a"): {"2", h("C")}},
		versions: map[VersionKey][]byte{{k("a"), "1"}: h("A"), {k("a"), dis("1", "B")}: h("B")},
		want:     Plan{Changes: []store.Change{U}, Writes: []Write{{Index: 0, Version: dis("1", "B"), Current: true}}},
	}, {
		name:     "back after a tombstone with the same bytes",
		recs:     []store.Record{r("a", "1", "A")},
		versions: map[VersionKey][]byte{{k("a"), "1"}: h("A")},
		want:     Plan{Changes: []store.Change{N}, Writes: []Write{{Index: 0, Version: "1", Current: true}}},
	}, {
		name: "one versionId, two bodies, in one batch",
		recs: []store.Record{r("a", "1", "A"), r("a", "1", "B"), r("a", "1", "B")},
		want: Plan{Changes: []store.Change{N, U, X}, Writes: []Write{
			{Index: 0, Version: "1", Insert: true}, {Index: 1, Version: dis("1", "B"), Insert: true, Current: true}}},
	}, {
		name: "back to an earlier version in one batch",
		recs: []store.Record{r("a", "1", "A"), r("a", "2", "B"), r("a", "1", "A")},
		want: Plan{Changes: []store.Change{N, U, U}, Writes: []Write{
			{Index: 0, Version: "1", Insert: true}, {Index: 1, Version: "2", Insert: true}, {Index: 2, Version: "1", Current: true}}},
	}, {
		name: "patient keys from the last changed record that has them",
		recs: []store.Record{pat(r("a", "1", "A")), pat(r("a", "2", "B")), r("a", "3", "C"), pat(r("a", "3", "C"))},
		want: Plan{Changes: []store.Change{N, U, U, X}, Writes: []Write{
			{Index: 0, Version: "1", Insert: true}, {Index: 1, Version: "2", Insert: true, Patient: true},
			{Index: 2, Version: "3", Insert: true, Current: true}}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBatch(tc.recs)
			changing := b.Changing(tc.current)
			for vk := range tc.versions {
				found := false
				for _, r := range b.VersionsRead(changing) {
					found = found || r == vk
				}
				if !found {
					t.Fatalf("VersionsRead(%v) lacks %v, which the plan reads", changing, vk)
				}
			}
			got := b.Plan(tc.current, tc.versions)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangingIsSortedAndSkipsUnchanged(t *testing.T) {
	recs := []store.Record{
		{Key: store.Key{Connection: "c", Type: "T", ID: "z"}, Raw: []byte("1")},
		{Key: store.Key{Connection: "c", Type: "T", ID: "same"}, Raw: []byte("2")},
		{Key: store.Key{Connection: "b", Type: "T", ID: "y"}, Raw: []byte("3")},
		{Key: store.Key{Connection: "c", Type: "T", ID: "same"}, Raw: []byte("2")},
	}
	b := NewBatch(recs)
	got := b.Changing(map[ResourceKey]Current{{"c", "T", "same"}: {"x", store.ContentHash([]byte("2"))}})
	want := []ResourceKey{{"b", "T", "y"}, {"c", "T", "z"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Changing (-want +got):\n%s", diff)
	}
}
