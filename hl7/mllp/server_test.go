package mllp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ehrgate/hl7"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testMsg(id string) []byte {
	return []byte("MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|" + id + "|P|2.5.1\r" +
		"EVN|A01|20240101120000\rPID|1||" + id + "^^^HOSP^MR||DOE^JOHN\r")
}

// memStore is a fake durable store with duplicate detection.
type memStore struct {
	mu       sync.Mutex
	stored   map[string]int
	order    []string
	dups     int
	inFlight atomic.Int32
	maxIn    atomic.Int32
	delay    time.Duration
	fail     func(id string) error
	entered  chan string   // if set, receives each id on entry
	gate     chan struct{} // if set, handler waits for it to close
}

func newMemStore() *memStore { return &memStore{stored: map[string]int{}} }

func (s *memStore) HandleMessage(ctx context.Context, msg *hl7.Message) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxIn.Load()
		if n <= m || s.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	id := msg.ControlID()
	if s.entered != nil {
		s.entered <- id
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.fail != nil {
		if err := s.fail(id); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored[id] > 0 {
		s.dups++
		return fmt.Errorf("storing %s: %w", id, ErrDuplicate)
	}
	s.stored[id]++
	s.order = append(s.order, id)
	return nil
}

type memQuarantine struct {
	mu      sync.Mutex
	raws    []string
	reasons []string
	err     error
}

func (q *memQuarantine) Quarantine(_ context.Context, raw []byte, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	q.raws = append(q.raws, string(raw))
	q.reasons = append(q.reasons, reason)
	return nil
}

// startServer serves s on a loopback port; the returned stop is idempotent
// and also runs at cleanup.
func startServer(t testing.TB, s *Server) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background(), ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown() = %v", err)
			}
			if err := <-errc; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve() = %v, want ErrServerClosed", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func dialClient(t testing.TB, addr string, opts ClientOptions) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawConn is a bare MLLP connection for asserting exact server behaviour.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{t: t, nc: nc, r: NewReader(nc, 0)}
}

func (c *rawConn) send(b []byte) {
	c.t.Helper()
	if err := WriteFrame(c.nc, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) read(timeout time.Duration) (*hl7.Message, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	f, err := c.r.ReadFrame()
	if err != nil {
		return nil, err
	}
	return hl7.Parse(f, hl7.ParseOptions{Strict: true})
}

func (c *rawConn) mustAck(code hl7.AckCode, id string) *hl7.Message {
	c.t.Helper()
	ack, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading ACK: %v", err)
	}
	if got := ack.Get("MSA-1"); got != string(code) {
		c.t.Errorf("MSA-1 = %q, want %q", got, code)
	}
	if got := ack.Get("MSA-2"); got != id {
		c.t.Errorf("MSA-2 = %q, want %q", got, id)
	}
	return ack
}

func TestConcurrentClients(t *testing.T) {
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store, QueueSize: 4})
	const clients, perClient = 8, 25
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := Dial(context.Background(), addr, ClientOptions{})
			if err != nil {
				t.Errorf("Dial() = %v", err)
				return
			}
			defer cl.Close()
			for i := range perClient {
				id := fmt.Sprintf("c%02d-%04d", c, i)
				ack, err := cl.Send(context.Background(), testMsg(id))
				if err != nil {
					t.Errorf("Send(%s) = %v", id, err)
					return
				}
				if got := ack.Get("MSA-1"); got != "AA" {
					t.Errorf("Send(%s) MSA-1 = %q, want AA", id, got)
				}
			}
		}()
	}
	wg.Wait()
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.stored) != clients*perClient {
		t.Errorf("stored %d messages, want %d", len(store.stored), clients*perClient)
	}
	// Per-connection order is preserved.
	last := map[string]string{}
	for _, id := range store.order {
		prefix := id[:3]
		if id <= last[prefix] {
			t.Errorf("message %s stored after %s: order not preserved", id, last[prefix])
		}
		last[prefix] = id
	}
}

func TestAckOnlyAfterHandlerReturns(t *testing.T) {
	store := newMemStore()
	store.entered = make(chan string, 1)
	store.gate = make(chan struct{})
	addr, _ := startServer(t, &Server{Handler: store})
	c := dialRaw(t, addr)
	c.send(testMsg("G1"))
	<-store.entered
	if _, err := c.read(100 * time.Millisecond); err == nil {
		t.Fatal("received an ACK before the handler returned")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("read error = %v, want timeout", err)
	}
	close(store.gate)
	// The timed-out read above left the Reader usable: read again.
	c.r = NewReader(c.nc, 0)
	c.mustAck(hl7.AckApplicationAccept, "G1")
}

