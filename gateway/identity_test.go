package gateway_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim"
	"ehrgate/gateway"
	"ehrgate/identity"
	"ehrgate/jobs"
	"ehrgate/secrets"
	"ehrgate/store"
)

// TestStoredPatientsAreMatched runs the gateway over three simulated EHRs
// holding an overlapping synthetic population (identity.Generate: noisy
// demographics, a different MRN per source). Two sources' Patients are
// synced before it serves; the match job it runs at start gives every
// record a person (a full run: there was none); then the third EHR's Patients are stored by a sync job, and the
// match job kicked by it adds them incrementally (no full run): they join
// the persons of their other records, never a wrong one, except a record a
// person unlinked beforehand from its own person's record. Last, one of
// those records is changed at its EHR into a stranger and synced again:
// the match job takes it out of its person.
func TestStoredPatientsAreMatched(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sources := []string{"hospital-a", "clinic-b", "hospital-c"}
	pop := identity.Generate(identity.GenOptions{People: 400, Seed: 3, Sources: sources})
	sims := map[string]*ehrsim.Server{}
	var conns []config.Connection
	for _, src := range sources {
		sim := ehrsim.New(ehrsim.Options{})
		srv := httptest.NewServer(sim.Handler())
		t.Cleanup(srv.Close)
		sims[src] = sim
		conns = append(conns, config.Connection{Name: src, BaseURL: srv.URL + "/fhir", Vendor: "generic", Types: []string{"Patient"}})
	}
	load := func(src string) int {
		n := 0
		for _, r := range pop.Records {
			if r.Key.Source != src {
				continue
			}
			raw, err := identity.PatientJSON(r, identity.MRNSystem(src))
			if err != nil {
				t.Fatal(err)
			}
			if err := sims[src].Load(raw); err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	load("hospital-a")
	load("clinic-b")

	st, err := store.Open(ctx, "sqlite:"+t.TempDir(), store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := secrets.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{Connections: conns}, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	svc := &identity.Service{Docs: st}
	truth := map[identity.Key]int32{}
	for i, r := range pop.Records {
		truth[r.Key] = pop.Person[i]
	}
	// a person says: this hospital-c record is not that hospital-a record,
	// though they are one person (it must stay out of that person)
	var unC, unA identity.Key
	for i, r := range pop.Records {
		if r.Key.Source != "hospital-c" || unC.ID != "" {
			continue
		}
		for j, o := range pop.Records {
			if o.Key.Source == "hospital-a" && pop.Person[j] == pop.Person[i] {
				unC, unA = r.Key, o.Key
			}
		}
	}
	if err := svc.SetOverride(ctx, identity.Override{A: unC, B: unA, Action: identity.ActionUnlink, By: "tester", Reason: "test"}); err != nil {
		t.Fatal(err)
	}

	// two sources synced before the gateway serves (as `ehrgate sync`
	// would): the match job the gateway runs at start matches them
	for _, c := range conns[:2] {
		if _, err := g.Sync(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx, gateway.RunOptions{HTTPAddr: "127.0.0.1:0"}) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// waitHeld waits until every stored record of the sources is held by a
	// person, and returns the persons by record.
	waitHeld := func(srcs ...string) map[identity.Key]string {
		t.Helper()
		want := 0
		for _, r := range pop.Records {
			for _, s := range srcs {
				if r.Key.Source == s {
					want++
				}
			}
		}
		for {
			held := map[identity.Key]string{}
			if persons, err := svc.Persons(ctx); err == nil {
				for _, p := range persons {
					for _, k := range p.Members {
						held[k] = p.ID
					}
				}
			}
			n := 0
			for k := range held {
				for _, s := range srcs {
					if k.Source == s {
						n++
					}
				}
			}
			if n == want {
				return held
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d of the %d records of %v are held by a person", n, want, srcs)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	first := waitHeld("hospital-a", "clinic-b")
	sum, err := svc.Status(ctx)
	if err != nil || sum.Records != len(first) {
		t.Fatalf("status after the first match = %+v, %v; want a full run over the %d records", sum.Records, err, len(first))
	}

	nc := load("hospital-c")
	q, err := g.Jobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, gateway.SyncJob{Connection: "hospital-c"}); err != nil {
		t.Fatal(err)
	}
	held := waitHeld("hospital-a", "clinic-b", "hospital-c")
	for k, id := range first {
		if held[k] != id {
			t.Errorf("record %s moved from %s to %s when hospital-c was matched", k, id, held[k])
		}
	}
	after, err := svc.Status(ctx)
	if err != nil || after.Records != sum.Records || after.LastAdd == nil || after.LastAdd.New != nc {
		t.Fatalf("status after hospital-c = records %d, last add %+v, %v; want the first run's %d records and an add of %d",
			after.Records, after.LastAdd, err, sum.Records, nc)
	}
	// hospital-c's records against the others: pairs of one person that
	// share a person id (recall) and pairs sharing one that are one person
	// (precision)
	var truePairs, found, linked, wrong int
	for c, pc := range held {
		if c.Source != "hospital-c" {
			continue
		}
		for o, po := range held {
			if o.Source == "hospital-c" {
				continue
			}
			same := truth[c] == truth[o]
			if same && (c != unC || o != unA) {
				truePairs++
				if pc == po {
					found++
				}
			}
			if pc == po {
				linked++
				if !same {
					wrong++
				}
			}
		}
	}
	t.Logf("hospital-c: %d records; %d of %d true pairs with the other sources share a person id; %d pairs linked, %d wrongly",
		nc, found, truePairs, linked, wrong)
	if truePairs == 0 || float64(found) < 0.9*float64(truePairs) || wrong > 0 {
		t.Errorf("hospital-c matched %d of %d true pairs, %d wrong pairs; want at least 90%% and none wrong", found, truePairs, wrong)
	}
	if held[unC] == held[unA] {
		t.Errorf("the unlinked records %s and %s share person %s", unC, unA, held[unC])
	}

	// a hospital-c record of a person with several records is stored again
	// with a stranger's demographics: the next sync's match job takes it
	// out of that person
	size := map[string]int{}
	for _, id := range held {
		size[id]++
	}
	var moved identity.Record
	for _, r := range pop.Records {
		if r.Key.Source == "hospital-c" && r.Key != unC && size[held[r.Key]] >= 2 {
			moved = r
			break
		}
	}
	movedFrom := held[moved.Key]
	moved.Given, moved.Middle, moved.Family, moved.Previous, moved.BirthDate = "Zebulon", "", "Quibbleworth", nil, "1931-02-03"
	moved.Address, moved.Phone, moved.Email, moved.Identifiers = "", "", "", moved.Identifiers[:1]
	raw, err := identity.PatientJSON(moved, identity.MRNSystem("hospital-c"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sims["hospital-c"].Load(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, gateway.SyncJob{Connection: "hospital-c"}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := svc.Status(ctx)
		if err == nil && st.LastAdd != nil && st.LastAdd.Changed > 0 {
			if st.LastAdd.Changed != 1 || st.LastAdd.Moved != 1 {
				t.Errorf("after the changed record: last add %+v; want 1 changed, 1 moved", *st.LastAdd)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the changed record was not matched again: status %+v, %v", st.LastAdd, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	persons, err := svc.Persons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range persons {
		if p.ID == movedFrom && slices.Contains(p.Members, moved.Key) {
			t.Errorf("record %s, stored again with another person's demographics, is still in %s", moved.Key, movedFrom)
		}
	}

	list, err := q.List(ctx, jobs.Filter{Kinds: []string{"identity_match"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 2 {
		t.Errorf("%d identity_match jobs; want one after each store of patients", len(list))
	}
}

// TestRequestMatchEnqueuesOneJob: a command that stored Patients outside a
// serving gateway asks for a match: nothing on a store never served (no
// job queue yet), one waiting identity_match job however often it asks on
// a store with a queue.
func TestRequestMatchEnqueuesOneJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, _, _ := newClinicGateway(t, ctx, "http://127.0.0.1:1")
	if err := g.RequestMatch(ctx); err != nil {
		t.Fatalf("RequestMatch on a store without a job queue = %v, want nil", err)
	}
	q, err := g.Jobs(ctx) // creates the queue's tables, as serve does
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := g.RequestMatch(ctx); err != nil {
			t.Fatal(err)
		}
	}

	list, err := q.List(ctx, jobs.Filter{Kinds: []string{"identity_match"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != jobs.Available {
		t.Fatalf("identity_match jobs after three requests: %d (%v); want one waiting", len(list), list)
	}
}
