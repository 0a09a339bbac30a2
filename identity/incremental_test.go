package identity

import (
	"context"
	"errors"
	"testing"
)

// TestAddMatchesNewRecordsIncrementally: records stored after a run join
// their persons without a full run: old ids and members stay, the new
// records land with their true persons about as well as a full run puts
// them (precision kept), an unlink between a new record and its person is
// respected, and a second Add has nothing to do.
func TestAddMatchesNewRecordsIncrementally(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	if _, err := s.Add(ctx, nil, Options{}); !errors.Is(err, ErrNoRun) {
		t.Fatalf("Add before any run = %v, want ErrNoRun", err)
	}
	pop := Generate(GenOptions{People: 3000, Seed: 7})
	// every fifth record arrives after the run (a person's records are
	// generated together: a cut would leave few new records of old persons)
	isNew := func(i int) bool { return i%5 == 0 }
	var old []Record
	for i, r := range pop.Records {
		if !isNew(i) {
			old = append(old, r)
		}
	}
	first, _, err := s.Run(ctx, old, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := personOf(first)
	// a person unlinks a new record from the old record of its own person
	var unA, unB Key
	oldOf := map[int32]int{}
	for i := range pop.Records {
		if !isNew(i) {
			oldOf[pop.Person[i]] = i
		}
	}
	for i := range pop.Records {
		if j, ok := oldOf[pop.Person[i]]; ok && isNew(i) {
			unA, unB = pop.Records[i].Key, pop.Records[j].Key
			break
		}
	}
	if err := s.SetOverride(ctx, Override{A: unA, B: unB, Action: ActionUnlink, By: "tester", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Add(ctx, pop.Records, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.New != len(pop.Records)-len(old) || sum.Joined+sum.Created != sum.New || sum.Joined == 0 {
		t.Fatalf("Add = %+v; want %d new records, some joined", sum, len(pop.Records)-len(old))
	}
	persons, err := s.Persons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := personOf(persons)
	for k, id := range before {
		if after[k] != id {
			t.Fatalf("Add moved old record %s from %s to %s", k, id, after[k])
		}
	}
	if after[unA] == after[unB] {
		t.Errorf("the unlinked new record %s joined %s's person", unA, unB)
	}
	label := map[string]int32{}
	cluster := make([]int32, len(pop.Records))
	for i, r := range pop.Records {
		id, ok := after[r.Key]
		if !ok {
			t.Fatalf("record %s is in no person after Add", r.Key)
		}
		if _, ok := label[id]; !ok {
			label[id] = int32(len(label))
		}
		cluster[i] = label[id]
	}
	inc := Evaluate(cluster, pop.Person, nil)
	full, err := New(pop.Records, Options{}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := Evaluate(full.Cluster, pop.Person, nil)
	t.Logf("incremental: precision %.5f recall %.4f; full run: %.5f %.4f", inc.Pairwise.Precision, inc.Pairwise.Recall, all.Pairwise.Precision, all.Pairwise.Recall)
	if inc.Pairwise.Precision < 0.999 || inc.Pairwise.Recall < all.Pairwise.Recall-0.02 {
		t.Errorf("incremental precision %.5f recall %.4f; want precision >= 0.999 and recall within 0.02 of the full run's %.4f",
			inc.Pairwise.Precision, inc.Pairwise.Recall, all.Pairwise.Recall)
	}
	again, err := s.Add(ctx, pop.Records, Options{})
	if err != nil || again.New != 0 {
		t.Errorf("a second Add = %+v, %v; want nothing new", again, err)
	}
}