func TestHandlerErrorGivesAE(t *testing.T) {
	store := newMemStore()
	store.fail = func(string) error { return errors.New("disk full") }
	addr, _ := startServer(t, &Server{Handler: store})
	c := dialRaw(t, addr)
	c.send(testMsg("E1"))
	ack := c.mustAck(hl7.AckApplicationError, "E1")
	if ack.Get("ERR-3") != "207" || ack.Get("ERR-4") != "E" {
		t.Errorf("ERR = %q / %q, want 207 / E", ack.Get("ERR-3"), ack.Get("ERR-4"))
	}
	if strings.Contains(string(ack.Bytes()), "disk full") {
		t.Errorf("ACK leaks internal error text")
	}
}

func TestGarbageRejectedAndQuarantined(t *testing.T) {
	q := &memQuarantine{}
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store, Quarantiner: q, ParseOptions: hl7.ParseOptions{Strict: true}})
	c := dialRaw(t, addr)
	c.send([]byte("this is not hl7"))
	c.mustAck(hl7.AckApplicationReject, "")
	bad := []byte("MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|BAD1|P|2.5.1\rPID|1||x\\Q\\\r")
	c.send(bad)
	ack := c.mustAck(hl7.AckApplicationReject, "BAD1")
	if ack.Get("MSH-5") != "SND" {
		t.Errorf("reject ACK MSH-5 = %q, want SND", ack.Get("MSH-5"))
	}
	c.send(testMsg("OK1"))
	c.mustAck(hl7.AckApplicationAccept, "OK1")
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.raws) != 2 || q.raws[0] != "this is not hl7" || q.raws[1] != string(bad) {
		t.Errorf("quarantined %q, want the two bad frames", q.raws)
	}
	for _, r := range q.reasons {
		if strings.Contains(r, "not hl7") || strings.Contains(r, "x\\Q") {
			t.Errorf("quarantine reason %q leaks content", r)
		}
	}
	if len(store.stored) != 1 {
		t.Errorf("stored %d messages, want 1", len(store.stored))
	}
}

func TestQuarantineFailureGivesAE(t *testing.T) {
	q := &memQuarantine{err: errors.New("quarantine down")}
	addr, _ := startServer(t, &Server{Handler: newMemStore(), Quarantiner: q})
	c := dialRaw(t, addr)
	c.send([]byte("garbage"))
	c.mustAck(hl7.AckApplicationError, "")
}

func TestBackPressure(t *testing.T) {
	store := newMemStore()
	store.delay = 5 * time.Millisecond
	addr, _ := startServer(t, &Server{Handler: store, QueueSize: 1})
	const clients, perClient = 4, 10
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := Dial(context.Background(), addr, ClientOptions{})
			if err != nil {
				t.Errorf("Dial() = %v", err)
				return
			}
			defer cl.Close()
			for i := range perClient {
				id := fmt.Sprintf("bp%d-%d", c, i)
				if _, err := cl.Send(context.Background(), testMsg(id)); err != nil {
					t.Errorf("Send(%s) = %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	if got := store.maxIn.Load(); got != 1 {
		t.Errorf("max concurrent handlers = %d, want 1 (QueueSize)", got)
	}
	if got := len(store.stored); got != clients*perClient {
		t.Errorf("stored %d, want %d: messages lost", got, clients*perClient)
	}
}

func TestIdleTimeout(t *testing.T) {
	addr, _ := startServer(t, &Server{Handler: newMemStore(), IdleTimeout: 100 * time.Millisecond})
	c := dialRaw(t, addr)
	start := time.Now()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Read() = %v, want EOF from idle close", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle close took %v", d)
	}
}

func TestDuplicateControlID(t *testing.T) {
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store})
	c := dialRaw(t, addr)
	for range 3 {
		c.send(testMsg("DUP1"))
		c.mustAck(hl7.AckApplicationAccept, "DUP1")
	}
	if store.stored["DUP1"] != 1 || store.dups != 2 {
		t.Errorf("stored %d times with %d duplicates, want 1 and 2", store.stored["DUP1"], store.dups)
	}
}

