package mllp

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/hl7"
)

// BenchmarkMLLPRoundTrip measures end-to-end acknowledged messages per
// second over loopback TCP in original mode: client frame write, server
// read, parse, handler (a counter: the store's cost is excluded), ACK build
// and write, client ACK read and match. One connection per parallel
// goroutine (GOMAXPROCS x -cpu, scale with b.SetParallelism).
func BenchmarkMLLPRoundTrip(b *testing.B) {
	var handled atomic.Int64
	h := HandlerFunc(func(context.Context, *hl7.Message) error { handled.Add(1); return nil })
	addr, stop := startServer(b, &Server{Handler: h})
	defer stop()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	start := time.Now()
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
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
