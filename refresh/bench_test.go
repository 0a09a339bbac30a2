package refresh_test

import (
	"context"
	"testing"

	"ehrgate/ehrsim"
	"ehrgate/refresh"
	"ehrgate/store/sqlite"
)

// BenchmarkSync measures a full first sync of 50 synthetic patients from the
// in-process simulated EHR over real loopback HTTP into a fresh embedded
// store. It reports resources/s end to end.
func BenchmarkSync(b *testing.B) {
	benchSync(b, false)
}

// BenchmarkResync measures a sync in which nothing changed (the steady state
// of scheduled refresh).
func BenchmarkResync(b *testing.B) {
	benchSync(b, true)
}

func benchSync(b *testing.B, warm bool) {
	e := newEnv(b, 50, ehrsim.Options{PageSize: 100}, nil, nil)
	total := 0
	for _, n := range e.sim.Counts() {
		total += n
	}
	st := e.store
	if warm {
		s, _ := refresh.New(e.client, st, refresh.Options{Connection: "sim"})
		if _, err := s.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !warm {
			b.StopTimer()
			fresh, err := sqlite.OpenDir(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			st = fresh
			b.StartTimer()
		}
		s, _ := refresh.New(e.client, st, refresh.Options{Connection: "sim"})
		sum, err := s.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if sum.Errors != 0 {
			b.Fatalf("sync had %d errors", sum.Errors)
		}
		if !warm {
			st.Close()
		}
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "resources/s")
}
