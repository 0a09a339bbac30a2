package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"ehrgate/gateway"
	"ehrgate/refresh"
	"ehrgate/store"
	_ "ehrgate/store/postgres" // registers postgres:// stores
	_ "ehrgate/store/sqlite"   // registers sqlite: stores
)

// cliGateway is the gateway with the store the CLI opened for it.
type cliGateway struct {
	*gateway.Gateway
}

// Close releases the gateway, then closes the store.
func (g cliGateway) Close() error { return errors.Join(g.Gateway.Close(), g.Store().Close()) }

// openStore opens the configured store (--store, EHRGATE_STORE, store:, or
// the embedded store in --data).
func (a *app) openStore(ctx context.Context, o store.OpenOptions) (store.Backend, error) {
	st, err := store.Open(ctx, a.cfg.StoreURL(), o)
	if err != nil {
		if errors.Is(err, store.ErrNoStore) {
			return nil, fmt.Errorf("%w: check --store or --data", err)
		}
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	return st, nil
}

// openGateway opens the store (creating and migrating it as needed) and the
// keyring, and builds the gateway over them.
func (a *app) openGateway(ctx context.Context) (cliGateway, error) {
	src, err := openKeyring(a)
	if err != nil {
		return cliGateway{}, err
	}
	st, err := a.openStore(ctx, store.OpenOptions{})
	if err != nil {
		return cliGateway{}, err
	}
	g, err := gateway.New(ctx, gateway.Options{Config: a.cfg, Store: st, Keyring: src.Ring, Logger: a.log, Getenv: a.getenv})
	if err != nil {
		st.Close()
		return cliGateway{}, err
	}
	return cliGateway{g}, nil
}

// getenv reads the app's environment, then the process's.
func (a *app) getenv(name string) string {
	if v := keysEnv(a.env)(name); v != "" {
		return v
	}
	return os.Getenv(name)
}

// sharedStore reports whether the configured store is shared by several
// hosts (PostgreSQL), where a key-encryption key generated into one host's
// data directory would leave the others unable to decrypt.
func (a *app) sharedStore() bool {
	scheme, _, err := store.ParseURL(a.cfg.StoreURL())
	return err == nil && scheme != "sqlite"
}

// printListen prints where a gateway listener is, as users and tests read it.
func printListen(w io.Writer, what string, addr net.Addr, ackMode string) {
	switch what {
	case "http":
		fmt.Fprintf(w, "dashboard: http://%s/  (metrics at /metrics)\n", addr)
	case "mllp":
		if ackMode == "" {
			ackMode = "original"
		}
		fmt.Fprintf(w, "hl7 v2 mllp: %s (ack mode %s)\n", addr, ackMode)
	}
}

// mllpFromConfig fills MLLP options from the configuration where the flags
// were not set.
func mllpFromConfig(cmd *cobra.Command, o *gateway.MLLPOptions, c gateway.MLLPOptions) {
	set := func(flag string, dst *string, v string) {
		if !cmd.Flags().Changed(flag) && v != "" {
			*dst = v
		}
	}
	set("mllp-addr", &o.Addr, c.Addr)
	set("hl7-connection", &o.Connection, c.Connection)
	set("mllp-ack-mode", &o.AckMode, c.AckMode)
	set("mllp-tls-cert", &o.TLSCert, c.TLSCert)
	set("mllp-tls-key", &o.TLSKey, c.TLSKey)
	o.Feed, o.KeepUnsupported = c.Feed, c.KeepUnsupported
}

func printSummary(w io.Writer, conn string, s refresh.Summary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	types := make([]string, 0, len(s.Resources))
	total := 0
	for t, n := range s.Resources {
		types = append(types, t)
		total += n
	}
	sort.Strings(types)
	fmt.Fprintf(w, "synced %s: %d patients, %d resources in %.1fs\n", conn, s.Patients, total, float64(s.DurationMS)/1000)
	for _, t := range types {
		fmt.Fprintf(w, "  %-20s %7d\n", t, s.Resources[t])
	}
	fmt.Fprintf(w, "new %d, updated %d, unchanged %d, errors %d, quarantined %d\n", s.New, s.Updated, s.Unchanged, s.Errors, s.Quarantined)
	return nil
}
