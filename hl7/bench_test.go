package hl7

import (
	"testing"
	"time"
)

var fixedNow = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkParseADT parses the ADT^A01 test message and reads a handful of
// fields, as a typical router would.
func BenchmarkParseADT(b *testing.B) {
	data := []byte(adt)
	for _, mode := range []struct {
		name string
		opts ParseOptions
	}{{"lenient", ParseOptions{}}, {"strict", ParseOptions{Strict: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			start, cpu0 := time.Now(), processCPUSeconds()
			for b.Loop() {
				m, err := Parse(data, mode.opts)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.ControlID()
			}
			reportRates(b, start, cpu0)
		})
	}
	b.Run("parse+5fields", func(b *testing.B) {
		b.ReportAllocs()
		start, cpu0 := time.Now(), processCPUSeconds()
		for b.Loop() {
			m, err := Parse(data, ParseOptions{})
			if err != nil {
				b.Fatal(err)
			}
			_ = m.MessageType()
			_ = m.ControlID()
			_ = m.Get("PID-3[1].1")
			_ = m.Get("PID-5.1")
			_ = m.Get("PID-7")
		}
		reportRates(b, start, cpu0)
	})
}

func BenchmarkBuildACK(b *testing.B) {
	m, err := Parse([]byte(adt), ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = BuildACK(m, AckApplicationAccept, "", fixedNow)
	}
}

// reportRates reports messages per wall-clock second and per CPU-second of
// the whole process (all goroutines, GC included). On a shared machine the
// second is the stable per-core figure.
func reportRates(b *testing.B, start time.Time, cpu0 float64) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if cpu := processCPUSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "msgs/cpu-s")
	}
}
