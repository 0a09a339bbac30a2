package sqlite

import (
	"context"
	"testing"

	"ehrgate/store/storetest"
)

func TestScanConformance(t *testing.T) {
	storetest.RunScanTests(t, func(t *testing.T) storetest.ScanStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}
