package identity

import (
	"context"
	"fmt"
	"sort"
	"testing"
)

func TestDebugMissed(t *testing.T) {
	pop := Generate(GenOptions{People: 20000, Seed: 1})
	m := New(pop.Records, Options{LinkWeight: 18})
	res, err := m.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pairs, _ := m.candidates()
	cand := map[uint64]bool{}
	for _, p := range pairs {
		cand[p] = true
	}
	byPerson := map[int32][]int32{}
	for i, p := range pop.Person {
		byPerson[p] = append(byPerson[p], int32(i))
	}
	reasons := map[string]int{}
	pats := map[string]int{}
	for _, rs := range byPerson {
		for x := 0; x < len(rs); x++ {
			for y := x + 1; y < len(rs); y++ {
				a, b := rs[x], rs[y]
				if res.Cluster[a] == res.Cluster[b] {
					continue
				}
				if !cand[uint64(a)<<32|uint64(b)] {
					reasons["not candidate"]++
					continue
				}
				c := compare(&m.feats[a], &m.feats[b])
				w := m.model.PriorWeight() + m.weight(a, b, c.pat)
				if g := guard(c); g != "" {
					reasons[g]++
					continue
				}
				if w < 18 {
					reasons["low weight"]++
					s := ""
					for f := Field(0); f < numFields; f++ {
						s += fmt.Sprintf("%s=%d ", f, c.pat.level(f))
					}
					pats[s]++
					continue
				}
				reasons["cluster refused"]++
			}
		}
	}
	fmt.Println(reasons)
	type kv struct {
		k string
		v int
	}
	var kvs []kv
	for k, v := range pats {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v })
	for i, x := range kvs {
		if i > 25 {
			break
		}
		fmt.Println(x.v, x.k)
	}
	for _, f := range m.Model().Fields {
		for _, l := range f.Levels {
			fmt.Printf("%s %s m=%.4f u=%.6f w=%.1f\n", f.Field, l.Level, l.M, l.U, l.Weight)
		}
	}
}
