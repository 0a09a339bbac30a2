package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
)

// Person is a cluster of records with its persistent id.
type Person struct {
	ID      string `json:"id"`
	Members []Key  `json:"members"` // oldest first
}

// PersonID derives a new person id from a record key: "psn-" and the first
// 16 hex digits of the SHA-256 of "source/id". The id reveals nothing about
// the person.
func PersonID(k Key) string {
	sum := sha256.Sum256([]byte(k.String()))
	return "psn-" + hex.EncodeToString(sum[:8])
}

// AssignIDs gives each cluster (its members oldest first) a person id that
// is stable across runs:
//
//   - a cluster keeps the previous id that most of its members had (prev
//     maps record keys to the person ids of the last run); each previous
//     id goes to one cluster only: the one sharing most members with it,
//     ties to the cluster listed first;
//   - any other cluster gets PersonID of its oldest member whose derived
//     id is still free (so a re-run from nothing gives the same ids as long
//     as the oldest members do not change), else that id with a counter.
//
// So ids survive re-runs, new records joining a person, and a split (the
// larger part keeps the id); when two persons merge, the merged cluster
// keeps the id of the one contributing more records.
func AssignIDs(prev map[Key]string, clusters [][]Key) []Person {
	type cand struct {
		cluster int
		id      string
		overlap int
	}
	var cands []cand
	for c, members := range clusters {
		n := map[string]int{}
		for _, k := range members {
			if id, ok := prev[k]; ok {
				n[id]++
			}
		}
		for id, o := range n {
			cands = append(cands, cand{c, id, o})
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.overlap != b.overlap {
			return a.overlap > b.overlap
		}
		if a.cluster != b.cluster {
			return a.cluster < b.cluster
		}
		return a.id < b.id
	})
	out := make([]Person, len(clusters))
	used := map[string]bool{}
	for _, c := range cands {
		if out[c.cluster].ID != "" || used[c.id] {
			continue
		}
		out[c.cluster].ID = c.id
		used[c.id] = true
	}
	// ids of the previous run not carried forward stay reserved: a new
	// cluster never takes an old person's id.
	for _, id := range prev {
		used[id] = true
	}
	for c, members := range clusters {
		out[c].Members = members
		if out[c].ID != "" {
			continue
		}
		for _, k := range members {
			if id := PersonID(k); !used[id] {
				out[c].ID = id
				break
			}
		}
		for n := 2; out[c].ID == ""; n++ {
			if id := fmt.Sprintf("%s-%d", PersonID(members[0]), n); !used[id] {
				out[c].ID = id
			}
		}
		used[out[c].ID] = true
	}
	return out
}
