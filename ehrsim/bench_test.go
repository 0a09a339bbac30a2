package ehrsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// loadBench fills a server with 100 patients × 120 resources.
func loadBench(b testing.TB) *Server {
	s := New(Options{})
	generate(b, s, 100, 120)
	return s
}

// BenchmarkPatientSearch measures a per-patient search in the handler, without
// the network: the path a sync hits most.
func BenchmarkPatientSearch(b *testing.B) {
	s := loadBench(b)
	h := s.Handler()
	queries := []string{
		"/fhir/Observation?patient=pat042",
		"/fhir/Observation?patient=pat042&category=laboratory&date=ge2024-06",
		"/fhir/MedicationRequest?patient=Patient/pat042&_include=MedicationRequest:medication",
	}
	for _, q := range queries {
		b.Run(q, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, q, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", q, w.Code)
				}
			}
		})
	}
}

// TestPatientSearchIsFast guards the per-patient index: with 12,000
// resources loaded, a per-patient search must stay far below a millisecond.
// The bound is loose (10ms for the median of many) so a loaded machine does
// not flake it; a full scan per search would still fail it under -race.
func TestPatientSearchIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 12,000 resources")
	}
	s := loadBench(t)
	h := s.Handler()
	const n = 51
	durations := make([]time.Duration, n)
	for i := range n {
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/fhir/Observation?patient=pat%03d&_count=200", i), nil)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		durations[i] = time.Since(start)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	}
	slices.Sort(durations)
	if median := durations[n/2]; median > 10*time.Millisecond {
		t.Errorf("median per-patient search took %v", median)
	}
	if got := s.Counts()["Observation"]; got != 100*60 {
		t.Errorf("Counts()[Observation] = %d, want 6000", got)
	}
}
