package feedeval

import (
	"context"
	"testing"
	"time"

	"ehrgate/ehrsim"

	_ "ehrgate/store/sqlite"
)

// TestEvalAllFaults runs a small eval with every delivery fault: nothing
// is missed in the store or at the slow webhook consumer, and no version
// is applied twice.
func TestEvalAllFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 500-change feed")
	}
	res, err := Run(context.Background(), Options{Changes: 500, Seed: 7, StoreURL: "sqlite:" + t.TempDir(),
		Faults:  []ehrsim.NotifyFault{ehrsim.NotifyDrop, ehrsim.NotifyDuplicate, ehrsim.NotifyReorder, ehrsim.NotifyDelay},
		Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Changes != 500 || res.Missed != 0 || res.DuplicatesApplied != 0 {
		t.Errorf("Run = %+v, want 500 changes, missed 0, duplicates_applied 0", res)
	}
	if res.Applied == 0 || res.Webhook.Sent != res.Applied || res.Webhook.Missed != 0 || res.Webhook.Received != res.Webhook.Sent {
		t.Errorf("webhook = %+v (applied %d), want every applied change sent and received", res.Webhook, res.Applied)
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{nil, 0.99, 0},
		{[]float64{5}, 0.99, 5},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.99, 10},
	}
	for _, tt := range tests {
		if got := percentile(tt.xs, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
		}
	}
}
