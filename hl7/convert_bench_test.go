package hl7_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"ehrgate/hl7"
	"ehrgate/hl7/tofhir"
	"ehrgate/refresh"
)

// BenchmarkConvert is the work a converted message costs before the store:
// parse, tofhir.Convert (acceptance rules, mapping, JSON) and
// refresh.NewRecord for every resource (the normalization every path into
// the store applies). It runs over the fixture messages that convert
// (hl7v2/messages; the others are refused by design: unsupported triggers
// or failing the acceptance rules) and reports messages per second and per
// CPU-second; goal ≥ 20,000 messages/s per core.
func BenchmarkConvert(b *testing.B) {
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		dir = "../../shared/fixtures"
	}
	files, _ := filepath.Glob(filepath.Join(dir, "hl7v2", "messages", "*.hl7"))
	if len(files) == 0 {
		b.Skip("HL7 v2 fixture messages not found: set EHRGATE_FIXTURES to the shared fixtures directory (hl7v2/messages/*.hl7, see its MANIFEST.md)")
	}
	sort.Strings(files)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	convert := func(data []byte) (int, error) {
		m, err := hl7.Parse(data, hl7.ParseOptions{})
		if err != nil {
			return 0, err
		}
		res, err := tofhir.Convert(m, tofhir.Options{})
		if err != nil {
			return 0, err
		}
		for _, r := range res.Resources {
			if _, err := refresh.NewRecord("hl7", r.JSON, now, res.Source); err != nil {
				return 0, err
			}
		}
		return len(res.Resources), nil
	}
	var msgs [][]byte
	resources := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := convert(data); err == nil {
			msgs = append(msgs, data)
			resources += n
		}
	}
	if len(msgs) == 0 {
		b.Skip("no fixture message converts")
	}
	b.ReportAllocs()
	start, cpu0 := time.Now(), hl7.ProcessCPUSeconds()
	for b.Loop() {
		for _, data := range msgs {
			if _, err := convert(data); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(b.N * len(msgs))
	b.ReportMetric(n/time.Since(start).Seconds(), "msgs/s")
	if cpu := hl7.ProcessCPUSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(n/cpu, "msgs/cpu-s")
	}
	b.ReportMetric(float64(len(msgs)), "messages")
	b.ReportMetric(float64(resources)/float64(len(msgs)), "resources/msg")
}
