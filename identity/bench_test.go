package identity

import (
	"context"
	"testing"
)

// benchmarkMatch matches a synthetic population of about n records (the
// population is generated outside the timer) and reports the figures the
// issue asks for as custom metrics.
func benchmarkMatch(b *testing.B, records int) {
	people := records * 100 / 188 // about 1.88 records per person
	pop := Generate(GenOptions{People: people, Seed: 1})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := New(pop.Records, Options{}).Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if i == b.N-1 {
			b.StopTimer()
			e := Evaluate(res.Cluster, pop.Person, pop.Hard)
			b.ReportMetric(float64(len(pop.Records)), "records")
			b.ReportMetric(e.Pairwise.Precision, "precision")
			b.ReportMetric(e.Pairwise.Recall, "recall")
			b.ReportMetric(e.Cluster.F1, "cluster-f1")
			b.ReportMetric(PeakRSSMB(), "peak-rss-MiB")
			b.StartTimer()
		}
	}
}

func BenchmarkMatch10k(b *testing.B)  { benchmarkMatch(b, 10_000) }
func BenchmarkMatch100k(b *testing.B) { benchmarkMatch(b, 100_000) }
func BenchmarkMatch1M(b *testing.B)   { benchmarkMatch(b, 1_000_000) }
