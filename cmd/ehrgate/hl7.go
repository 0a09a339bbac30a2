package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/events"
	"ehrgate/fhir"
	"ehrgate/hl7"
	"ehrgate/hl7/hl7store"
	"ehrgate/hl7/mllp"
	"ehrgate/hl7/tofhir"
	"ehrgate/store/sqlite"
)

// DefaultMLLPAddr is where demo listens for HL7 v2 by default.
const DefaultMLLPAddr = "127.0.0.1:2575"

// newHL7Cmd is `ehrgate hl7`: send files over MLLP, or run a listener.
func newHL7Cmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hl7",
		Short: "HL7 v2 over MLLP: send message files, or listen and store",
	}
	cmd.AddCommand(newHL7SendCmd(a), newHL7ListenCmd(a))
	return cmd
}

func newHL7SendCmd(a *app) *cobra.Command {
	var (
		to, caFile, serverName string
		useTLS, asJSON         bool
		attempts               int
		ackTimeout             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send FILE|DIR... --to HOST:PORT",
		Short: "Send HL7 v2 messages (single, batch FHS/BHS or concatenated; directories recursively) and wait for each ACK",
		Long: `Sends every message of every file over one MLLP connection, in order, waiting
for each acknowledgment. Files may hold one message, several concatenated, or an
FHS/BHS batch; directories are walked (sorted, recursively). A lost connection or
ACK timeout reconnects and resends the same message with backoff (the receiver
detects duplicates by MSH-10). Exit status 0 when every message was accepted,
3 when some were answered with an error code, 1 when sending failed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			if to == "" {
				return errors.New("--to HOST:PORT is required")
			}
			msgs, err := collectMessages(args)
			if err != nil {
				return err
			}
			opts := mllp.ClientOptions{AckTimeout: ackTimeout, MaxAttempts: attempts, Logger: a.log}
			if useTLS || caFile != "" {
				cfg, err := clientTLS(caFile, serverName)
				if err != nil {
					return err
				}
				opts.TLSConfig = cfg
			}
			ctx := cmd.Context()
			c, err := mllp.Dial(ctx, to, opts)
			if err != nil {
				return err
			}
			defer c.Close()
			type result struct {
				File      string `json:"file"`
				ControlID string `json:"controlId"`
				Ack       string `json:"ack"`
				Error     string `json:"error,omitempty"`
			}
			var results []result
			accepted, naks := 0, 0
			for _, m := range msgs {
				r := result{File: m.file, ControlID: m.controlID}
				ack, err := c.Send(ctx, m.data)
				var nak *mllp.NAKError
				switch {
				case errors.As(err, &nak):
					r.Ack, naks = string(nak.Code), naks+1
					r.Error = ack.Get("MSA-3") // the receiver's error text; never message content
				case err != nil:
					return fmt.Errorf("sending %s (%s): %w", m.controlID, m.file, err)
				default:
					r.Ack, accepted = ack.Get("MSA-1"), accepted+1
				}
				results = append(results, r)
				if !asJSON {
					fmt.Fprintf(a.stdout, "%s %s %s\n", r.Ack, r.ControlID, r.File)
				}
			}
			if asJSON {
				if err := json.NewEncoder(a.stdout).Encode(struct {
					Sent     int      `json:"sent"`
					Accepted int      `json:"accepted"`
					Rejected int      `json:"rejected"`
					Messages []result `json:"messages"`
				}{len(msgs), accepted, naks, results}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "%d sent, %d accepted, %d not accepted\n", len(msgs), accepted, naks)
			}
			if naks > 0 {
				return &exitError{code: 3, msg: fmt.Sprintf("%d message(s) not accepted", naks)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "receiver HOST:PORT")
	f.BoolVar(&useTLS, "tls", false, "MLLP over TLS (system roots)")
	f.StringVar(&caFile, "tls-ca", "", "PEM file of CA certificates to trust (implies --tls)")
	f.StringVar(&serverName, "tls-server-name", "", "TLS server name (default: the host of --to)")
	f.IntVar(&attempts, "max-attempts", 5, "attempts per message (first included) on connection loss or ACK timeout")
	f.DurationVar(&ackTimeout, "ack-timeout", 30*time.Second, "wait for each ACK")
	f.BoolVar(&asJSON, "json", false, "print the outcome as JSON")
	return cmd
}

type fileMessage struct {
	file, controlID string
	data            []byte
}

// collectMessages reads files and directories (recursively, sorted) and
// splits each file into messages.
func collectMessages(args []string) ([]fileMessage, error) {
	var files []string
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && filepath.Base(path)[0] != '.' {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", arg, err)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	var out []fileMessage
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		parts := hl7.SplitBatch(b)
		if len(parts) == 0 {
			return nil, fmt.Errorf("%s: no HL7 message (no MSH segment)", f)
		}
		for i, p := range parts {
			m, err := hl7.Parse(p, hl7.ParseOptions{})
			if err != nil {
				return nil, fmt.Errorf("%s: message %d: %w", f, i+1, err)
			}
			if m.ControlID() == "" {
				return nil, fmt.Errorf("%s: message %d has no MSH-10 control ID", f, i+1)
			}
			out = append(out, fileMessage{file: f, controlID: m.ControlID(), data: p})
		}
	}
	return out, nil
}

func clientTLS(caFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func newHL7ListenCmd(a *app) *cobra.Command {
	var o mllpOptions
	cmd := &cobra.Command{
		Use:   "listen --mllp-addr HOST:PORT --data DIR",
		Short: "Run only the store-backed MLLP listener (store-and-forward, ACK after commit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := sqlite.OpenDir(ctx, a.cfg.Data)
			if err != nil {
				return fmt.Errorf("opening the store in %s: %w", a.cfg.Data, err)
			}
			defer st.Close()
			return runMLLP(ctx, a.log, st, o, events.NewBus(events.BusOptions{}), func(addr net.Addr) {
				fmt.Fprintf(a.stdout, "mllp: listening on %s (connection %q)\n", addr, o.Connection)
			})
		},
	}
	addDataFlag(cmd.Flags())
	addMLLPFlags(cmd, &o, DefaultMLLPAddr)
	return cmd
}

// mllpOptions are the MLLP listener settings shared by serve, demo and
// hl7 listen.
type mllpOptions struct {
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

// addMLLPFlags registers --mllp-addr, --hl7-connection, --mllp-ack-mode,
// --mllp-tls-cert and --mllp-tls-key on cmd.
func addMLLPFlags(cmd *cobra.Command, o *mllpOptions, defaultAddr string) {
	f := cmd.Flags()
	f.StringVar(&o.Addr, "mllp-addr", defaultAddr, "HL7 v2 MLLP listen address HOST:PORT (empty: no listener)")
	f.StringVar(&o.Connection, "hl7-connection", hl7store.DefaultConnection, "connection name HL7-sourced resources are stored under")
	f.StringVar(&o.AckMode, "mllp-ack-mode", "original", "acknowledgment mode: original (ACK after commit), enhanced, aa-only (no guarantee)")
	f.StringVar(&o.TLSCert, "mllp-tls-cert", "", "PEM certificate for MLLP over TLS (with --mllp-tls-key)")
	f.StringVar(&o.TLSKey, "mllp-tls-key", "", "PEM private key for MLLP over TLS")
}

// runMLLP serves the store-backed MLLP listener until ctx ends, then shuts
// it down gracefully (in-flight messages are stored and ACKed, what was
// ACKed is converted). Messages are ACKed once durably logged and converted
// to FHIR right behind (also those a previous process logged but did not
// convert). Events go to bus (may be nil). ready, if set, is called with the
// bound address.
func runMLLP(ctx context.Context, log *slog.Logger, st *sqlite.Store, o mllpOptions, bus *events.Bus, ready func(net.Addr)) error {
	var mode mllp.AckMode
	switch o.AckMode {
	case "", "original":
		mode = mllp.AckOriginal
	case "enhanced":
		mode = mllp.AckEnhanced
	case "aa-only", "immediate":
		mode = mllp.AckImmediate
	default:
		return fmt.Errorf("--mllp-ack-mode %q: want original, enhanced or aa-only", o.AckMode)
	}
	// Deferred: the ACK follows the commit of the raw message (durable
	// store-and-forward); conversion runs right behind it from the log
	// (hl7store package comment, hl7/README.md for the numbers).
	h := hl7store.New(st, hl7store.Options{Connection: o.Connection, Bus: bus, Logger: log, Deferred: true,
		Convert: o.Feed, KeepUnsupported: o.KeepUnsupported})
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
		_ = h.Run(serveCtx, 100*time.Millisecond)
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
	if _, perr := h.ProcessPending(sctx); perr != nil { // convert what was just ACKed
		log.Warn("converting the last HL7 messages; they stay in the log for the next start", "error", perr)
	}
	if err != nil && !errors.Is(err, mllp.ErrServerClosed) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// patientSearcher is the part of a FHIR client an event-driven refresh
// needs (refresh.Source and *fhir.Client have it).
type patientSearcher interface {
	SearchAll(ctx context.Context, typ string, q *fhir.Query, fn fhir.PageFunc) error
}

// refreshByIdentifier is the body of an events.Refresher for one FHIR
// connection: it resolves identifier to the connection's Patient ids with
// Patient?identifier=<system>|<value> and refreshes each (normally one)
// with refreshPatient (e.g. a refresh.Syncer's Patient). A patient the EHR
// does not know is not an error: the HL7 feed may run ahead of it.
func refreshByIdentifier(ctx context.Context, src patientSearcher, refreshPatient func(ctx context.Context, patientID string) error, identifier fhir.Identifier) error {
	if identifier.Value == "" {
		return nil
	}
	token := identifier.Value
	if identifier.System != "" {
		token = identifier.System + "|" + identifier.Value
	}
	var ids []string
	err := src.SearchAll(ctx, "Patient", fhir.NewQuery().Set("identifier", token), func(ctx context.Context, b *fhir.Bundle, _ string) error {
		for _, e := range b.Entry {
			if e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match" {
				continue
			}
			if h, err := fhir.ParseHeader(e.Resource); err == nil && h.ResourceType == "Patient" && h.ID != "" {
				ids = append(ids, h.ID)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finding the patient by identifier: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := refreshPatient(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("refreshing patient %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// eventsRuntime is the event bus with its running subscribers.
type eventsRuntime struct {
	bus      *events.Bus
	webhooks *events.Webhooks     // nil without hooks
	refresh  *events.RefreshQueue // nil without a refresher
	done     chan struct{}        // closed when ctx ends: ends SSE streams
}

// startEvents creates the bus and runs its subscribers until ctx ends:
// webhooks when hooks are configured, event-driven refresh of fhirConns
// when r is not nil.
func startEvents(ctx context.Context, log *slog.Logger, hooks []events.Webhook, r events.Refresher, fhirConns []string) *eventsRuntime {
	e := &eventsRuntime{bus: events.NewBus(events.BusOptions{}), done: make(chan struct{})}
	context.AfterFunc(ctx, func() { close(e.done) })
	if len(hooks) > 0 {
		e.webhooks = events.NewWebhooks(events.WebhookOptions{Hooks: hooks, Logger: log})
		e.bus.Subscribe(e.webhooks)
		go e.webhooks.Run(ctx)
	}
	if r != nil && len(fhirConns) > 0 {
		e.refresh = events.NewRefreshQueue(r, events.RefreshOptions{Connections: fhirConns, Logger: log})
		e.bus.Subscribe(e.refresh)
		go e.refresh.Run(ctx)
	}
	return e
}

// mounts are the event routes for server.Options.Mounts.
func (e *eventsRuntime) mounts() map[string]http.Handler {
	m := map[string]http.Handler{"GET /events/stream": events.SSEHandler(e.bus, events.SSEOptions{Done: e.done})}
	if e.webhooks != nil {
		m["GET /events/webhooks"] = e.webhooks.LogHandler()
	}
	return m
}
