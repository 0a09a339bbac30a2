package hl7store

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/hl7/mllp"
	"ehrgate/store/sqlite"
)

// dropProxy forwards TCP connections to target and, once, closes the
// connection (both directions, mid-stream) after dropAfter frames from the
// client: a dropped connection between a real sender and the listener.
type dropProxy struct {
	ln        net.Listener
	target    string
	dropAfter int64
	dropped   atomic.Bool
	frames    atomic.Int64
	wg        sync.WaitGroup
}

func (p *dropProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(c)
		}()
	}
}

func (p *dropProxy) pipe(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(client, server)
		client.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			frames := int64(bytes.Count(buf[:n], []byte{0x1c}))
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
			if p.frames.Add(frames) >= p.dropAfter && p.dropped.CompareAndSwap(false, true) {
				if tc, ok := client.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, as a failing network or firewall would
				}
				return // closes both sides mid-stream
			}
		}
		if err != nil {
			return
		}
	}
}

// TestInteropNodeSender drives the real store-backed listener with a
// third-party MLLP sender (node-hl7-client from npm): 10,000 messages over
// four connections, one connection dropped mid-stream. Every message must be
// acknowledged AA and stored exactly once.
func TestInteropNodeSender(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test skipped in -short mode")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: the third-party MLLP interop test needs Node.js >= 20.15 (scripts/install-test-deps.sh)")
	}
	dir, _ := filepath.Abs(filepath.Join("..", "..", "interop", "hl7"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-hl7-client", "package.json")); err != nil {
		t.Skipf("node-hl7-client not installed in %s: run `npm ci` there (scripts/install-test-deps.sh does)", dir)
	}
	count := 10000
	if v, err := strconv.Atoi(os.Getenv("INTEROP_COUNT")); err == nil && v > 0 {
		count = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s, err := sqlite.OpenDir(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := New(s, Options{Connection: "interop", Deferred: true}) // as `ehrgate serve` runs it
	go h.Run(ctx, 50*time.Millisecond)
	srv := &mllp.Server{Handler: h, Quarantiner: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := &dropProxy{ln: pln, target: ln.Addr().String(), dropAfter: int64(count / 3)}
	go proxy.serve()

	start := time.Now()
	cmd := exec.CommandContext(ctx, node, "send.js", "127.0.0.1", portOf(t, pln.Addr()), strconv.Itoa(count), "8")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "INTEROP_DEADLINE_MS=420000")
	out, err := cmd.Output()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("node send.js: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	var st struct {
		Count, Sent, Resent, Acked, AA, NonAA, Missing, Errors int
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
	t.Logf("node-hl7-client: %+v in %v (%.0f msgs/s); connection dropped: %v", st, elapsed.Round(time.Millisecond),
		float64(count)/elapsed.Seconds(), proxy.dropped.Load())
	if st.AA != count || st.NonAA != 0 || st.Missing != 0 {
		t.Errorf("acknowledgments: %+v, want all %d AA", st, count)
	}
	if !proxy.dropped.Load() {
		t.Error("the proxy never dropped a connection")
	}
	c, err := s.HL7Counts(ctx, "interop")
	if err != nil {
		t.Fatal(err)
	}
	for c.Messages == count && c.Processed < count && ctx.Err() == nil { // conversion runs behind the ACKs
		time.Sleep(50 * time.Millisecond)
		if c, err = s.HL7Counts(ctx, "interop"); err != nil {
			t.Fatal(err)
		}
	}
	if c.Messages != count || c.Processed != count || c.Failed != 0 {
		t.Errorf("store: %+v, want %d messages stored once and processed", c, count)
	}
	stats, _ := s.Stats(ctx)
	for _, tc := range stats.Resources {
		switch tc.Type {
		case "Patient":
			if tc.Count != min(count, 1000) {
				t.Errorf("patients = %d, want %d", tc.Count, min(count, 1000))
			}
		case "Encounter":
			if tc.Count != count {
				t.Errorf("encounters = %d, want %d", tc.Count, count)
			}
		}
	}
	if stats.Quarantined != 0 {
		t.Errorf("quarantined = %d", stats.Quarantined)
	}
	pln.Close()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	<-served
	proxy.wg.Wait()
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
