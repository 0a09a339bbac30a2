package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"ehrgate/config"
	"ehrgate/events"
	"ehrgate/hl7/hl7store"
	"ehrgate/hl7/mllp"
	"ehrgate/hl7/tofhir"
)

// MLLPOptions are the HL7 v2 MLLP listener's settings.
type MLLPOptions struct {
	Addr       string // HOST:PORT; "" = no listener
	Connection string // store connection name of HL7-sourced data
	AckMode    string // original, enhanced, aa-only
	TLSCert    string
	TLSKey     string
	// Feed is what this site's feed does differently (from the hl7: section
	// of the configuration): authorities, identifier rules, time zone.
	Feed tofhir.Options
	// KeepUnsupported acknowledges AA and keeps unconverted the message
	// types ehrgate does not convert (default: AR, kept).
	KeepUnsupported bool
}

// MLLPOptionsFromConfig returns the listener settings of the hl7: section
// of a configuration that Validate accepted.
func MLLPOptionsFromConfig(c config.HL7) MLLPOptions {
	o := MLLPOptions{Addr: c.MLLPAddr, Connection: c.Connection, AckMode: c.AckMode, TLSCert: c.TLSCert, TLSKey: c.TLSKey,
		Feed: tofhir.Options{Authorities: c.Authorities, DefaultAuthority: c.DefaultAuthority,
			RequireAuthority: c.RequireAuthority, Placeholders: c.PlaceholderIdentifiers, Charset: c.Charset},
		KeepUnsupported: c.Unsupported == "keep",
	}
	if c.IdentifierPattern != "" {
		o.Feed.IdentifierPattern = regexp.MustCompile(c.IdentifierPattern) // Validate compiled it
	}
	if c.TimeZone != "" {
		o.Feed.Location, _ = time.LoadLocation(c.TimeZone)
	}
	return o
}

// StartMLLP runs the MLLP listener in the background until ctx ends, its
// events on ev's bus (ev may be nil). ready, if set, is called with the
// bound address once listening; a listener that cannot start or fails is
// reported on errc.
func (g *Gateway) StartMLLP(ctx context.Context, o MLLPOptions, ev *Events, ready func(net.Addr), errc chan<- error) {
	var bus *events.Bus
	if ev != nil {
		bus = ev.Bus
	}
	conn := o.Connection
	if conn == "" {
		conn = hl7store.DefaultConnection
	}
	g.mu.Lock()
	g.hl7opts[conn] = o
	g.mu.Unlock()
	var logged func()
	if q := g.jobs.queue; q != nil {
		// Conversion runs as jobs, on whichever process is free: the
		// listener asks for one after logging messages.
		logged = g.startHL7Kicker(ctx, q, conn).kick
	}
	go func() {
		if err := runMLLP(ctx, g.log, g.store, o, bus, ready, logged); err != nil {
			errc <- err
		}
	}()
}

// RunMLLP serves the store-backed MLLP listener until ctx ends, then shuts
// it down gracefully (in-flight messages are stored and ACKed, what was
// ACKed is converted). Messages are ACKed once durably logged and converted
// to FHIR right behind (also those a previous process logged but did not
// convert). Events go to bus (may be nil). ready, if set, is called with the
// bound address.
func RunMLLP(ctx context.Context, log *slog.Logger, st hl7store.Backend, o MLLPOptions, bus *events.Bus, ready func(net.Addr)) error {
	return runMLLP(ctx, log, st, o, bus, ready, nil)
}

// runMLLP is RunMLLP; with logged set, messages are converted elsewhere
// (conversion jobs) and logged is called after each is durably logged.
func runMLLP(ctx context.Context, log *slog.Logger, st hl7store.Backend, o MLLPOptions, bus *events.Bus, ready func(net.Addr), logged func()) error {
	var mode mllp.AckMode
	switch o.AckMode {
	case "", "original":
		mode = mllp.AckOriginal
	case "enhanced":
		mode = mllp.AckEnhanced
	case "aa-only", "immediate":
		mode = mllp.AckImmediate
	default:
		return fmt.Errorf("mllp ack mode %q: want original, enhanced or aa-only", o.AckMode)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Deferred: the ACK follows the commit of the raw message (durable
	// store-and-forward); conversion runs right behind it from the log
	// (hl7store package comment, hl7/README.md for the numbers).
	h := hl7store.New(st, hl7store.Options{Connection: o.Connection, Bus: bus, Logger: log, Deferred: true,
		Convert: o.Feed, KeepUnsupported: o.KeepUnsupported, Logged: logged, AckMode: mode})
	srv := &mllp.Server{Handler: h, Quarantiner: h, AckMode: mode, Logger: log}
	if o.TLSCert != "" || o.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return fmt.Errorf("loading MLLP TLS key pair: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("mllp: listening on %s: %w", o.Addr, err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	convDone := make(chan struct{})
	go func() { // also converts what a previous run stored but did not convert
		defer close(convDone)
		if logged == nil {
			_ = h.Run(serveCtx, 100*time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		stop()
	}
	err = <-done
	stop() // the listener is closed: stop the background converter, then finish its work
	<-convDone
	if logged != nil {
		logged() // the conversion jobs take what was just ACKed
	} else if _, perr := h.ProcessPending(sctx); perr != nil { // convert what was just ACKed
		log.Warn("converting the last HL7 messages; they stay in the log for the next start", "error", perr)
	}
	if err != nil && !errors.Is(err, mllp.ErrServerClosed) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
