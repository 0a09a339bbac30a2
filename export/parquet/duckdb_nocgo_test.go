//go:build !cgo

package parquet

import "testing"

// TestDuckDBReadsExport needs DuckDB's C library through cgo
// (duckdb_test.go); without cgo it says so.
func TestDuckDBReadsExport(t *testing.T) {
	t.Skip("DuckDB read-back needs cgo (CGO_ENABLED=1 and a C compiler)")
}