func TestOversizedFrame(t *testing.T) {
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store, MaxFrameSize: 256})
	c := dialRaw(t, addr)
	big := append(testMsg("BIG1"), []byte("NTE|1||"+strings.Repeat("x", 2000)+"\r")...)
	c.send(big)
	c.mustAck(hl7.AckApplicationReject, "BIG1")
	c.send(testMsg("SMALL1"))
	c.mustAck(hl7.AckApplicationAccept, "SMALL1")
	if len(store.stored) != 1 {
		t.Errorf("stored %d, want 1", len(store.stored))
	}
}

func TestEnhancedMode(t *testing.T) {
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store, AckMode: AckEnhanced})
	c := dialRaw(t, addr)
	c.send(testMsg("EN1"))
	c.mustAck(hl7.AckCommitAccept, "EN1")
	c.mustAck(hl7.AckApplicationAccept, "EN1")
	// MSH-15 NE (no accept ack), MSH-16 AL.
	m := strings.Replace(string(testMsg("EN2")), "|P|2.5.1", "|P|2.5.1|||NE|AL", 1)
	c.send([]byte(m))
	c.mustAck(hl7.AckApplicationAccept, "EN2")
	store.fail = func(string) error { return errors.New("down") }
	c.send(testMsg("EN3"))
	c.mustAck(hl7.AckCommitError, "EN3")
	if _, err := c.read(100 * time.Millisecond); err == nil {
		t.Errorf("application ACK sent after CE")
	}

	c.send([]byte("garbage"))
	c.mustAck(hl7.AckCommitReject, "")

	cl := dialClient(t, addr, ClientOptions{WaitForApplicationAck: true})
	store.fail = nil
	ack, err := cl.Send(context.Background(), testMsg("EN4"))
	if err != nil || ack.Get("MSA-1") != "AA" {
		t.Errorf("Send(EN4) = %v, %v; want AA", ack.Get("MSA-1"), err)
	}
}

func TestImmediateMode(t *testing.T) {
	store := newMemStore()
	store.gate = make(chan struct{})
	addr, _ := startServer(t, &Server{Handler: store, AckMode: AckImmediate})
	c := dialRaw(t, addr)
	c.send(testMsg("IM1"))
	c.mustAck(hl7.AckApplicationAccept, "IM1") // handler still blocked
	close(store.gate)
	c.send([]byte("garbage"))
	c.mustAck(hl7.AckApplicationAccept, "")
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	store := newMemStore()
	store.entered = make(chan string, 1)
	store.gate = make(chan struct{})
	addr, stop := startServer(t, &Server{Handler: store})
	idle := dialRaw(t, addr) // an idle connection is closed by Shutdown
	_ = idle
	c := dialRaw(t, addr)
	c.send(testMsg("SD1"))
	<-store.entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Shutdown returned while a message was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(store.gate)
	c.mustAck(hl7.AckApplicationAccept, "SD1")
	<-stopped
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("server still accepting after Shutdown")
	}
}

func TestServeContextCancel(t *testing.T) {
	store := newMemStore()
	store.gate = make(chan struct{})
	store.entered = make(chan string, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	s := &Server{Handler: store}
	go func() { errc <- s.Serve(ctx, ln) }()
	c := dialRaw(t, ln.Addr().String())
	c.send(testMsg("CX1"))
	<-store.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve() = %v, want context.Canceled", err)
	}
	if ack, err := c.read(time.Second); err == nil {
		t.Errorf("got ACK %s for a message whose handler was canceled", ack.Get("MSA-1"))
	}
}

// flakyProxy forwards MLLP traffic and drops the connection instead of
// forwarding every n-th ACK: the server has stored the message but the
// client never hears so.
type flakyProxy struct {
	ln     net.Listener
	target string
	every  int64
	acks   atomic.Int64
	drops  atomic.Int64
	wg     sync.WaitGroup
}

func startFlakyProxy(t *testing.T, target string, every int64) *flakyProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{ln: ln, target: target, every: every}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go p.handle(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *flakyProxy) handle(c net.Conn) {
	defer p.wg.Done()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(s, c)
		_ = s.Close()
		close(done)
	}()
	r := NewReader(s, 0)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			break
		}
		if p.acks.Add(1)%p.every == 0 {
			p.drops.Add(1)
			break
		}
		if err := WriteFrame(c, f); err != nil {
			break
		}
	}
	_ = c.Close()
	_ = s.Close()
	<-done
}

