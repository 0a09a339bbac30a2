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
			start := time.Now()
			for b.Loop() {
				m, err := Parse(data, mode.opts)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.ControlID()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
	b.Run("parse+5fields", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
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
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
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
