//go:build !cgo || !duckdb

package parquet

import "testing"

// TestDuckDBReadsExport needs DuckDB's C library through cgo
// (duckdb_test.go, build tag duckdb): building it takes minutes, so only
// `make test`'s non-race step compiles it, once (go test -tags duckdb).
func TestDuckDBReadsExport(t *testing.T) {
	t.Skip("DuckDB read-back runs with cgo and -tags duckdb (make test does: go test -tags duckdb -run TestDuckDBReadsExport ./export/parquet)")
}
