package mllp

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/hl7"
)

// BenchmarkMLLPRoundTrip measures end-to-end acknowledged messages per
// second over loopback TCP in original mode: client frame write, server
// read, parse, handler (a counter: the store's cost is excluded), ACK build
// and write, client ACK read and match. One connection per parallel
// goroutine: 4 per GOMAXPROCS for "count", 16 for the fsync variants so
// that group commit has company.
func BenchmarkMLLPRoundTrip(b *testing.B) {
	var handled atomic.Int64
	h := HandlerFunc(func(context.Context, *hl7.Message) error { handled.Add(1); return nil })
	b.Run("count", func(b *testing.B) { benchRoundTrip(b, h, 4) })

	// fsync: each message appended to a file and fsynced before the ACK,
	// one fsync per message (no group commit): a floor for a real store.
	f, err := os.CreateTemp(b.TempDir(), "wal")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	durable := HandlerFunc(func(_ context.Context, m *hl7.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.Write(m.Bytes()); err != nil {
			return err
		}
		return f.Sync()
	})
	b.Run("fsync", func(b *testing.B) { benchRoundTrip(b, durable, 16) })

	// groupcommit: the same file, but concurrent messages share one fsync,
	// as a store should do it.
	g := newGroupCommitter(f)
	defer g.close()
	b.Run("groupcommit", func(b *testing.B) {
		benchRoundTrip(b, HandlerFunc(func(ctx context.Context, m *hl7.Message) error { return g.append(ctx, m.Bytes()) }), 16)
	})
}

// groupCommitter appends records to a file, fsyncing once per batch of
// whatever arrived while the previous fsync ran.
type groupCommitter struct {
	f    *os.File
	reqs chan gcReq
	done chan struct{}
}

type gcReq struct {
	data []byte
	errc chan error
}

func newGroupCommitter(f *os.File) *groupCommitter {
	g := &groupCommitter{f: f, reqs: make(chan gcReq, 1024), done: make(chan struct{})}
	go g.loop()
	return g
}

func (g *groupCommitter) append(ctx context.Context, data []byte) error {
	r := gcReq{data: data, errc: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.errc
}

func (g *groupCommitter) close() { close(g.reqs); <-g.done }

func (g *groupCommitter) loop() {
	defer close(g.done)
	for r := range g.reqs {
		batch := []gcReq{r}
	drain:
		for {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		var err error
		for _, r := range batch {
			if _, werr := g.f.Write(r.data); werr != nil && err == nil {
				err = werr
			}
		}
		if serr := g.f.Sync(); serr != nil && err == nil {
			err = serr
		}
		for _, r := range batch {
			r.errc <- err
		}
	}
}

func benchRoundTrip(b *testing.B, h Handler, parallelism int) {
	addr, stop := startServer(b, &Server{Handler: h})
	defer stop()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	start, cpu0 := time.Now(), processCPUSeconds()
	b.RunParallel(func(pb *testing.PB) {
		cl, err := Dial(context.Background(), addr, ClientOptions{})
		if err != nil {
			b.Error(err)
			return
		}
		defer cl.Close()
		for pb.Next() {
			id := "B" + strconv.FormatInt(seq.Add(1), 10)
			if _, err := cl.Send(context.Background(), testMsg(id)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRates(b, start, cpu0)
}

// reportRates reports messages per wall-clock second and per CPU-second of
// the whole process (client and server together, GC included).
func reportRates(b *testing.B, start time.Time, cpu0 float64) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if cpu := processCPUSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "msgs/cpu-s")
	}
}
