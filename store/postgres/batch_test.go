package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ehrgate/store"
	"ehrgate/store/internal/sqlstore"
)

// BenchmarkWriteBatch times bulk writes on PostgreSQL: 10 batches of 2,000
// new ~1 KB records into a fresh database, then the same batches again (all
// unchanged), through WriteBatch (COPY and merge) and through the
// per-record path (PutResources' in the same transaction).
func BenchmarkWriteBatch(b *testing.B) {
	const batches, size = 10, 2000
	data := make([][]store.Record, batches)
	pad := strings.Repeat("x", 900)
	for i := range data {
		data[i] = make([]store.Record, size)
		for j := range data[i] {
			id := fmt.Sprintf("o%d-%d", i, j)
			data[i][j] = store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: id, VersionID: "1"},
				PatientID: "p" + id[:3], Raw: []byte(`{"resourceType":"Observation","id":"` + id + `","x":"` + pad + `"}`),
				Normalized: []byte(`{"code":"1234-5"}`), FetchedAt: time.Now()}
		}
	}
	paths := []struct {
		name  string
		write func(*Store, context.Context, store.Batch) (store.BatchResult, error)
	}{
		{"copy", (*Store).WriteBatch},
		{"per-record", func(s *Store, ctx context.Context, bt store.Batch) (res store.BatchResult, err error) {
			err = s.write(ctx, func(ctx context.Context, tx sqlstore.Querier) error {
				res, err = s.WriteBatchTx(ctx, tx, bt, s.PutResourcesTx)
				return err
			})
			return res, err
		}},
	}
	for _, p := range paths {
		for _, phase := range []string{"fresh", "reimport"} {
			b.Run(p.name+"/"+phase, func(b *testing.B) {
				ctx := context.Background()
				for n := 0; n < b.N; n++ {
					b.StopTimer()
					s := openTest(b)
					run := func() {
						for _, recs := range data {
							if _, err := p.write(s, ctx, store.Batch{Records: recs}); err != nil {
								b.Fatal(err)
							}
						}
					}
					if phase == "reimport" {
						run()
					}
					b.StartTimer()
					run()
					b.StopTimer()
					s.Close()
				}
				b.ReportMetric(float64(b.N*batches*size)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// TestClaimFirstSameAsLookUpFirst: the two orders of putBatch's first
// steps (claim then look up, for initial imports; look up then claim)
// store the same and report the same changes, batch after batch: new
// resources, a resource twice in a batch, an unchanged re-import, new
// versions, new bytes under a stored versionId, and new resources mixed
// with stored ones.
func TestClaimFirstSameAsLookUpFirst(t *testing.T) {
	ctx := context.Background()
	r := func(id, version, body string) store.Record {
		return store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: id, VersionID: version},
			PatientID: "p1", Raw: []byte(`{"resourceType":"Observation","id":"` + id + `","b":"` + body + `"}`),
			FetchedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	var batches [][]store.Record
	var first []store.Record
	for i := 0; i < 20; i++ {
		first = append(first, r(fmt.Sprint("o", i), "1", "a"))
	}
	first = append(first, r("o0", "2", "b")) // twice in one batch
	batches = append(batches, first, first)  // then re-imported unchanged
	var mixed []store.Record
	for i := 0; i < 20; i += 2 {
		mixed = append(mixed, r(fmt.Sprint("o", i), "3", "c"), r(fmt.Sprint("o", i+1), "1", "other bytes"), r(fmt.Sprint("n", i), "1", "new"))
	}
	batches = append(batches, mixed, mixed)

	var results [2][]string
	var states [2][]string
	for mode, claimFirst := range []bool{false, true} {
		s := openTest(t)
		for i, recs := range batches {
			s.newKeys.Store(claimFirst)
			res, err := s.WriteBatch(ctx, store.Batch{Records: recs})
			if err != nil {
				t.Fatalf("claim first %v, batch %d: %v", claimFirst, i, err)
			}
			results[mode] = append(results[mode], fmt.Sprintf("%d: %+v", i, res))
		}
		for _, id := range []string{"o0", "o1", "o2", "o3", "n0", "n18"} {
			rec, err := s.Get(ctx, "c", "Observation", id)
			if err != nil {
				t.Fatalf("Get(%s): %v", id, err)
			}
			states[mode] = append(states[mode], id+" "+rec.VersionID+" "+string(rec.Raw))
		}
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		states[mode] = append(states[mode], fmt.Sprintf("%+v", st.Resources))
	}
	if fmt.Sprint(results[0]) != fmt.Sprint(results[1]) {
		t.Errorf("changes differ:\nlook up first: %v\nclaim first:   %v", results[0], results[1])
	}
	if fmt.Sprint(states[0]) != fmt.Sprint(states[1]) {
		t.Errorf("stored state differs:\nlook up first: %v\nclaim first:   %v", states[0], states[1])
	}
	if !strings.Contains(states[0][1], "other bytes") {
		t.Errorf("o1 = %s, want the new bytes current", states[0][1])
	}
}
