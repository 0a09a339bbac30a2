package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"ehrgate/hl7"
)

// Handler is the durable-store hook of the Server.
//
// HandleMessage must return nil only once msg is durably stored (committed,
// fsynced): in original and enhanced mode the sender is told AA/CA as soon
// as it returns nil and will then discard its copy. It returns ErrDuplicate
// (possibly wrapped) when a message with the same identity (sending
// application, facility and MSH-10 control ID) was stored before; the server
// then acknowledges positively without storing again, which is what makes a
// sender's retries after a lost ACK safe. Any other error makes the server
// answer AE (CE in enhanced mode) so that the sender keeps the message and
// retries; the error text is logged (so it must not carry message content),
// never sent.
//
// A Handler that has durably kept a message but refuses it (it breaks the
// acceptance rules, or its type is not converted) returns an error holding
// an *hl7.MessageError (errors.As): the server answers with its code (AE,
// or AR when it can never succeed) and an ERR segment carrying its
// condition, location and user-safe reason. In enhanced mode the commit
// acknowledgment is CA (the message is kept) and the refusal is the
// application acknowledgment.
//
// HandleMessage is called concurrently for different connections (at most
// Server.QueueSize at once) and sequentially, in arrival order, for messages
// of one connection. The same message can arrive on two connections at once
// (a client that timed out and resent while the first attempt was still
// being stored), so duplicate detection must be atomic, e.g. a unique key. msg and its bytes may be retained. ctx is canceled when
// the server is stopped forcefully.
type Handler interface {
	HandleMessage(ctx context.Context, msg *hl7.Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg *hl7.Message) error

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, msg *hl7.Message) error { return f(ctx, msg) }

// Processor is an optional ability of a Handler, used in enhanced mode only:
// after the commit acknowledgment (CA) the server calls ProcessMessage and
// sends the application acknowledgment, AA when it returns nil and AE
// otherwise. Handlers without it get AA right after CA.
type Processor interface {
	ProcessMessage(ctx context.Context, msg *hl7.Message) error
}

// Quarantiner keeps frames that could not be parsed so nothing is lost.
// reason never contains message content. If Quarantine fails the server
// answers AE instead of AR so the sender keeps the message.
type Quarantiner interface {
	Quarantine(ctx context.Context, raw []byte, reason string) error
}

// ErrDuplicate is returned by a Handler for a message it has already stored.
var ErrDuplicate = errors.New("mllp: duplicate message")

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("mllp: server closed")

// AckMode selects when and how the server acknowledges.
type AckMode int

const (
	// AckOriginal is HL7 original acknowledgment mode, store-and-forward:
	// AA after Handler has durably stored the message, AE when it failed,
	// AR for an unparseable message. No message is lost: until AA the
	// sender still owns it.
	AckOriginal AckMode = iota
	// AckEnhanced is HL7 enhanced mode: a commit acknowledgment (CA, CE or
	// CR) once Handler returned, then an application acknowledgment (AA or
	// AE, see Processor) on the same connection. MSH-15 and MSH-16 (AL, NE,
	// ER, SU; empty means AL) decide whether each is sent.
	AckEnhanced
	// AckImmediate answers AA as soon as a frame is read, before Handler
	// runs, for senders that cannot cope with anything else. Trade-off:
	// if Handler then fails, or the process dies, the message is lost — the
	// sender has already discarded it. Failures are logged at error level
	// with the control ID. Unparseable frames are quarantined and also get
	// AA (AR would stall such senders).
	AckImmediate
)

// String names the mode.
func (m AckMode) String() string {
	switch m {
	case AckOriginal:
		return "original"
	case AckEnhanced:
		return "enhanced"
	case AckImmediate:
		return "aa-only"
	}
	return fmt.Sprintf("AckMode(%d)", int(m))
}

// Default server settings.
const (
	DefaultQueueSize    = 64
	DefaultIdleTimeout  = 10 * time.Minute
	DefaultWriteTimeout = 30 * time.Second
)

