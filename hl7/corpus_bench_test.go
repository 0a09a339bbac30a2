package hl7

import (
	"bytes"
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
// same), so every walker reads the same number of values. Each count is
// taken once per element, as the peers' walks do (bench.js).
// TestCorpusReadAll checks the walk against a naive splitter.
func readAll(m *Message, mode string) (n, size int) {
	for i := range m.Len() {
		s := m.SegmentAt(i)
		nf := s.NumFields()
		for fi := 1; fi <= nf; fi++ {
			f := s.Field(fi)
			nr := max(1, f.NumRepetitions())
			for r := 1; r <= nr; r++ {
				rep := f.Repetition(r)
				nc := max(1, rep.NumComponents())
				for c := 1; c <= nc; c++ {
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
					ns := max(1, comp.NumSubComponents())
					for sc := 1; sc <= ns; sc++ {
						size += len(comp.SubComponent(sc))
						n++
					}
				}
			}
		}
	}
	return n, size
}

// readAllNaive is readAll by splitting each segment's bytes with
// bytes.Split, level by level: the reference TestCorpusReadAll holds the
// benchmark's walk to, so that the figures are known to read every value.
func readAllNaive(m *Message, mode string) (n, size int) {
	d := m.Delimiters()
	for i := range m.Len() {
		s := m.SegmentAt(i)
		elems := bytes.Split(s.Raw(), []byte{d.Field})
		fields := elems[1:]
		if s.isHeader() {
			// MSH-1 and MSH-2: one literal value each, never split.
			n, size = n+2, size+1+len(elems[1])
			fields = elems[2:]
		}
		for _, f := range fields {
			for _, rep := range bytes.Split(f, []byte{d.Repetition}) {
				for _, comp := range bytes.Split(rep, []byte{d.Component}) {
					subs := bytes.Split(comp, []byte{d.SubComponent})
					switch mode {
					case "raw":
						n, size = n+1, size+len(comp)
					case "components":
						n, size = n+1, size+len(Unescape(string(subs[0]), d))
					default:
						for _, sc := range subs {
							n, size = n+1, size+len(Unescape(string(sc), d))
						}
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
		for _, mode := range []string{"components", "raw", "subcomponents"} {
			n, size := readAll(m, mode)
			wn, wsize := readAllNaive(m, mode)
			if n != wn || size != wsize || n == 0 {
				t.Errorf("%s: readAll(%s) = %d values, %d bytes; naive split = %d, %d", filepath.Base(f), mode, n, size, wn, wsize)
			}
		}
		if strings.HasPrefix(string(data), "MSH") && m.Get("MSH-9") == "" {
			t.Errorf("%s: MSH-9 empty", filepath.Base(f))
		}
	}
}
