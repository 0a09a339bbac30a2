package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestBulkConformance(t *testing.T) {
	storetest.RunBulkTests(t, func(t *testing.T) storetest.BulkStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}

// BenchmarkBulkPut times the bulk upsert paths alone: 20 batches of 2,000
// new ~1 KB records into a fresh store, then the same batches again (all
// unchanged).
func BenchmarkBulkPut(b *testing.B) {
	paths := []struct {
		name string
		fn   func(context.Context, *sql.Tx, []store.Record) ([]store.Change, error)
	}{{"putFast", putFast}, {"putUnique", putUnique}}
	const batches, size = 20, 2000
	data := make([][]store.Record, batches)
	pad := strings.Repeat("x", 900)
	for i := range data {
		data[i] = make([]store.Record, size)
		for j := range data[i] {
			id := fmt.Sprintf("o%d-%d", i, j)
			data[i][j] = store.Record{Key: store.Key{Connection: "c", Type: "Observation", ID: id, VersionID: "1"}, PatientID: "p" + id[:3],
				Raw: []byte(`{"resourceType":"Observation","id":"` + id + `","x":"` + pad + `"}`), FetchedAt: time.Now()}
		}
	}
	for _, p := range paths {
		for _, phase := range []string{"fresh", "reimport"} {
			b.Run(p.name+"/"+phase, func(b *testing.B) {
				for n := 0; n < b.N; n++ {
					b.StopTimer()
					s, err := OpenDir(context.Background(), b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					run := func() {
						for _, recs := range data {
							tx, err := s.w.BeginTx(context.Background(), nil)
							if err != nil {
								b.Fatal(err)
							}
							if _, err := p.fn(context.Background(), tx, recs); err != nil {
								b.Fatal(err)
							}
							if err := tx.Commit(); err != nil {
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
