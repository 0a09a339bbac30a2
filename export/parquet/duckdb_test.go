package parquet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"ehrgate/ingest"
	"ehrgate/store/sqlite"
	"ehrgate/synth"
)

// TestDuckDBReadsExport runs the README's query with DuckDB when
// EHRGATE_DUCKDB_NODE names a directory where `npm i @duckdb/node-api` was
// run (node must be on PATH). Skipped otherwise.
func TestDuckDBReadsExport(t *testing.T) {
	modDir := os.Getenv("EHRGATE_DUCKDB_NODE")
	if modDir == "" {
		t.Skip("set EHRGATE_DUCKDB_NODE to a directory with node_modules/@duckdb/node-api")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
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
	out := filepath.Join(dir, "out")
	if _, err := Export(ctx, st, Options{Out: out}); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(modDir, "ehrgate-duckdb-test.mjs")
	if err := os.WriteFile(script, []byte(`import { DuckDBInstance } from '@duckdb/node-api';
const con = await (await DuckDBInstance.create(':memory:')).connect();
const r = await con.runAndReadAll("SELECT count(*) AS n, count(DISTINCT type) AS types, sum(CASE WHEN type = 'Observation' AND code = '8867-4' THEN 1 ELSE 0 END) AS hr FROM read_parquet('" + process.argv[2] + "/**/*.parquet', hive_partitioning = true)");
console.log(JSON.stringify(r.getRowObjectsJson()[0]));
`), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(script)
	cmd := exec.Command(node, script, out)
	cmd.Dir = modDir
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, got)
	}
	want := 0
	for _, c := range counts {
		want += c
	}
	if !strings.Contains(string(got), `"n":"`+strconv.Itoa(want)+`"`) || !strings.Contains(string(got), `"types":"10"`) {
		t.Errorf("duckdb says %s, want n=%d over 10 types", got, want)
	}
}
