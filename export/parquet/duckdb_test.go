//go:build cgo && duckdb

package parquet

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver (cgo)

	"ehrgate/ingest"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

// TestDuckDBReadsExport exports a synthetic population and reads it back
// with DuckDB (the embedded engine, through github.com/duckdb/duckdb-go),
// as the README's query does: per type (one hive partition tree each) the
// row count, the column types, and a few rows' typed values against the
// rows Flatten made from the store.
func TestDuckDBReadsExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	counts, err := synth.New(synth.Options{Patients: 20, Seed: 2}).WriteNDJSON(filepath.Join(dir, "in"))
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
	want := map[string]Row{} // type/id -> the row the export should hold
	if err := st.ScanCurrent(ctx, func(rec store.Record) error {
		r, _ := Flatten(rec)
		want[r.Type+"/"+r.ID] = r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := Export(ctx, st, Options{Out: out, RowsPerFile: 200}); err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning = true)", out)

	total := 0
	for _, c := range counts {
		total += c
	}
	var n, types int
	if err := db.QueryRowContext(ctx, "SELECT count(*), count(DISTINCT type) FROM "+all).Scan(&n, &types); err != nil {
		t.Fatalf("duckdb: %v", err)
	}
	if n != total || types != len(counts) {
		t.Errorf("duckdb reads %d rows over %d types, want %d over %d", n, types, total, len(counts))
	}

	for typ, wantN := range counts {
		t.Run(typ, func(t *testing.T) {
			src := fmt.Sprintf("read_parquet('%s/type=%s/**/*.parquet', hive_partitioning = true)", out, typ)
			var got int
			var tLast, tFetched, tValue string
			if err := db.QueryRowContext(ctx, "SELECT count(*), any_value(typeof(last_updated)), any_value(typeof(fetched_at)), any_value(typeof(value_number)) FROM "+src).
				Scan(&got, &tLast, &tFetched, &tValue); err != nil {
				t.Fatalf("duckdb: %v", err)
			}
			if got != wantN {
				t.Errorf("duckdb count(%s) = %d, want %d", typ, got, wantN)
			}
			// The timestamps are written adjusted to UTC (isAdjustedToUTC),
			// which DuckDB reads as TIMESTAMPTZ.
			const ts = "TIMESTAMP WITH TIME ZONE"
			if tLast != ts || tFetched != ts || tValue != "DOUBLE" {
				t.Errorf("duckdb column types (last_updated, fetched_at, value_number) = %s, %s, %s; want %s, %s, DOUBLE", tLast, tFetched, tValue, ts, ts)
			}
			rows, err := db.QueryContext(ctx, `SELECT id, version_id, coalesce(patient_id, ''), epoch_ms(last_updated), epoch_ms(fetched_at),
				coalesce(code, ''), value_number, coalesce(unit, ''), coalesce(status, '') FROM `+src+` ORDER BY value_number IS NULL, id LIMIT 3`)
			if err != nil {
				t.Fatalf("duckdb: %v", err)
			}
			defer rows.Close()
			seen := 0
			for rows.Next() {
				var g Row
				var v sql.NullFloat64
				if err := rows.Scan(&g.ID, &g.VersionID, &g.PatientID, &g.LastUpdated, &g.FetchedAt, &g.Code, &v, &g.Unit, &g.Status); err != nil {
					t.Fatal(err)
				}
				seen++
				w, ok := want[typ+"/"+g.ID]
				if !ok {
					t.Errorf("duckdb row %s/%s is not in the store", typ, g.ID)
					continue
				}
				if g.VersionID != w.VersionID || g.PatientID != w.PatientID || g.LastUpdated != w.LastUpdated || g.FetchedAt != w.FetchedAt ||
					g.Code != w.Code || g.Unit != w.Unit || g.Status != w.Status {
					t.Errorf("duckdb row %s/%s = %+v, want %+v", typ, g.ID, g, w)
				}
				if v.Valid != (w.ValueNumber != nil) || (v.Valid && v.Float64 != *w.ValueNumber) {
					t.Errorf("duckdb value_number of %s/%s = %v, want %v", typ, g.ID, v, w.ValueNumber)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if seen == 0 {
				t.Errorf("duckdb returned no rows of %s", typ)
			}
		})
	}
	// Observations carry numbers: at least one typed value must come back.
	var obsValues int
	if err := db.QueryRowContext(ctx, "SELECT count(value_number) FROM "+all+" WHERE type = 'Observation'").Scan(&obsValues); err != nil || obsValues == 0 {
		t.Errorf("duckdb Observation values = %d, %v; want some", obsValues, err)
	}
}
