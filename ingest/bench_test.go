package ingest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ehrgate/store/sqlite"
)

// BenchmarkIngestCorpus ingests the NDJSON corpus in $EHRGATE_BENCH_CORPUS
// (for example `ehrgate synth --patients 16000 --out /tmp/corpus`, about
// 1 GB) into a fresh store and reports resources/s and the process's peak
// RSS. It is skipped when the variable is unset, so `make test` stays fast.
func BenchmarkIngestCorpus(b *testing.B) {
	dir := os.Getenv("EHRGATE_BENCH_CORPUS")
	if dir == "" {
		b.Skip("set EHRGATE_BENCH_CORPUS=DIR to an NDJSON corpus (ehrgate synth --out DIR)")
	}
	files, _, err := LocalFiles([]string{dir})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		data := b.TempDir()
		if d := os.Getenv("EHRGATE_BENCH_DATA"); d != "" {
			data = filepath.Join(d, strconv.Itoa(i))
		}
		st, err := sqlite.OpenDir(context.Background(), data)
		if err != nil {
			b.Fatal(err)
		}
		batch, _ := strconv.Atoi(os.Getenv("EHRGATE_BENCH_BATCH")) // 0 = default
		in, _ := New(st, Options{Connection: "bench", Job: "bench", BatchSize: batch})
		start := time.Now()
		sum, err := in.Run(context.Background(), files)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		st.Close()
		b.ReportMetric(float64(sum.Lines)/el.Seconds(), "resources/s")
		b.ReportMetric(float64(sum.Bytes)/el.Seconds()/(1<<20), "MiB/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		b.Logf("%d resources, %.0f MiB in %s", sum.Lines, float64(sum.Bytes)/(1<<20), el.Round(time.Millisecond))
	}
}

// peakRSS reads VmHWM from /proc/self/status (bytes; 0 when unavailable).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
