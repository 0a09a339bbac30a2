package parquet

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pq "github.com/parquet-go/parquet-go"

	"ehrgate/ingest"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

func TestFlatten(t *testing.T) {
	lu := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		rec      store.Record
		wantDate string
		check    func(t *testing.T, r Row)
	}{
		{"observation", store.Record{Key: store.Key{Type: "Observation", ID: "o"}, LastUpdated: lu,
			Normalized: []byte(`{"status":"final","category":["vital-signs"],"code":{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"},"effective":"2025-06-03T10:00:00Z","value":{"kind":"quantity","number":72,"unit":"/min"}}`)},
			"2025-06", func(t *testing.T, r Row) {
				if r.Code != "8867-4" || r.CodeSystem != "http://loinc.org" || r.ValueNumber == nil || *r.ValueNumber != 72 || r.Unit != "/min" ||
					r.Status != "final" || r.Category != "vital-signs" || r.Effective != "2025-06-03T10:00:00Z" {
					t.Errorf("row = %+v", r)
				}
			}},
		{"medication uses medication concept", store.Record{Key: store.Key{Type: "MedicationRequest"},
			Normalized: []byte(`{"medication":{"system":"rxnorm","code":"197361","text":"amlodipine"},"authoredOn":"2024"}`)},
			"2024-01", func(t *testing.T, r Row) {
				if r.Code != "197361" || r.Display != "amlodipine" {
					t.Errorf("row = %+v", r)
				}
			}},
		{"no clinical date uses lastUpdated", store.Record{Key: store.Key{Type: "Patient"}, LastUpdated: lu, Normalized: []byte(`{"name":"x"}`)},
			"2026-05", nil},
		{"nothing known", store.Record{Key: store.Key{Type: "Basic"}, Normalized: []byte(`not json`)}, "unknown", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, date := Flatten(tc.rec)
			if date != tc.wantDate {
				t.Errorf("Flatten date = %q, want %q", date, tc.wantDate)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// TestExportReadBack ingests a synthetic population, exports it and reads
// every Parquet file back.
func TestExportReadBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	counts, err := synth.New(synth.Options{Patients: 5, Seed: 2}).WriteNDJSON(filepath.Join(dir, "in"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	files, job, _ := ingest.LocalFiles([]string{filepath.Join(dir, "in")})
	in, _ := ingest.New(st, ingest.Options{Connection: "c", Job: job})
	if _, err := in.Run(ctx, files); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	sum, err := Export(ctx, st, Options{Out: out, RowsPerFile: 100, MaxOpen: 3})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	want := 0
	for _, c := range counts {
		want += c
	}
	if sum.Rows != want {
		t.Errorf("Rows = %d, want %d", sum.Rows, want)
	}
	perType := map[string]int{}
	seen := map[string]bool{}
	nfiles := 0
	err = filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(path, ".spill") {
			t.Errorf("spill file left behind: %s", path)
		}
		nfiles++
		rel, _ := filepath.Rel(out, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 || !strings.HasPrefix(parts[0], "type=") || !strings.HasPrefix(parts[1], "date=") || !strings.HasPrefix(parts[2], "part-") {
			t.Fatalf("file %s is not type=T/date=D/part-N.parquet", rel)
		}
		typ := strings.TrimPrefix(parts[0], "type=")
		date := strings.TrimPrefix(parts[1], "date=")
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		info, _ := f.Stat()
		rows, err := pq.Read[Row](f, info.Size())
		if err != nil {
			t.Fatalf("reading %s: %v", rel, err)
		}
		if len(rows) == 0 || len(rows) > 100 {
			t.Errorf("%s holds %d rows, want 1..100", rel, len(rows))
		}
		for _, r := range rows {
			if r.Type != typ || r.Connection != "c" || r.Normalized == "" || r.VersionID == "" {
				t.Fatalf("row %+v in %s", r, rel)
			}
			if _, d := Flatten(store.Record{Key: store.Key{Type: r.Type}, Normalized: []byte(r.Normalized), LastUpdated: time.UnixMilli(r.LastUpdated)}); d != date {
				t.Errorf("row %s/%s in date=%s, its date is %s", r.Type, r.ID, date, d)
			}
			if seen[r.Type+"/"+r.ID] {
				t.Errorf("row %s/%s written twice", r.Type, r.ID)
			}
			seen[r.Type+"/"+r.ID] = true
			perType[r.Type]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if nfiles != sum.Files {
		t.Errorf("found %d files, summary says %d", nfiles, sum.Files)
	}
	for typ, c := range counts {
		if perType[typ] != c {
			t.Errorf("%s rows = %d, want %d", typ, perType[typ], c)
		}
	}
}
