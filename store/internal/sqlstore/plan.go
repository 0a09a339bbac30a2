package sqlstore

import (
	"bytes"
	"cmp"
	"slices"

	"ehrgate/store"
)

// Planning a batch of upserts.
//
// A set-based bulk write (one statement for many records) must give the
// results of PutResources applied to the records one after the other,
// including when a resource occurs twice in the batch. Plan computes those
// results in memory from the stored state the batch can see (the current
// version of each of its resources, and the hash of each version row it
// may touch); the backend then writes what the plan says in a few
// statements. The state must not change between the lookup and the write
// for the resources that change: the backend locks them (Locks).

// ResourceKey names a resource.
type ResourceKey struct{ Connection, Type, ID string }

// VersionKey names a stored version of a resource.
type VersionKey struct {
	ResourceKey
	Version string
}

// Current is a resource's current version as stored.
type Current struct {
	Version string
	Hash    []byte
}

// Batch is a batch of records being planned.
type Batch struct {
	Recs     []store.Record
	Hashes   [][]byte      // RawHash of each record
	Versions []string      // StoredVersion of each record
	Keys     []ResourceKey // distinct resources, in order of first occurrence
	keyOf    []int         // index in Keys of each record
}

// NewBatch prepares recs (each naming its resource) for planning.
func NewBatch(recs []store.Record) *Batch {
	b := &Batch{Recs: recs, Hashes: make([][]byte, len(recs)), Versions: make([]string, len(recs)), keyOf: make([]int, len(recs))}
	index := make(map[ResourceKey]int, len(recs))
	for i := range recs {
		r := &recs[i]
		b.Hashes[i] = r.RawHash()
		b.Versions[i] = store.StoredVersion(r.VersionID, b.Hashes[i])
		k := ResourceKey{r.Connection, r.Type, r.ID}
		n, ok := index[k]
		if !ok {
			n = len(b.Keys)
			index[k] = n
			b.Keys = append(b.Keys, k)
		}
		b.keyOf[i] = n
	}
	return b
}

// Key returns the resource of record i.
func (b *Batch) Key(i int) ResourceKey { return b.Keys[b.keyOf[i]] }

// Changing returns the resources that some record of the batch may change
// given their current versions (absent: not stored): those with a record
// whose bytes are not the current ones. Sorted, so that locking them in
// this order cannot deadlock with another batch doing the same.
func (b *Batch) Changing(current map[ResourceKey]Current) []ResourceKey {
	seen := make([]bool, len(b.Keys))
	var out []ResourceKey
	for i := range b.Recs {
		n := b.keyOf[i]
		if seen[n] {
			continue
		}
		if c, ok := current[b.Keys[n]]; !ok || !bytes.Equal(c.Hash, b.Hashes[i]) {
			seen[n] = true
			out = append(out, b.Keys[n])
		}
	}
	SortKeys(out)
	return out
}

// SortKeys sorts keys by connection, type and id.
func SortKeys(keys []ResourceKey) {
	slices.SortFunc(keys, func(a, b ResourceKey) int {
		return cmp.Or(cmp.Compare(a.Connection, b.Connection), cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
	})
}

// VersionsRead returns the version rows a plan for the resources changing
// reads: each record's version and its disambiguated form.
func (b *Batch) VersionsRead(changing []ResourceKey) []VersionKey {
	in := make(map[ResourceKey]bool, len(changing))
	for _, k := range changing {
		in[k] = true
	}
	var out []VersionKey
	seen := map[VersionKey]bool{}
	for i := range b.Recs {
		k := b.Key(i)
		if !in[k] {
			continue
		}
		for _, v := range []string{b.Versions[i], store.DisambiguatedVersion(b.Versions[i], b.Hashes[i])} {
			vk := VersionKey{k, v}
			if !seen[vk] {
				seen[vk] = true
				out = append(out, vk)
			}
		}
	}
	return out
}

// Write is one record's part in a plan. At most one Write of a plan
// inserts a given version row, and at most one per resource sets its
// current version or its patient search keys.
type Write struct {
	Index   int    // the record
	Version string // the version it is stored under
	Insert  bool   // insert its version row (there is none yet)
	Current bool   // it becomes its resource's current version
	Patient bool   // its Patient keys become the resource's search keys
}

// Plan is what writing a batch does.
type Plan struct {
	Changes []store.Change // one per record
	Writes  []Write        // in record order; records that change nothing have none
}

// Plan computes the outcome of PutResources on the batch's records, in
// order, given the current versions of the batch's resources (absent: not
// stored) and the hash of the stored version rows of the resources
// changing, at least those in VersionsRead (absent: no such row). It does
// not modify the maps.
func (b *Batch) Plan(current map[ResourceKey]Current, versions map[VersionKey][]byte) Plan {
	p := Plan{Changes: make([]store.Change, len(b.Recs))}
	cur := make(map[int]Current)         // by key index, once changed in the batch
	added := make(map[VersionKey][]byte) // version rows the batch inserts
	lastWrite := make(map[int]int)       // key index -> its last Write
	lastPatient := make(map[int]int)     // key index -> its last Write with Patient keys
	for i := range b.Recs {
		n, hash := b.keyOf[i], b.Hashes[i]
		c, ok := cur[n]
		if !ok {
			c, ok = current[b.Keys[n]]
		}
		switch {
		case !ok:
			p.Changes[i] = store.New
		case bytes.Equal(c.Hash, hash):
			p.Changes[i] = store.Unchanged
			continue
		default:
			p.Changes[i] = store.Updated
		}
		stored := func(v string) ([]byte, bool) {
			vk := VersionKey{b.Keys[n], v}
			if h, ok := added[vk]; ok {
				return h, true
			}
			h, ok := versions[vk]
			return h, ok
		}
		version := b.Versions[i]
		old, exists := stored(version)
		if exists && !bytes.Equal(old, hash) {
			version = store.DisambiguatedVersion(version, hash)
			_, exists = stored(version)
		}
		if !exists {
			added[VersionKey{b.Keys[n], version}] = hash
		}
		cur[n] = Current{Version: version, Hash: hash}
		lastWrite[n] = len(p.Writes)
		if b.Recs[i].Patient != nil {
			lastPatient[n] = len(p.Writes)
		}
		p.Writes = append(p.Writes, Write{Index: i, Version: version, Insert: !exists})
	}
	for _, w := range lastWrite {
		p.Writes[w].Current = true
	}
	for _, w := range lastPatient {
		p.Writes[w].Patient = true
	}
	kept := p.Writes[:0]
	for _, w := range p.Writes {
		if w.Insert || w.Current || w.Patient {
			kept = append(kept, w)
		}
	}
	p.Writes = kept
	return p
}
