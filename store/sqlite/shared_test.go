package sqlite

import (
	"context"
	"testing"

	"ehrgate/store/internal/sqlstore"
	"ehrgate/store/storetest"
)

// sharedOnly is a SQLite store seen only through the shared sqlstore code
// (what store/postgres runs), without the methods this package defines
// itself (its bulk path, export state and HL7 log): the conformance suites
// run against it show that the shared code is correct on SQLite too, so
// that this package's own versions can give way to it.
type sharedOnly struct {
	*sqlstore.DB
	s *Store
}

func (o sharedOnly) Close() error { return o.s.Close() }

func openShared(t *testing.T) sharedOnly {
	s, err := OpenDir(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("OpenDir: %v", err)
	}
	return sharedOnly{DB: &s.DB, s: s}
}

func TestSharedBulkConformance(t *testing.T) {
	storetest.RunBulkTests(t, func(t *testing.T) storetest.BulkStore { return openShared(t) })
	storetest.RunBatchTests(t, func(t *testing.T) storetest.BatchStore { return openShared(t) })
	storetest.RunPendingExportTests(t, func(t *testing.T) storetest.PendingExportStore { return openShared(t) })
}

func TestSharedHL7Conformance(t *testing.T) {
	storetest.RunHL7Tests(t, func(t *testing.T) storetest.HL7Store { return openShared(t) })
}
