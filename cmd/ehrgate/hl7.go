package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/events"
	"ehrgate/gateway"
	"ehrgate/hl7"
	"ehrgate/hl7/hl7store"
	"ehrgate/hl7/mllp"
	"ehrgate/store"
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
	var o gateway.MLLPOptions
	cmd := &cobra.Command{
		Use:   "listen --mllp-addr HOST:PORT --data DIR",
		Short: "Run only the store-backed MLLP listener (store-and-forward, ACK after commit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			mllpFromConfig(cmd, &o, gateway.MLLPOptionsFromConfig(a.cfg.HL7))
			ctx := cmd.Context()
			st, err := a.openStore(ctx, store.OpenOptions{})
			if err != nil {
				return err
			}
			defer st.Close()
			return gateway.RunMLLP(ctx, a.log, st, o, events.NewBus(events.BusOptions{}), func(addr net.Addr) {
				fmt.Fprintf(a.stdout, "mllp: listening on %s (connection %q)\n", addr, o.Connection)
			})
		},
	}
	addDataFlag(cmd.Flags())
	addMLLPFlags(cmd, &o, DefaultMLLPAddr)
	return cmd
}

// addMLLPFlags registers --mllp-addr, --hl7-connection, --mllp-ack-mode,
// --mllp-tls-cert and --mllp-tls-key on cmd.
func addMLLPFlags(cmd *cobra.Command, o *gateway.MLLPOptions, defaultAddr string) {
	f := cmd.Flags()
	f.StringVar(&o.Addr, "mllp-addr", defaultAddr, "HL7 v2 MLLP listen address HOST:PORT (empty: no listener)")
	f.StringVar(&o.Connection, "hl7-connection", hl7store.DefaultConnection, "connection name HL7-sourced resources are stored under")
	f.StringVar(&o.AckMode, "mllp-ack-mode", "original", "acknowledgment mode: original (ACK after commit), enhanced, aa-only (no guarantee)")
	f.StringVar(&o.TLSCert, "mllp-tls-cert", "", "PEM certificate for MLLP over TLS (with --mllp-tls-key)")
	f.StringVar(&o.TLSKey, "mllp-tls-key", "", "PEM private key for MLLP over TLS")
}
