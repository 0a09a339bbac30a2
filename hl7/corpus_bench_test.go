package hl7

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// corpus loads the shared fixture messages ($EHRGATE_FIXTURES/hl7v2/messages,
// one message per .hl7 file: the corpus scripts/hl7-peer-bench.sh gives the
// npm peers), skipping the benchmark when they are absent.
func corpus(b *testing.B) [][]byte {
	b.Helper()
	dir := os.Getenv("EHRGATE_FIXTURES")
	if dir == "" {
		for _, c := range []string{"../../shared/fixtures", "../../../shared/fixtures"} {
			if st, err := os.Stat(filepath.Join(c, "hl7v2")); err == nil && st.IsDir() {
				dir = c
				break
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "hl7v2", "messages", "*.hl7"))
	if dir == "" || len(files) == 0 {
		b.Skip("HL7 v2 fixture messages not found: set EHRGATE_FIXTURES to the shared fixtures directory (hl7v2/messages/*.hl7, see its MANIFEST.md)")
	}
	sort.Strings(files)
	var msgs [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, data)
	}
	return msgs
}

// readAll reads every component (mode components: the unescaped value of
// each component, Component.Value; mode raw: its encoded bytes,
// Component.Raw, no copy — what @medplum/core's getComponent returns) or
// every sub-component (mode subcomponents, unescaped) of every
// repetition of every field of every segment, and returns the number of
// values read and their total length (so nothing is optimised away). An
// empty field, repetition or component is read once, as "" (the peers do the
// same), so every walker reads the same number of values.
func readAll(m *Message, mode string) (n, size int) {
	for i := range m.Len() {
		s := m.SegmentAt(i)
		for fi := 1; fi <= s.NumFields(); fi++ {
			f := s.Field(fi)
			for r := 1; r <= max(1, f.NumRepetitions()); r++ {
				rep := f.Repetition(r)
				for c := 1; c <= max(1, rep.NumComponents()); c++ {
					comp := rep.Component(c)
					switch mode {
					case "raw":
						size += len(comp.Raw())
						n++
						continue
					case "components":
						size += len(comp.Value())
						n++
						continue
					}
					for sc := 1; sc <= max(1, comp.NumSubComponents()); sc++ {
						size += len(comp.SubComponent(sc))
						n++
					}
				}
			}
		}
	}
	return n, size
}

// BenchmarkCorpusReadAll parses each fixture message and reads every
// component (or sub-component) of every field of every segment: the work a
// full conversion or an interface engine's mapping does, and the access the
// npm peers are measured with (interop/hl7peers/bench.js). One op is one
// pass over the whole corpus; msgs/s counts messages.
func BenchmarkCorpusReadAll(b *testing.B) {
	msgs := corpus(b)
	for _, mode := range []string{"components", "raw", "subcomponents"} {
		b.Run(mode, func(b *testing.B) {
			var size int
			for _, data := range msgs {
				size += len(data)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			start, cpu0 := time.Now(), processCPUSeconds()
			values := 0
			for b.Loop() {
				for _, data := range msgs {
					m, err := Parse(data, ParseOptions{})
					if err != nil {
						b.Fatal(err)
					}
					n, _ := readAll(m, mode)
					values += n
				}
			}
			reportCorpusRates(b, len(msgs), start, cpu0)
			b.ReportMetric(float64(values)/float64(b.N)/float64(len(msgs)), "values/msg")
		})
	}
}

// BenchmarkCorpusFewFields parses each fixture message and reads only the
// header fields and a few PID fields, the way a router or the durable log
// (hl7store) does before the ACK.
func BenchmarkCorpusFewFields(b *testing.B) {
	msgs := corpus(b)
	b.ReportAllocs()
	start, cpu0 := time.Now(), processCPUSeconds()
	for b.Loop() {
		for _, data := range msgs {
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
	}
	reportCorpusRates(b, len(msgs), start, cpu0)
}

// reportCorpusRates reports messages (not corpus passes) per wall-clock
// second and per CPU-second.
func reportCorpusRates(b *testing.B, perOp int, start time.Time, cpu0 float64) {
	msgs := float64(b.N * perOp)
	b.ReportMetric(msgs/time.Since(start).Seconds(), "msgs/s")
	if cpu := processCPUSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(msgs/cpu, "msgs/cpu-s")
	}
}

// TestCorpusReadAll checks that the benchmark's walk reads the same values
// as the path API, so the figures measure real reads.
func TestCorpusReadAll(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixturesDir(t), "hl7v2", "messages", "*.hl7"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(data, ParseOptions{})
		if err != nil {
			t.Fatalf("Parse(%s) error = %v", filepath.Base(f), err)
		}
		nc, _ := readAll(m, "components")
		ns, _ := readAll(m, "subcomponents")
		if nc == 0 || ns < nc {
			t.Errorf("%s: readAll = %d components, %d sub-components", filepath.Base(f), nc, ns)
		}
		if strings.HasPrefix(string(data), "MSH") && m.Get("MSH-9") == "" {
			t.Errorf("%s: MSH-9 empty", filepath.Base(f))
		}
	}
}
