package sqlite

import (
	"context"
	"testing"

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
