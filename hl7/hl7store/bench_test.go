package hl7store

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/events"
	"ehrgate/hl7"
	"ehrgate/hl7/mllp"
	"ehrgate/internal/pgtest"
	"ehrgate/store"
	_ "ehrgate/store/postgres"
	_ "ehrgate/store/sqlite"
)

// benchMessage is an A04 for one of 1000 patients (demographics repeat, as
// in real feeds) with its own visit.
func benchMessage(i int64) []byte {
	return []byte(fmt.Sprintf("MSH|^~\\&|BENCH|FAC|EHRGATE|EHRGATE|20260101120000||ADT^A04^ADT_A01|B%09d|P|2.5.1\r"+
		"EVN|A04|20260101120000\r"+
		"PID|1||M%06d^^^FAC&2.16.840.1.113883.3.9999.7&ISO^MR||Bench^Mark^%d||19700101|U|||1 Main St^^Town^ST^00000\r"+
		"PV1|1|O|CLINIC^^^FAC||||1^Doc^Test||||||||||||V%09d^^^FAC^VN|||||||||||||||||||||||||20260101120000\r", i, i%1000, i%1000, i))
}

// BenchmarkDurableACK measures end-to-end store-and-forward throughput: Go
// MLLP clients over loopback to the listener with the real sqlite-backed
// handler (parse, convert, normalize, one group-committed transaction per
// message with the raw message and its Patient and Encounter), ACK after
// commit. acked-msgs/s is the ACK rate; stored-msgs/s counts until every
// message's resources are stored too (equal in inline mode; in deferred
// mode conversion runs behind the ACKs, from the durable log; in
// deferred-burst mode the converter starts only after the burst is ACKed,
// which isolates the durable-ACK path).
func BenchmarkDurableACK(b *testing.B) {
	for _, mode := range []struct {
		name            string
		deferred, burst bool
	}{{"inline", false, false}, {"deferred", true, false}, {"deferred-burst", true, true}} {
		for _, conns := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/conns=%d", mode.name, conns), func(b *testing.B) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				s, err := benchStore(b)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				// Stored messages are counted from their events (published
				// right after commit), not by querying the store.
				var stored atomic.Int64
				bus := events.NewBus(events.BusOptions{})
				bus.Subscribe(events.SubscriberFunc(func(events.Event) { stored.Add(1) }))
				h := New(s, Options{Deferred: mode.deferred, Bus: bus})
				srv := &mllp.Server{Handler: h, Quarantiner: h}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				go srv.Serve(ctx, ln)
				if mode.deferred && !mode.burst {
					go h.Run(ctx, 10*time.Millisecond)
				}
				clients := make([]*mllp.Client, conns)
				for i := range clients {
					if clients[i], err = mllp.Dial(ctx, ln.Addr().String(), mllp.ClientOptions{}); err != nil {
						b.Fatal(err)
					}
					defer clients[i].Close()
				}
				var next atomic.Int64
				b.ResetTimer()
				start, cpu0 := time.Now(), processCPUSeconds()
				var wg sync.WaitGroup
				for _, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							if _, err := c.Send(ctx, benchMessage(i)); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acked-msgs/s")
				if mode.burst { // the burst is ACKed; now convert it
					go h.Run(ctx, 10*time.Millisecond)
				}
				for stored.Load() < int64(b.N) { // until every message is converted and its resources stored
					time.Sleep(time.Millisecond)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "stored-msgs/s")
				if cpu := processCPUSeconds() - cpu0; cpu > 0 {
					b.ReportMetric(float64(b.N)/cpu, "stored-msgs/cpu-s")
				}
			})
		}
	}
}