// Server is an MLLP listener. Set the fields, then call ListenAndServe or
// Serve; do not change them afterwards. The zero values of optional fields
// select the defaults documented on each.
type Server struct {
	// Addr is the TCP address for ListenAndServe, e.g. ":2575".
	Addr string
	// TLSConfig, when non-nil, makes the server speak MLLP over TLS.
	TLSConfig *tls.Config
	// Handler stores messages; required.
	Handler Handler
	// Quarantiner, optional, receives frames that fail to parse.
	Quarantiner Quarantiner
	// AckMode selects the acknowledgment protocol (default AckOriginal).
	AckMode AckMode
	// ParseOptions apply to incoming messages (default lenient).
	ParseOptions hl7.ParseOptions
	// MaxFrameSize bounds one message (default DefaultMaxFrameSize). A
	// larger frame is discarded up to its end block and answered AR; the
	// connection stays open.
	MaxFrameSize int
	// IdleTimeout closes a connection that sends nothing for that long
	// (default DefaultIdleTimeout; negative disables). It also bounds the
	// time to receive one frame.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one ACK (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// QueueSize is the most messages being handled at once across all
	// connections (default DefaultQueueSize). A connection that has read a
	// frame waits for a slot and reads nothing more meanwhile, so TCP flow
	// control slows the sender: back-pressure, never dropping. Each
	// connection holds at most one frame while it waits.
	QueueSize int
	// Logger receives connection-level events; never message content.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock for ACK timestamps (default time.Now).
	Now func() time.Time

	initOnce  sync.Once
	sem       chan struct{}
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	cancels   map[*context.CancelFunc]struct{}
	closed    bool
	wg        sync.WaitGroup
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		n := s.QueueSize
		if n <= 0 {
			n = DefaultQueueSize
		}
		s.sem = make(chan struct{}, n)
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*serverConn]struct{})
		s.cancels = make(map[*context.CancelFunc]struct{})
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// ListenAndServe listens on s.Addr and serves until ctx is done or Shutdown
// is called.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln (wrapping it in TLS when TLSConfig is
// set) until ctx is done — then it closes ln and every connection and
// cancels running handlers — or Shutdown is called. It returns after all of
// its connections have finished, with ctx.Err() or ErrServerClosed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		_ = ln.Close()
		return errors.New("mllp: Server.Handler is nil")
	}
	s.init()
	if s.TLSConfig != nil {
		ln = tls.NewListener(ln, s.TLSConfig)
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.cancels[&cancel] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		delete(s.cancels, &cancel)
		s.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { s.closeNow() })
	defer stop()

	var local sync.WaitGroup
	defer local.Wait()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accepting connection: %w", err)
			}
			// Transient (EMFILE, aborted handshake...): back off and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("mllp accept error; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := &serverConn{nc: nc}
		if !s.track(c) {
			_ = nc.Close()
			return ErrServerClosed
		}
		local.Add(1)
		go func() {
			defer local.Done()
			defer s.wg.Done()
			s.serveConn(hctx, c)
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// connections that are waiting for a message, lets connections that are
// handling one finish it and send the ACK, and waits for all connection
// goroutines. A frame only partly received is abandoned (never
// acknowledged, so the sender resends it). If ctx ends first, Shutdown
// closes every connection, cancels running handlers and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		c.interrupt()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeNow()
		return fmt.Errorf("shutting down mllp server: %w", ctx.Err())
	}
}

// closeNow closes listeners and connections and cancels handler contexts.
func (s *Server) closeNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		_ = c.nc.Close()
	}
	for cancel := range s.cancels {
		(*cancel)()
	}
}

// serverConn tracks whether a connection is idle (waiting for a frame) so
// Shutdown can interrupt it without cutting off a message being handled.
type serverConn struct {
	nc      net.Conn
	mu      sync.Mutex
	idle    bool
	closing bool
}

func (c *serverConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if c.idle {
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// beginRead marks the connection idle and arms the idle timeout; false means
// the server is shutting down.
func (c *serverConn) beginRead(timeout time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.idle = true
	var dl time.Time
	if timeout > 0 {
		dl = time.Now().Add(timeout)
	}
	_ = c.nc.SetReadDeadline(dl)
	return true
}

func (c *serverConn) endRead() {
	c.mu.Lock()
	c.idle = false
	c.mu.Unlock()
}

func (s *Server) serveConn(ctx context.Context, c *serverConn) {
	defer s.untrack(c)
	defer c.nc.Close()
	log := s.logger().With("remote", c.nc.RemoteAddr().String())
	log.Debug("mllp connection opened")
	idle := s.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	r := NewReader(c.nc, s.MaxFrameSize)
	for {
		if !c.beginRead(idle) {
			log.Debug("mllp connection closed for shutdown")
			return
		}
		raw, err := r.ReadFrame()
		c.endRead()
		switch {
		case err == nil:
			if !s.handleFrame(ctx, c, raw, log) {
				return
			}
		case errors.Is(err, ErrFrameTooLarge):
			log.Warn("mllp frame too large; rejected", "limit", s.MaxFrameSize)
			hdr, _ := hl7.Parse(raw, hl7.ParseOptions{})
			if !s.writeAck(c, s.ack(hdr, s.rejectCode(), hl7.ErrDataType, "message exceeds maximum size"), log) {
				return
			}
		case errors.Is(err, ErrPartialFrame) && !errors.Is(err, io.ErrUnexpectedEOF):
			log.Warn("mllp partial frame discarded: new start block before end block")
		default:
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF):
				log.Debug("mllp connection closed by peer")
			case errors.As(err, &ne) && ne.Timeout():
				log.Info("mllp connection closed: idle timeout or shutdown")
			default:
				log.Info("mllp connection closed", "err", err)
			}
			return
		}
	}
}

