package sqlite

import (
	"context"
	"testing"

	"ehrgate/store/storetest"
)

func TestHL7Conformance(t *testing.T) {
	storetest.RunHL7Tests(t, func(t *testing.T) storetest.HL7Store {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}

func TestHL7StatsConformance(t *testing.T) {
	storetest.RunHL7StatsTests(t, func(t *testing.T) storetest.HL7StatsStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		return s
	})
}