func TestClientReconnectsAfterDrop(t *testing.T) {
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store})
	proxy := startFlakyProxy(t, addr, 4)
	const clients, perClient = 3, 15
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := Dial(context.Background(), proxy.ln.Addr().String(),
				ClientOptions{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: 10, AckTimeout: 5 * time.Second})
			if err != nil {
				t.Errorf("Dial() = %v", err)
				return
			}
			defer cl.Close()
			for i := range perClient {
				id := fmt.Sprintf("rc%d-%02d", c, i)
				ack, err := cl.Send(context.Background(), testMsg(id))
				if err != nil {
					t.Errorf("Send(%s) = %v", id, err)
					continue
				}
				if ack.Get("MSA-1") != "AA" || ack.Get("MSA-2") != id {
					t.Errorf("Send(%s) ack = %s/%s", id, ack.Get("MSA-1"), ack.Get("MSA-2"))
				}
			}
		}()
	}
	wg.Wait()
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.stored) != clients*perClient {
		t.Errorf("stored %d distinct messages, want %d", len(store.stored), clients*perClient)
	}
	for id, n := range store.stored {
		if n != 1 {
			t.Errorf("message %s stored %d times", id, n)
		}
	}
	if proxy.drops.Load() == 0 || store.dups == 0 {
		t.Errorf("drops = %d, duplicates = %d: the test did not exercise resends", proxy.drops.Load(), store.dups)
	}
}

func TestClientGivesUp(t *testing.T) {
	addr, stop := startServer(t, &Server{Handler: newMemStore()})
	cl := dialClient(t, addr, ClientOptions{MaxAttempts: 2, InitialBackoff: time.Millisecond})
	stop()
	_, err := cl.Send(context.Background(), testMsg("GU1"))
	if err == nil || !strings.Contains(err.Error(), "2 attempts") {
		t.Errorf("Send() after server stop = %v, want giving up after 2 attempts", err)
	}
	if _, err := cl.Send(context.Background(), []byte("MSH|^~\\&|A\r")); !errors.Is(err, ErrNoControlID) {
		t.Errorf("Send(no MSH-10) = %v, want ErrNoControlID", err)
	}
}

func TestClientNAK(t *testing.T) {
	store := newMemStore()
	store.fail = func(string) error { return errors.New("nope") }
	addr, _ := startServer(t, &Server{Handler: store})
	cl := dialClient(t, addr, ClientOptions{})
	ack, err := cl.Send(context.Background(), testMsg("NK1"))
	var nak *NAKError
	if !errors.As(err, &nak) || nak.Code != hl7.AckApplicationError || ack == nil {
		t.Errorf("Send() = %v, %v; want ACK and *NAKError AE", ack, err)
	}
}

func TestTLS(t *testing.T) {
	serverCfg, clientCfg := testTLSConfigs(t)
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store, TLSConfig: serverCfg})
	cl := dialClient(t, addr, ClientOptions{TLSConfig: clientCfg})
	if _, err := cl.Send(context.Background(), testMsg("TLS1")); err != nil {
		t.Fatalf("Send over TLS = %v", err)
	}
	if store.stored["TLS1"] != 1 {
		t.Errorf("message not stored")
	}
}

func testTLSConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mllp-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsCarryNoMessageContent drives every server path that logs and
// checks that no message content reaches the log.
func TestLogsCarryNoMessageContent(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := newMemStore()
	store.fail = func(id string) error {
		if id == "FAIL1" {
			return errors.New("store unavailable")
		}
		return nil
	}
	q := &memQuarantine{}
	addr, stop := startServer(t, &Server{Handler: store, Quarantiner: q, Logger: logger, MaxFrameSize: 300,
		ParseOptions: hl7.ParseOptions{Strict: true}})
	c := dialRaw(t, addr)
	c.send(testMsg("OK1"))
	c.mustAck(hl7.AckApplicationAccept, "OK1")
	c.send(testMsg("OK1"))
	c.mustAck(hl7.AckApplicationAccept, "OK1")
	c.send(testMsg("FAIL1"))
	c.mustAck(hl7.AckApplicationError, "FAIL1")
	c.send([]byte("SECRETGARBAGE"))
	c.mustAck(hl7.AckApplicationReject, "")
	c.send(append(testMsg("BIG1"), []byte("NTE|1||"+strings.Repeat("SECRETNOTE", 50)+"\r")...))
	c.mustAck(hl7.AckApplicationReject, "BIG1")
	_, _ = c.nc.Write([]byte("\x0bMSH|^~\\&|SECRETPARTIAL"))
	_ = c.nc.Close()
	stop()
	out := logs.String()
	for _, secret := range []string{"DOE", "JOHN", "SECRET", "HOSP"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains message content %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "control_id=FAIL1") {
		t.Errorf("log lacks the control ID of the failed message:\n%s", out)
	}
	if len(store.stored) != 1 {
		t.Errorf("stored %d, want 1 (partial frame must not be stored)", len(store.stored))
	}
}

