package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
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

// TestWriteBatchMatchesPut runs random batches (new, unchanged and updated
// resources, reused versionIds with new bytes, tombstones, now and then a
// resource twice in one batch) through WriteBatch on one store and
// PutResources on another, and compares every change and the stored result.
func TestWriteBatchMatchesPut(t *testing.T) {
	ctx := context.Background()
	open := func() *Store {
		s, err := OpenDir(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	bulk, ref := open(), open()
	rng := rand.New(rand.NewPCG(1, 2))
	unique := 0
	for round := range 60 {
		n := 1 + rng.IntN(450)
		recs := make([]store.Record, 0, n)
		seen := map[string]bool{}
		for len(recs) < n {
			typ := []string{"Observation", "Condition", "Patient"}[rng.IntN(3)]
			id := fmt.Sprint("r", rng.IntN(600))
			if seen[typ+id] && (round%5 != 0 || rng.IntN(20) != 0) { // a resource twice in every fifth batch
				continue
			}
			seen[typ+id] = true
			version := []string{"", "1", "2"}[rng.IntN(3)]
			r := store.Record{Key: store.Key{Connection: "c", Type: typ, ID: id, VersionID: version}, PatientID: "p",
				Raw: fmt.Appendf(nil, `{"id":%q,"b":%d}`, id, rng.IntN(3)), FetchedAt: time.Unix(int64(round), 0)}
			if typ == "Patient" {
				r.Patient = &store.PatientKeys{Names: []string{fmt.Sprint("name", rng.IntN(5))}}
			}
			recs = append(recs, r)
		}
		if uniqueKeys(recs) {
			unique++
		}
		got, err := bulk.WriteBatch(ctx, store.Batch{Records: recs})
		if err != nil {
			t.Fatalf("round %d: WriteBatch: %v", round, err)
		}
		want, err := ref.PutResources(ctx, recs)
		if err != nil {
			t.Fatalf("round %d: PutResources: %v", round, err)
		}
		for i := range want {
			if got.Changes[i] != want[i] {
				t.Fatalf("round %d: change %d (%s/%s) = %v, PutResources says %v", round, i, recs[i].Type, recs[i].ID,
					got.Changes[i], want[i])
			}
		}
		var dels []store.Tombstone
		for range rng.IntN(20) {
			dels = append(dels, store.Tombstone{Connection: "c", Type: "Observation", ID: fmt.Sprint("r", rng.IntN(600)),
				DeletedAt: time.Unix(1, 0)})
		}
		for _, s := range []*Store{bulk, ref} {
			if _, err := s.WriteBatch(ctx, store.Batch{Deletes: dels}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dump := func(s *Store) []string {
		var out []string
		if err := s.ScanCurrent(ctx, func(r store.Record) error {
			out = append(out, r.Type+"/"+r.ID+"/"+r.VersionID+"/"+string(r.Raw))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT type, id, version_id, hex(hash) FROM resource_versions ORDER BY 1, 2, 3`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a, b, c, d string
			if err := rows.Scan(&a, &b, &c, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, "version "+a+"/"+b+"/"+c+"/"+d)
		}
		rows, err = s.r.QueryContext(ctx, `SELECT id, search FROM patients ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var a, b string
			if err := rows.Scan(&a, &b); err != nil {
				t.Fatal(err)
			}
			out = append(out, "patient "+a+"/"+b)
		}
		return out
	}
	g, w := dump(bulk), dump(ref)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		t.Fatalf("stores differ: WriteBatch has %d rows, PutResources %d", len(g), len(w))
	}
	t.Logf("%d rows compared; %d of 60 batches without a repeated resource", len(g), unique)
}