func (s *Server) rejectCode() hl7.AckCode {
	switch s.AckMode {
	case AckEnhanced:
		return hl7.AckCommitReject
	case AckImmediate:
		return hl7.AckApplicationAccept
	}
	return hl7.AckApplicationReject
}

func (s *Server) ack(msg *hl7.Message, code hl7.AckCode, cond hl7.ErrorCondition, text string) []byte {
	return hl7.BuildACKWith(msg, hl7.ACKOptions{Code: code, Condition: cond, Text: text, Now: s.now()})
}

// handleFrame processes one frame; false means the connection must close.
func (s *Server) handleFrame(ctx context.Context, c *serverConn, raw []byte, log *slog.Logger) bool {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-s.sem }()
	if isBatch(raw) {
		return s.handleBatch(ctx, c, raw, log)
	}
	return s.handleMessage(ctx, raw, log, func(ack []byte) bool { return s.writeAck(c, ack, log) })
}

// handleMessage processes one message and hands each acknowledgment it
// owes to emit; false means the connection must close.
func (s *Server) handleMessage(ctx context.Context, raw []byte, log *slog.Logger, emit func([]byte) bool) bool {
	msg, perr := hl7.Parse(raw, s.ParseOptions)
	if perr != nil {
		return s.reject(ctx, raw, perr, log, emit)
	}
	id := msg.ControlID()
	log = log.With("control_id", id)

	switch s.AckMode {
	case AckImmediate:
		if !emit(s.ack(msg, hl7.AckApplicationAccept, 0, "")) {
			return false
		}
		var refused *hl7.MessageError
		if err := s.Handler.HandleMessage(ctx, msg); errors.As(err, &refused) {
			log.Warn("mllp message acknowledged AA (aa-only mode) but refused and kept", "reason", refused.Error())
		} else if err != nil && !errors.Is(err, ErrDuplicate) {
			log.Error("mllp message acknowledged but not stored (aa-only mode): message lost", "err", err)
		}
		return true

	case AckEnhanced:
		err := s.Handler.HandleMessage(ctx, msg)
		if ctx.Err() != nil {
			return false
		}
		dup := errors.Is(err, ErrDuplicate)
		var refused *hl7.MessageError
		if errors.As(err, &refused) {
			err = nil // kept: commit accepted, refused by the application
		}
		commit := hl7.AckCommitAccept
		if err != nil && !dup {
			commit = hl7.AckCommitError
			log.Warn("mllp message not stored; CE sent", "err", err)
		}
		if wantAck(msg.Get("MSH-15"), commit.IsError()) {
			if !emit(s.ack(msg, commit, 0, errText(commit))) {
				return false
			}
		}
		if commit.IsError() {
			return true
		}
		if refused != nil {
			log.Info("mllp message kept but refused", "reason", refused.Error())
			if wantAck(msg.Get("MSH-16"), true) {
				return emit(hl7.BuildMessageErrorACK(msg, refused, "", s.now()))
			}
			return true
		}
		app := hl7.AckApplicationAccept
		if p, ok := s.Handler.(Processor); ok && !dup {
			if err := p.ProcessMessage(ctx, msg); err != nil {
				app = hl7.AckApplicationError
				log.Warn("mllp application processing failed; AE sent", "err", err)
			}
		}
		if wantAck(msg.Get("MSH-16"), app.IsError()) {
			return emit(s.ack(msg, app, 0, errText(app)))
		}
		return true

	default:
		code := hl7.AckApplicationAccept
		err := s.Handler.HandleMessage(ctx, msg)
		if ctx.Err() != nil {
			return false // forced stop: no ACK; the sender resends, duplicates are detected
		}
		var refused *hl7.MessageError
		if errors.As(err, &refused) {
			log.Info("mllp message kept but refused", "ack", refused.AckCode(), "reason", refused.Error())
			return emit(hl7.BuildMessageErrorACK(msg, refused, "", s.now()))
		}
		if err != nil {
			if errors.Is(err, ErrDuplicate) {
				log.Info("mllp duplicate message acknowledged without storing")
			} else {
				code = hl7.AckApplicationError
				log.Warn("mllp message not stored; AE sent", "err", err)
			}
		}
		return emit(s.ack(msg, code, 0, errText(code)))
	}
}

