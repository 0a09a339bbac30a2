package sqlite

import (
	"context"
	"testing"

	"ehrgate/store/storetest"
)

func TestBatchConformance(t *testing.T) {
	storetest.RunBatchTests(t, func(t *testing.T) storetest.BatchStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}
