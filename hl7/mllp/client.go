package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"ehrgate/hl7"
)

// ErrNoControlID is returned by Send for a message without MSH-10, whose
// ACK could not be matched.
var ErrNoControlID = errors.New("mllp: message has no control ID (MSH-10)")

// NAKError is returned by Send together with the ACK when the receiver
// answered with an error or reject code (AE, AR, CE, CR). Send does not
// retry those: the receiver is up and has decided.
type NAKError struct {
	Code hl7.AckCode
}

// Error implements error.
func (e *NAKError) Error() string { return "mllp: message not accepted: " + string(e.Code) }

// ClientOptions configure a Client. Zero values select the defaults.
type ClientOptions struct {
	// TLSConfig, when non-nil, makes the client speak MLLP over TLS.
	TLSConfig *tls.Config
	// DialTimeout bounds one connection attempt (default 10s).
	DialTimeout time.Duration
	// AckTimeout bounds the wait for the ACK of one attempt (default 30s);
	// on expiry the connection is dropped and the message resent.
	AckTimeout time.Duration
	// MaxAttempts is the total number of attempts per Send, first included
	// (default 5).
	MaxAttempts int
	// InitialBackoff is the pause before the first retry (default 100ms);
	// it doubles, with jitter, up to MaxBackoff (default 10s).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxFrameSize bounds an ACK frame (default DefaultMaxFrameSize).
	MaxFrameSize int
	// WaitForApplicationAck makes Send skip a commit accept (CA) and return
	// the application acknowledgment that follows in enhanced mode.
	WaitForApplicationAck bool
	// DialContext replaces net.Dialer.DialContext (for tests and proxies).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection events; never message content.
	Logger *slog.Logger
}

// Client sends messages over one MLLP connection, reconnecting as needed.
// Send calls are serialized (MLLP is one message at a time per
// connection); use several Clients for parallelism. Safe for concurrent use.
type Client struct {
	addr string
	opts ClientOptions

	mu   sync.Mutex
	conn net.Conn
	rd   *Reader
}

// Dial returns a Client for addr after connecting once.
func Dial(ctx context.Context, addr string, opts ClientOptions) (*Client, error) {
	c := &Client{addr: addr, opts: opts}
	if c.opts.DialTimeout <= 0 {
		c.opts.DialTimeout = 10 * time.Second
	}
	if c.opts.AckTimeout <= 0 {
		c.opts.AckTimeout = 30 * time.Second
	}
	if c.opts.MaxAttempts <= 0 {
		c.opts.MaxAttempts = 5
	}
	if c.opts.InitialBackoff <= 0 {
		c.opts.InitialBackoff = 100 * time.Millisecond
	}
	if c.opts.MaxBackoff <= 0 {
		c.opts.MaxBackoff = 10 * time.Second
	}
	if c.opts.Logger == nil {
		c.opts.Logger = slog.New(slog.DiscardHandler)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) connect(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.opts.DialContext != nil {
		conn, err = c.opts.DialContext(dctx, "tcp", c.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", c.addr)
	}
	if err != nil {
		return fmt.Errorf("dialing %s: %w", c.addr, err)
	}
	if c.opts.TLSConfig != nil {
		cfg := c.opts.TLSConfig
		if cfg.ServerName == "" {
			// As tls.Dial does: verify the certificate against the host dialed.
			cfg = cfg.Clone()
			if host, _, err := net.SplitHostPort(c.addr); err == nil {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close()
			return fmt.Errorf("tls handshake with %s: %w", c.addr, err)
		}
		conn = tc
	}
	c.conn = conn
	c.rd = NewReader(conn, c.opts.MaxFrameSize)
	return nil
}

func (c *Client) dropConn() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.rd = nil, nil
	}
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.rd = nil, nil
	return err
}

// Send sends msg and waits for the ACK whose MSA-2 matches its MSH-10,
// ignoring others (late ACKs of earlier attempts). On connection loss or
// ACK timeout it reconnects and resends the same bytes, with backoff, up to
// MaxAttempts — safe because the server detects duplicates by control ID.
// A positive ACK returns (ack, nil); AE/AR/CE/CR return (ack, *NAKError).
func (c *Client) Send(ctx context.Context, msg []byte) (*hl7.Message, error) {
	m, err := hl7.Parse(msg, hl7.ParseOptions{})
	if err != nil {
		return nil, fmt.Errorf("sending message: %w", err)
	}
	id := m.ControlID()
	if id == "" {
		return nil, ErrNoControlID
	}
	frame := AppendFrame(make([]byte, 0, len(msg)+3), msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	backoff := c.opts.InitialBackoff
	for attempt := 1; ; attempt++ {
		ack, err := c.try(ctx, frame, id)
		if err == nil {
			if code := hl7.AckCode(ack.Get("MSA-1")); code.IsError() {
				return ack, &NAKError{Code: code}
			}
			return ack, nil
		}
		c.dropConn()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sending message %s: %w", id, ctx.Err())
		}
		if attempt >= c.opts.MaxAttempts {
			return nil, fmt.Errorf("sending message %s: giving up after %d attempts: %w", id, attempt, err)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		c.opts.Logger.Info("mllp send failed; retrying", "control_id", id, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("sending message %s: %w", id, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, c.opts.MaxBackoff)
	}
}

func (c *Client) try(ctx context.Context, frame []byte, id string) (*hl7.Message, error) {
	if c.conn == nil {
		if err := c.connect(ctx); err != nil {
			return nil, err
		}
	}
	conn := c.conn
	deadline := time.Now().Add(c.opts.AckTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(frame); err != nil {
		return nil, fmt.Errorf("writing frame: %w", err)
	}
	for {
		raw, err := c.rd.ReadFrame()
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || (errors.Is(err, ErrPartialFrame) && !errors.Is(err, io.ErrUnexpectedEOF)) {
				continue
			}
			return nil, fmt.Errorf("reading ACK: %w", err)
		}
		ack, err := hl7.Parse(raw, hl7.ParseOptions{})
		if err != nil || ack.Get("MSA-2") != id {
			continue // garbage or the ACK of an earlier attempt
		}
		if c.opts.WaitForApplicationAck && hl7.AckCode(ack.Get("MSA-1")) == hl7.AckCommitAccept {
			continue
		}
		return ack, nil
	}
}
