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
