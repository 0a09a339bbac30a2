package main

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/config"
	"ehrgate/dashboard"
	"ehrgate/ehrsim/hl7feed"
	"ehrgate/ehrsim/smartauth"
	"ehrgate/gateway"
)

// Demo connection and client names.
const (
	demoConnection       = "demo"        // synced through SMART Backend Services
	demoLaunchConnection = "demo-launch" // filled by user launches (EHR or standalone)
	demoBackendClient    = "ehrgate-demo"
	demoLaunchClient     = "ehrgate-launch"
)

func newDemoCmd(a *app) *cobra.Command {
	var (
		f         simFlags
		once      bool
		asJSON    bool
		simAddr   string
		syncEvery time.Duration
		workers   int
		mo        gateway.MLLPOptions
		hl7Feed   bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--once --json] [--data DIR] [--http-addr HOST:PORT]",
		Short: "Start a simulated EHR, pull every chart from it, and serve the dashboard",
		Long: `demo runs the whole pipeline in one process: a simulated EHR (a FHIR R4 server
over synthetic patients behind a SMART authorization server), a sync that pulls
every patient's chart into the embedded store in --data through SMART Backend
Services (a signed JWT client assertion; ehrgate's key is created on first run and
published at /.well-known/jwks.json), and the dashboard at http://HTTP_ADDR/. The
simulated EHR knows ehrgate by that JWKS URL, as real EHRs allow, so 'ehrgate keys
rotate' takes effect without registering ehrgate again.

The simulated EHR's launch page (printed at start) launches ehrgate as a SMART app:
log in as dr.smith / password, approve, and ehrgate opens the patient in context.

With --once it syncs once, prints a summary and exits: 0 when the sync had no
errors, 3 when some fetches failed. Running it again with the same --data finds
nothing new.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			sim, err := f.newSim(a.log)
			if err != nil {
				return err
			}
			g, err := a.openGateway(ctx)
			if err != nil {
				return err
			}
			defer g.Close()
			if err := g.EnsureSigningKey(ctx); err != nil {
				return fmt.Errorf("creating the signing key: %w", err)
			}
			jwksURL, stopJWKS, err := demoJWKS(ctx, g, a.cfg.HTTPAddr, once)
			if err != nil {
				return err
			}
			defer stopJWKS()
			clients, err := demoClients(jwksURL, a.cfg.HTTPAddr)
			if err != nil {
				return err
			}
			ep, err := f.start(ctx, sim, simAddr, clients, a.log)
			if err != nil {
				return err
			}
			defer ep.stop()
			backend := config.Connection{Name: demoConnection, BaseURL: ep.base, Workers: workers, Vendor: f.vendor,
				Auth: &config.Auth{Type: config.AuthBackendServices, ClientID: demoBackendClient}}
			// The demo has no unauthenticated path: it syncs through SMART
			// Backend Services and users arrive through SMART launches.
			conns := []config.Connection{backend, {Name: demoLaunchConnection, BaseURL: ep.base, Vendor: f.vendor,
				Auth: &config.Auth{Type: config.AuthLaunch, ClientID: demoLaunchClient, Method: "none",
					RedirectURL: "http://" + a.cfg.HTTPAddr + "/smart/callback"}}}
			a.cfg.Connections = append(a.cfg.Connections, conns...)
			g.AddConnections(conns...)
			g.SetStatus(dashboard.ConnectionStatus{Name: demoLaunchConnection, BaseURL: ep.base,
				Vendor: cmp.Or(conns[1].Vendor, "auto-detect"), State: "ok", Detail: "Filled when a clinician launches ehrgate from the EHR."})
			if err := g.SetupLaunches(conns); err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(a.stdout, "simulated EHR: %d patients at %s\n", len(sim.PatientIDs()), ep.base)
				if ep.auth != nil && !once {
					fmt.Fprintf(a.stdout, "EHR launch page: %s/auth/launch (log in as dr.smith / password)\n", strings.TrimSuffix(ep.base, "/fhir"))
				}
			}

			if once {
				sum, err := g.Sync(ctx, backend)
				if err != nil {
					return err
				}
				if err := printSummary(a.stdout, backend.Name, sum, asJSON); err != nil {
					return err
				}
				if sum.Errors > 0 {
					return &exitError{code: 3, msg: fmt.Sprintf("%d fetches failed", sum.Errors)}
				}
				return nil
			}

			// HL7 v2 beside FHIR: events from the MLLP listener refresh the
			// patient on the demo connection and stream at /events/stream.
			ev, err := g.StartEvents(ctx, []string{backend.Name})
			if err != nil {
				return err
			}
			serveErr := make(chan error, 2)
			var mllpAddr <-chan net.Addr
			if mo.Addr != "" {
				mllpErr := make(chan error, 1)
				bound := make(chan net.Addr, 1)
				g.StartMLLP(ctx, mo, ev, func(ad net.Addr) {
					printListen(a.stdout, "mllp", ad, mo.AckMode)
					bound <- ad
				}, mllpErr)
				mllpAddr = bound
				go func() {
					if err := <-mllpErr; err != nil {
						a.log.Warn("the HL7 v2 listener did not start; the demo goes on without it", "error", err)
					}
				}()
			}
			listening := make(chan struct{})
			go func() {
				serveErr <- g.ListenAndServe(ctx, a.cfg.HTTPAddr, func(ad net.Addr) {
					printListen(a.stdout, "http", ad, "")
					close(listening)
				})
			}()
			// The simulated EHR fetches ehrgate's keys from its JWKS URL
			// when the sync asks for a token: serve it first.
			select {
			case <-listening:
			case err := <-serveErr:
				return err
			}
			sum, err := g.Sync(ctx, backend)
			if err != nil {
				return err
			}
			if err := printSummary(a.stdout, backend.Name, sum, asJSON); err != nil {
				return err
			}
			if _, err := g.Probe(ctx, backend); err != nil && ctx.Err() == nil {
				a.log.Warn("compatibility probe failed", "connection", backend.Name, "error", err)
			}
			go g.ScheduleSyncs(ctx, []config.Connection{backend}, syncEvery)
			if hl7Feed && mllpAddr != nil {
				go func() {
					var addr net.Addr
					select {
					case addr = <-mllpAddr:
					case <-ctx.Done():
						return
					}
					stats, err := hl7feed.Run(ctx, hl7feed.Options{Addr: addr.String(), Patients: f.patients, Seed: f.seed, Rate: 5})
					if err != nil && ctx.Err() == nil {
						a.log.Warn("simulated HL7 feed stopped", "error", err)
					}
					a.log.Info("simulated HL7 feed finished", "messages", stats.Messages)
				}()
			}
			return <-serveErr
		},
	}
	f.register(cmd.Flags())
	addDataFlag(cmd.Flags())
	addHTTPAddrFlag(cmd.Flags())
	cmd.Flags().BoolVar(&once, "once", false, "sync once, print a summary and exit")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	cmd.Flags().StringVar(&simAddr, "sim-addr", "127.0.0.1:0", "simulated EHR listen address (port 0 picks a free port)")
	cmd.Flags().DurationVar(&syncEvery, "sync-every", 5*time.Minute, "re-sync interval while serving (0 disables)")
	cmd.Flags().IntVar(&workers, "workers", 8, "concurrent fetches")
	addMLLPFlags(cmd, &mo, DefaultMLLPAddr)
	cmd.Flags().BoolVar(&hl7Feed, "hl7-feed", false, "also send the simulated EHR's ADT/ORU/VXU feed to the MLLP listener (5 messages/s)")
	return cmd
}

// demoClients registers ehrgate with the simulated EHR as an EHR would: a
// backend-services client known by its JWKS URL, so that the EHR fetches
// ehrgate's current public keys (and again when an assertion names a key it
// has not seen) and `ehrgate keys rotate` needs no re-registration, and a
// public app client for user launches that returns to ehrgate's callback.
func demoClients(jwksURL, httpAddr string) ([]smartauth.Client, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return nil, err
	}
	app := "http://" + net.JoinHostPort(host, port)
	return []smartauth.Client{
		{ID: demoBackendClient, Name: "ehrgate (backend services)", JWKSURL: jwksURL, TokenEndpointAuth: "private_key_jwt",
			Scopes: []string{"system/*.rs", "system/*.read"}},
		{ID: demoLaunchClient, Name: "ehrgate", Public: true, TokenEndpointAuth: "none",
			RedirectURIs: []string{app + "/smart/callback"}, LaunchURL: app + "/smart/launch",
			Scopes: []string{"launch", "launch/patient", "openid", "fhirUser", "offline_access", "online_access",
				"patient/*.rs", "patient/*.read", "user/*.rs", "user/*.read"}},
	}, nil
}

// demoJWKS returns the JWKS URL the simulated EHR registers ehrgate by. A
// serving demo on a fixed port publishes its keys at
// http://HTTP_ADDR/.well-known/jwks.json, as `serve` does; that is the URL
// (an unspecified host reads as 127.0.0.1). A --once run serves no HTTP,
// and a port of 0 is not known yet: then the same JWKS handler is served
// on a loopback port of its own until stop is called.
func demoJWKS(ctx context.Context, g cliGateway, httpAddr string, once bool) (url string, stop func(), err error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", nil, err
	}
	if !once && port != "0" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(host, port) + "/.well-known/jwks.json", func() {}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("serving the JWKS to the simulated EHR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/jwks.json", g.Keys().JWKSHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	return "http://" + ln.Addr().String() + "/.well-known/jwks.json", func() { srv.Close() }, nil
}