// BenchmarkConvertFromLog measures conversion from the durable log alone:
// b.N messages are logged unconverted first (as ACKed in deferred mode),
// then ProcessPending parses, converts, normalizes and stores every one
// (Patient and Encounter each) and marks it processed.
func BenchmarkConvertFromLog(b *testing.B) {
	ctx := context.Background()
	s, err := benchStore(b)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := New(s, Options{Deferred: true})
	for i := range int64(b.N) {
		msg, err := hl7.Parse(benchMessage(i), hl7.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.HandleMessage(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	n, err := h.ProcessPending(ctx)
	if err != nil || n != b.N {
		b.Fatalf("ProcessPending = %d, %v; want %d", n, err, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "converted-msgs/s")
}

// BenchmarkSustainedLag sends ADT messages over MLLP at a fixed rate
// (EHRGATE_BENCH_RATE per second, default 2000; 8 connections) for
// EHRGATE_BENCH_SECONDS (default 30) into the deferred, store-backed
// listener with its converter running, and reports the conversion lag
// (from a message's ACK to its resources being stored) at p50, p99 and
// max. A lag that grows over the run means conversion cannot keep up.
func BenchmarkSustainedLag(b *testing.B) {
	rate, _ := strconv.Atoi(os.Getenv("EHRGATE_BENCH_RATE"))
	if rate <= 0 {
		rate = 2000
	}
	secs, _ := strconv.Atoi(os.Getenv("EHRGATE_BENCH_SECONDS"))
	if secs <= 0 {
		secs = 30
	}
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := benchStore(b)
		if err != nil {
			b.Fatal(err)
		}
		// Converted messages are counted from their events (published in
		// log order right after each page commits), not by querying the
		// store, which would load it.
		var converted atomic.Int64
		bus := events.NewBus(events.BusOptions{})
		bus.Subscribe(events.SubscriberFunc(func(events.Event) { converted.Add(1) }))
		h := New(s, Options{Deferred: true, Bus: bus})
		srv := &mllp.Server{Handler: h, Quarantiner: h}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ctx, ln)
		go h.Run(ctx, 10*time.Millisecond)
		const conns = 8
		total := rate * secs
		acked := make([]atomic.Int64, total) // ACK time (Unix ns) by message number
		var next atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range conns {
			c, err := mllp.Dial(ctx, ln.Addr().String(), mllp.ClientOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= int64(total) {
						return
					}
					if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
						time.Sleep(d)
					}
					if _, err := c.Send(ctx, benchMessage(i)); err != nil {
						b.Error(err)
						return
					}
					acked[i].Store(time.Now().UnixNano())
				}
			}()
		}
		// Messages are converted in log (commit) order, close to send order:
		// when the processed count reaches n, the n first ACKed are stored.
		var lags []time.Duration
		done := 0
		for done < total {
			n := int(converted.Load())
			now := time.Now()
			for ; done < n && done < total; done++ {
				at := acked[done].Load()
				if at == 0 {
					break // counted before its ACK was recorded; next poll
				}
				lags = append(lags, now.Sub(time.Unix(0, at)))
			}
			time.Sleep(2 * time.Millisecond)
		}
		wg.Wait()
		el := time.Since(start)
		cancel()
		s.Close()
		slices.Sort(lags)
		q := func(p float64) float64 { return lags[int(p*float64(len(lags)-1))].Seconds() * 1000 }
		b.ReportMetric(float64(total)/el.Seconds(), "msgs/s")
		b.ReportMetric(q(0.5), "lag-p50-ms")
		b.ReportMetric(q(0.99), "lag-p99-ms")
		b.ReportMetric(q(1), "lag-max-ms")
	}
}

// benchStore opens the benchmark's store: the embedded store in a temporary
// directory, or with EHRGATE_BENCH_STORE=postgres a fresh database of the
// test PostgreSQL cluster (internal/pgtest).
func benchStore(b *testing.B) (store.Backend, error) {
	url := "sqlite:" + b.TempDir()
	if os.Getenv("EHRGATE_BENCH_STORE") == "postgres" {
		url = pgtest.NewDatabaseURL(b)
	}
	return store.Open(context.Background(), url, store.OpenOptions{})
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}