func TestClientReconnectsAfterIdleClose(t *testing.T) {
	store := newMemStore()
	addr, _ := startServer(t, &Server{Handler: store, IdleTimeout: 50 * time.Millisecond})
	cl := dialClient(t, addr, ClientOptions{InitialBackoff: time.Millisecond})
	for i := range 3 {
		id := fmt.Sprintf("IC%d", i)
		if _, err := cl.Send(context.Background(), testMsg(id)); err != nil {
			t.Fatalf("Send(%s) = %v", id, err)
		}
		time.Sleep(150 * time.Millisecond) // the server closes the idle connection
	}
	if len(store.stored) != 3 || store.dups != 0 {
		t.Errorf("stored %d with %d duplicates, want 3 and 0", len(store.stored), store.dups)
	}
}

func TestClientContextCanceled(t *testing.T) {
	store := newMemStore()
	store.gate = make(chan struct{})
	defer close(store.gate)
	addr, _ := startServer(t, &Server{Handler: store})
	cl := dialClient(t, addr, ClientOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.Send(ctx, testMsg("CC1"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send() = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send() returned after %v", d)
	}
}

// A batch in one frame (FHS/BHS ... BTS/FTS) is handled message by message:
// each stored, refused or quarantined on its own, and answered with one
// batch of acknowledgments in order.
func TestBatchFrameAcknowledgedMessageByMessage(t *testing.T) {
	q := &memQuarantine{}
	store := newMemStore()
	store.fail = func(id string) error {
		if id == "B2" {
			return &hl7.MessageError{Condition: hl7.ErrRequiredFieldMissing, Reason: "no usable patient identifier"}
		}
		return nil
	}
	addr, _ := startServer(t, &Server{Handler: store, Quarantiner: q, ParseOptions: hl7.ParseOptions{Strict: true}})
	c := dialRaw(t, addr)
	garbage := "MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|B3|P|2.5.1\rPID|1||x\\Q\\\r"
	batch := "FHS|^~\\&|SND|SFAC|RCV|RFAC|20240101120000\r" +
		"BHS|^~\\&|SND|SFAC|RCV|RFAC|20240101120000||||BATCH-7\r" +
		string(testMsg("B1")) + string(testMsg("B2")) + garbage + string(testMsg("B4")) +
		"BTS|4\rFTS|1\r"
	c.send([]byte(batch))
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(f), "\r"), "\r")
	if !strings.HasPrefix(lines[0], "BHS|^~\\&|RCV|RFAC|SND|SFAC|") || !strings.HasSuffix(lines[0], "|BATCH-7") {
		t.Errorf("batch ACK header = %q, want receiver and sender swapped and the batch referenced", lines[0])
	}
	if last := lines[len(lines)-1]; last != "BTS|4" {
		t.Errorf("batch ACK trailer = %q, want BTS|4", last)
	}
	var msa []string
	for _, l := range lines {
		if strings.HasPrefix(l, "MSA|") {
			msa = append(msa, strings.Join(strings.Split(l, "|")[1:3], "|"))
		}
	}
	want := []string{"AA|B1", "AE|B2", "AR|B3", "AA|B4"}
	if strings.Join(msa, " ") != strings.Join(want, " ") {
		t.Errorf("acknowledgments %v, want %v", msa, want)
	}
	if len(store.stored) != 2 || store.stored["B1"] != 1 || store.stored["B4"] != 1 {
		t.Errorf("stored %v, want B1 and B4", store.stored)
	}
	q.mu.Lock()
	if len(q.raws) != 1 || !strings.Contains(q.raws[0], "|B3|") {
		t.Errorf("quarantined %q, want the unparseable B3 alone", q.raws)
	}
	q.mu.Unlock()
	// A batch without any message is one unparseable frame.
	c.send([]byte("BHS|^~\\&|SND|SFAC\rBTS|0\r"))
	c.mustAck(hl7.AckApplicationReject, "")
}