// isBatch reports whether a frame holds an HL7 batch (FHS/BHS ... BTS/FTS)
// rather than one message.
func isBatch(raw []byte) bool {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	return bytes.HasPrefix(raw, []byte("FHS")) || bytes.HasPrefix(raw, []byte("BHS"))
}

// handleBatch processes a batch frame message by message, each stored (or
// refused, or quarantined) on its own as if it had come alone, and answers
// with one frame: a batch of the acknowledgments (BHS, the ACKs in order,
// BTS with their count), HL7 v2.5.1 chapter 2.10.3. A batch that holds no
// message is an unparseable frame.
func (s *Server) handleBatch(ctx context.Context, c *serverConn, raw []byte, log *slog.Logger) bool {
	parts := hl7.SplitBatch(raw)
	if len(parts) == 0 {
		return s.reject(ctx, raw, errors.New("hl7: a batch without any MSH message"), log,
			func(ack []byte) bool { return s.writeAck(c, ack, log) })
	}
	var acks [][]byte
	collect := func(ack []byte) bool { acks = append(acks, ack); return true }
	for _, p := range parts {
		if !s.handleMessage(ctx, p, log, collect) {
			return false
		}
	}
	var out bytes.Buffer
	out.WriteString(batchHeader(raw, s.now()))
	for _, a := range acks {
		out.Write(bytes.TrimRight(a, "\r\n"))
		out.WriteByte('\r')
	}
	fmt.Fprintf(&out, "BTS|%d\r", len(acks))
	log.Info("mllp batch acknowledged", "messages", len(parts), "acks", len(acks))
	return s.writeAck(c, out.Bytes(), log)
}

// batchHeader is the BHS of a batch acknowledgment: sender and receiver of
// the incoming batch's header swapped, its batch control id (BHS-11) as the
// reference (BHS-12).
func batchHeader(raw []byte, now time.Time) string {
	var in []string
	for _, line := range bytes.FieldsFunc(raw, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if bytes.HasPrefix(line, []byte("BHS")) && len(line) > 3 {
			in = strings.Split(string(line), string(line[3]))
			break
		}
	}
	field := func(n int) string { // BHS-n: in[0] is "BHS", in[1] holds BHS-2
		if n-1 < len(in) && n >= 3 {
			return in[n-1]
		}
		return ""
	}
	return "BHS|^~\\&|" + field(5) + "|" + field(6) + "|" + field(3) + "|" + field(4) + "|" + now.UTC().Format("20060102150405") +
		"||||" + "|" + field(11) + "\r"
}

func errText(code hl7.AckCode) string {
	if code.IsError() {
		return "message not stored; retry later"
	}
	return ""
}

// wantAck applies MSH-15/MSH-16 (HL7 table 0155).
func wantAck(cond string, isErr bool) bool {
	switch cond {
	case "NE":
		return false
	case "ER":
		return isErr
	case "SU":
		return !isErr
	}
	return true
}

// reject handles a frame that failed to parse.
func (s *Server) reject(ctx context.Context, raw []byte, perr error, log *slog.Logger, emit func([]byte) bool) bool {
	hdr, _ := hl7.Parse(raw, hl7.ParseOptions{}) // best effort, for MSA-2 and routing fields
	if hdr != nil {
		log = log.With("control_id", hdr.ControlID())
	}
	reason := perr.Error() // positions only, never content
	code := s.rejectCode()
	text := "message could not be parsed"
	if s.Quarantiner == nil {
		log.Warn("mllp unparseable message rejected; no quarantine configured", "reason", reason, "bytes", len(raw))
	} else if err := s.Quarantiner.Quarantine(ctx, raw, reason); err != nil {
		log.Error("mllp quarantine failed; asking sender to retry", "reason", reason, "err", err)
		switch s.AckMode {
		case AckEnhanced:
			code = hl7.AckCommitError
		case AckOriginal:
			code = hl7.AckApplicationError
		}
		text = "message could not be parsed or kept; retry later"
	} else {
		log.Warn("mllp unparseable message quarantined", "reason", reason, "bytes", len(raw))
	}
	if !code.IsError() {
		text = ""
	}
	return emit(s.ack(hdr, code, hl7.ErrDataType, text))
}

func (s *Server) writeAck(c *serverConn, ack []byte, log *slog.Logger) bool {
	wt := s.WriteTimeout
	if wt <= 0 {
		wt = DefaultWriteTimeout
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(wt))
	if err := WriteFrame(c.nc, ack); err != nil {
		log.Info("mllp writing ACK failed; closing connection", "err", err)
		return false
	}
	return true
}

// Interface guards.
var _ Handler = HandlerFunc(nil)
