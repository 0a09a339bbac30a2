package ingest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"ehrgate/internal/pgtest"
	"ehrgate/refresh"
	"ehrgate/store"
	_ "ehrgate/store/postgres"
	"ehrgate/store/sqlite"
	_ "ehrgate/store/sqlite"
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
		// EHRGATE_BENCH_STORE=postgres ingests into a fresh database of
		// the test PostgreSQL cluster (internal/pgtest) instead.
		url := "sqlite:" + data
		if os.Getenv("EHRGATE_BENCH_STORE") == "postgres" {
			url = pgtest.NewDatabaseURL(b)
		}
		st, err := store.Open(context.Background(), url, store.OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		batch, _ := strconv.Atoi(os.Getenv("EHRGATE_BENCH_BATCH")) // 0 = default
		in, _ := New(st, Options{Connection: "bench", Job: "bench", BatchSize: batch})
		start, cpu0 := time.Now(), cpuTime()
		sum, err := in.Run(context.Background(), files)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		st.Close()
		b.ReportMetric(float64(sum.Lines)/el.Seconds(), "resources/s")
		b.ReportMetric(float64(sum.Bytes)/el.Seconds()/(1<<20), "MiB/s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		b.ReportMetric((cpuTime()-cpu0).Seconds()/el.Seconds(), "CPUs")
		b.Logf("%d resources, %.0f MiB in %s", sum.Lines, float64(sum.Bytes)/(1<<20), el.Round(time.Millisecond))
	}
}

// cpuTime is the user plus system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// BenchmarkIngestWriter measures the store side alone: the first
// $EHRGATE_BENCH_WRITER_LINES lines (default 300,000) of the corpus in
// $EHRGATE_BENCH_CORPUS are normalized into memory first, in batches of
// 2,000 records of one file interleaved four files at a time as Run does,
// and only WriteBatch (with BeginBulk) is timed.
func BenchmarkIngestWriter(b *testing.B) {
	dir := os.Getenv("EHRGATE_BENCH_CORPUS")
	if dir == "" {
		b.Skip("set EHRGATE_BENCH_CORPUS=DIR to an NDJSON corpus (ehrgate synth --out DIR)")
	}
	limit := 300_000
	if v, err := strconv.Atoi(os.Getenv("EHRGATE_BENCH_WRITER_LINES")); err == nil && v > 0 {
		limit = v
	}
	files, _, err := LocalFiles([]string{dir})
	if err != nil {
		b.Fatal(err)
	}
	// Per file, its batches; then interleaved round-robin over the files.
	var perFile [][]store.Batch
	total := 0
	now := time.Now()
	for _, f := range files {
		if total >= limit {
			break
		}
		r, err := f.Open(context.Background(), 0)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var batches []store.Batch
		var cur store.Batch
		n := 0
		for sc.Scan() && total < limit {
			n++
			line := append([]byte(nil), sc.Bytes()...)
			rec, err := refresh.NewRecord("bench", line, now, f.Name+"#L"+strconv.Itoa(n))
			if err != nil {
				b.Fatal(err)
			}
			cur.Records = append(cur.Records, rec)
			total++
			if len(cur.Records) == 2000 {
				cur.Checkpoint = &store.Checkpoint{Connection: "bench", Job: "bench", File: f.Name, Line: int64(n)}
				batches = append(batches, cur)
				cur = store.Batch{}
			}
		}
		r.Close()
		if len(cur.Records) > 0 {
			cur.Checkpoint = &store.Checkpoint{Connection: "bench", Job: "bench", File: f.Name, Line: int64(n), Done: true}
			batches = append(batches, cur)
		}
		perFile = append(perFile, batches)
	}
	var order []store.Batch
	for i := 0; ; i++ {
		added := false
		for _, bs := range perFile {
			if i < len(bs) {
				order = append(order, bs[i])
				added = true
			}
		}
		if !added {
			break
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := sqlite.OpenDir(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		end, err := st.BeginBulk(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, bt := range order {
			if _, err := st.WriteBatch(context.Background(), bt); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		end()
		st.Close()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "records/s")
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
