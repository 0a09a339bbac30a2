package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ehrgate/ehr"
	"ehrgate/ehrsim"
	"ehrgate/ehrsim/bulkexport"
	"ehrgate/ehrsim/cdsclient"
	"ehrgate/ehrsim/hl7feed"
	"ehrgate/ehrsim/ordering"
	"ehrgate/ehrsim/personality"
	"ehrgate/ehrsim/smartauth"
	"ehrgate/synth"
)

// simFlags are the simulated EHR's settings, shared by `sim` and `demo`.
type simFlags struct {
	patients   int
	seed       int64
	faultRate  float64
	faultKinds string
	retryAfter time.Duration
	pageSize   int
	vendor     string
	site       string

	bulkPatients    int
	bulkFileSize    int
	bulkScopeFilter bool              // kick-offs export only the types the token may read
	bulkFaults      bulkexport.Faults // the Bulk Data server's fault knobs

	// bulkSource, when set, is the population Bulk Data serves instead
	// of a generator over the same seed (pipeline --demo serves the
	// simulator's live data).
	bulkSource bulkexport.Source

	noAuth        bool
	clientConfig  string
	accessTTL     time.Duration
	rotateRefresh bool
	clockSkew     time.Duration

	// The ordering screen (sim only): CDS services to call, the iss of
	// the simulator's JWTs, where to write its public JWKS.
	cdsServices   string
	cdsIssuer     string
	cdsJWKS       string
	subscriptions string // on, criteria, off or auto (topic-based for epic, criteria for oracle)
}

func (f *simFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.patients, "patients", 120, "number of synthetic patients the simulated EHR serves")
	fs.Int64Var(&f.seed, "seed", 1, "synthetic data seed")
	fs.Float64Var(&f.faultRate, "fault-rate", 0, "probability (0..1) that a simulated EHR request fails: 429, 500, 503, slow or malformed body")
	fs.StringVar(&f.faultKinds, "fault-kinds", "", "comma-separated fault kinds to draw from (429,500,503,slow,malformed-body); default all")
	fs.DurationVar(&f.retryAfter, "fault-retry-after", time.Second, "Retry-After sent with injected 429 and 503 responses")
	fs.IntVar(&f.pageSize, "page-size", 50, "simulated EHR default page size")
	fs.StringVar(&f.vendor, "vendor", "generic", "vendor personality: "+ehr.AcceptedNames())
	fs.StringVar(&f.site, "site", "", "site profile YAML layered over the vendor personality")
	fs.IntVar(&f.bulkPatients, "bulk-patients", 0, "patients served by Bulk Data $export, generated on the fly (default: --patients)")
	fs.IntVar(&f.bulkFileSize, "bulk-file-size", 5000, "resources per Bulk Data output file (small values emulate servers that send thousands of tiny files)")
	fs.BoolVar(&f.bulkScopeFilter, "bulk-scope-filter", true, "Bulk Data kick-offs export only the types the access token may read, as the SMART reference server does (false: refuse with 403)")
	fs.IntVar(&f.bulkFaults.UngeneratedFile, "bulk-ungenerated-file", 0, "fault: the first Bulk Data job lists this output file (1-based) in its manifest's error array instead")
	fs.IntVar(&f.bulkFaults.ExpireFile, "bulk-expire-file", 0, "fault: this output file (1-based) of the first Bulk Data job answers 410 Gone")
	fs.StringVar(&f.clientConfig, "client-config", "", "registered SMART clients (YAML or JSON) for the simulated authorization server")
	fs.DurationVar(&f.accessTTL, "access-token-ttl", time.Hour, "lifetime of access tokens the simulated EHR issues")
	fs.BoolVar(&f.rotateRefresh, "rotate-refresh-tokens", true, "issue a new refresh token at every refresh and revoke the old one")
	fs.DurationVar(&f.clockSkew, "clock-skew", 0, "offset of the simulated authorization server's clock (e.g. -2m)")
	fs.StringVar(&f.subscriptions, "subscriptions", "auto", "FHIR Subscriptions: on (topic-based, R4 backport), criteria (classic R4), off, or auto (topic-based for --vendor epic, criteria for oracle)")
}

// simEndpoint is a running simulated EHR.
type simEndpoint struct {
	base string            // FHIR base URL (the SMART iss and aud)
	auth *smartauth.Server // nil when unauthenticated
	// orders is the ordering screen's URL ("" without --cds-services).
	orders string
	stop   func()
}

// startSim serves sim on addr in the background. Unless noAuth is set, the
// FHIR API sits behind the simulated SMART authorization server with the
// given extra clients registered. It returns once the listener is up.
func (f *simFlags) start(ctx context.Context, sim *ehrsim.Server, addr string, clients []smartauth.Client, log *slog.Logger) (*simEndpoint, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("simulated EHR listen on %s: %w", addr, err)
	}
	ep := &simEndpoint{base: "http://" + ln.Addr().String() + "/fhir"}
	var site *ehr.SiteProfile
	if f.site != "" {
		if site, err = ehr.LoadSiteProfile(f.site); err != nil {
			ln.Close()
			return nil, err
		}
	}
	rest, err := personality.Wrap(f.vendor, site, sim.Handler())
	if err != nil {
		ln.Close()
		return nil, err
	}
	// Bulk Data beside the REST API, over the same synthetic population
	// (or a larger one generated on the fly). Authorization is the SMART
	// layer's: the hook only makes manifests say requiresAccessToken.
	bulkPatients := f.bulkPatients
	if bulkPatients <= 0 {
		bulkPatients = f.patients
	}
	var source bulkexport.Source = synth.New(synth.Options{Patients: bulkPatients, Seed: f.seed})
	if f.bulkSource != nil {
		source = f.bulkSource
	}
	bopts := bulkexport.Options{
		Source:   source,
		FileSize: f.bulkFileSize,
		Faults:   f.bulkFaults,
		Logger:   log.With("component", "ehrsim-bulk"),
	}
	if !f.noAuth {
		bopts.Authorize = func(*http.Request) error { return nil }
		bopts.MayRead = smartauth.BulkMayRead
	}
	mux := http.NewServeMux()
	mux.Handle("/", rest)
	bulkexport.New(bopts).Register(mux)
	var h http.Handler = mux
	var screen *ordering.Screen
	if f.cdsServices != "" {
		// The ordering screen reads the FHIR API in process (the EHR's own
		// access) and has its own sign-in, outside the SMART layer.
		screen, err = ordering.New(ordering.Options{FHIR: rest, FHIRBase: ep.base, CDSBase: f.cdsServices,
			Client: cdsclient.Options{Issuer: f.cdsIssuer}, Logger: log.With("component", "ehrsim-orders"),
			Record: func(_ context.Context, res json.RawMessage) error { return sim.Load(res) }})
		if err != nil {
			ln.Close()
			return nil, err
		}
		if f.cdsJWKS != "" {
			if err := os.WriteFile(f.cdsJWKS, screen.JWKS(), 0o644); err != nil {
				ln.Close()
				return nil, fmt.Errorf("writing the CDS client's JWKS: %w", err)
			}
		}
		ep.orders = strings.TrimSuffix(ep.base, "/fhir") + "/ehr/"
	}
	if !f.noAuth {
		if f.clientConfig != "" {
			more, err := smartauth.LoadClients(f.clientConfig)
			if err != nil {
				ln.Close()
				return nil, err
			}
			clients = append(clients, more...)
		}
		auth, err := smartauth.New(smartauth.Options{
			Issuer:              ep.base,
			Clients:             clients,
			AccessTokenTTL:      f.accessTTL,
			RotateRefreshTokens: f.rotateRefresh,
			ClockSkew:           f.clockSkew,
			BulkScopeFilter:     f.bulkScopeFilter,
			Logger:              log.With("component", "ehrsim-auth"),
		})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("simulated authorization server: %w", err)
		}
		ep.auth = auth
		h = smartauth.WithSMART(h, auth)
	}
	if screen != nil {
		outer := http.NewServeMux()
		outer.Handle("/ehr/", screen.Handler())
		outer.Handle("/", h)
		h = outer
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("simulated EHR stopped", "error", err)
		}
	}()
	ep.stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return ep, nil
}

// newSim builds a simulated EHR loaded with synthetic patients.
func (f *simFlags) newSim(log *slog.Logger) (*ehrsim.Server, error) {
	if f.patients < 1 {
		return nil, fmt.Errorf("--patients must be at least 1")
	}
	opts := ehrsim.Options{
		PageSize: f.pageSize,
		Faults:   ehrsim.Faults{Rate: f.faultRate, RetryAfter: f.retryAfter, Seed: f.seed},
		Logger:   log.With("component", "ehrsim"),
		// The Bulk Data server start mounts beside it, and (unless
		// --no-auth) the SMART authorization server's endpoints.
		BulkExport: true,
	}
	switch f.subscriptions {
	case "on":
		opts.Subscriptions.Enabled = true
	case "criteria":
		opts.Subscriptions.Enabled, opts.Subscriptions.Criteria = true, true
	case "auto", "":
		// Epic: topic-based (R4 backport); Oracle Health: classic R4
		// criteria Subscriptions.
		opts.Subscriptions.Enabled = f.vendor == "epic" || f.vendor == "oracle"
		opts.Subscriptions.Criteria = f.vendor == "oracle"
	case "off":
	default:
		return nil, fmt.Errorf("--subscriptions %q: want on, criteria, off or auto", f.subscriptions)
	}
	if !f.noAuth {
		opts.OAuth = &ehrsim.OAuthURIs{Authorize: "/auth/authorize", Token: "/auth/token", Introspect: "/auth/introspect", Revoke: "/auth/revoke"}
	}
	if f.faultKinds != "" {
		for _, k := range strings.Split(f.faultKinds, ",") {
			kind, err := ehrsim.ParseFaultKind(strings.TrimSpace(k))
			if err != nil {
				return nil, err
			}
			opts.Faults.Kinds = append(opts.Faults.Kinds, kind)
		}
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("simulated EHR options: %w", err)
	}
	sim := ehrsim.New(opts)
	gen := synth.New(synth.Options{Patients: f.patients, Seed: f.seed})
	if err := gen.Each(func(_ string, raw json.RawMessage) error { return sim.Load(raw) }); err != nil {
		return nil, fmt.Errorf("loading synthetic patients: %w", err)
	}
	return sim, nil
}

func newSimCmd(a *app) *cobra.Command {
	var (
		f        simFlags
		addr     string
		hl7To    string
		hl7Rate  float64
		hl7Conns int
		hl7Drop  float64
		hl7Dup   float64
		hl7Bad   float64
		hl7Limit int

		changeRate   float64
		notifyFaults string
		notifyRate   float64
	)
	cmd := &cobra.Command{
		Use:   "sim --addr HOST:PORT --patients N --seed S",
		Short: "Run the simulated EHR: a FHIR R4 server over synthetic patients",
		Long: `sim serves a FHIR R4 REST API at http://ADDR/fhir over deterministic synthetic
patients: /metadata, read, search (patient, category, code, date, clinical-status,
status, _lastUpdated, _count, _id, _include), paging, ETags and OperationOutcome
errors, behind a SMART App Launch 2 authorization server (EHR and standalone
launch with login, consent and patient picker; backend services; introspection;
revocation) unless --no-auth. --vendor reproduces a vendor's behaviour.
--fault-rate injects 429 (with Retry-After), 500, 503, slow responses and
malformed bodies so clients can be tested against a misbehaving EHR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			sim, err := f.newSim(a.log)
			if err != nil {
				return err
			}
			ep, err := f.start(cmd.Context(), sim, addr, nil, a.log)
			if err != nil {
				return err
			}
			defer ep.stop()
			total := 0
			for _, n := range sim.Counts() {
				total += n
			}
			fmt.Fprintf(a.stdout, "simulated EHR (%s): %d patients, %d resources, FHIR base %s\n", f.vendor, len(sim.PatientIDs()), total, ep.base)
			if ep.auth != nil {
				fmt.Fprintf(a.stdout, "SMART: %s/.well-known/smart-configuration; EHR launch page %s/auth/launch\n", ep.base, strings.TrimSuffix(ep.base, "/fhir"))
			}
			if ep.orders != "" {
				fmt.Fprintf(a.stdout, "ordering screen %s (CDS services %s; sign in as dr.smith / password)\n", ep.orders, f.cdsServices)
			}
			if hl7To != "" {
				go func() {
					stats, err := hl7feed.Run(cmd.Context(), hl7feed.Options{Addr: hl7To, Patients: f.patients, Seed: f.seed,
						Connections: hl7Conns, Rate: hl7Rate, Limit: hl7Limit, DropRate: hl7Drop, DuplicateRate: hl7Dup,
						MalformedRate: hl7Bad, FaultSeed: f.seed})
					if err != nil && cmd.Context().Err() == nil {
						a.log.Error("HL7 feed stopped", "error", err)
					}
					b, _ := json.Marshal(stats)
					fmt.Fprintf(a.stdout, "hl7 feed: %s\n", b)
				}()
			}
			if changeRate > 0 {
				nf := ehrsim.NotificationFaults{Rate: notifyRate, Seed: uint64(f.seed)}
				for _, k := range strings.Split(notifyFaults, ",") {
					if k = strings.TrimSpace(k); k == "" {
						continue
					}
					kind, err := ehrsim.ParseNotifyFault(k)
					if err != nil {
						return err
					}
					nf.Kinds = append(nf.Kinds, kind)
				}
				sim.SetNotificationFaults(nf)
				go func() {
					_, err := sim.RunChanges(cmd.Context(), ehrsim.ChangeOptions{Changes: math.MaxInt32, Rate: changeRate, Seed: uint64(f.seed), Base: ep.base})
					if err != nil && cmd.Context().Err() == nil {
						a.log.Error("change feed stopped", "error", err)
					}
				}()
			}
			<-cmd.Context().Done()
			sim.CloseSubscriptions()
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().Float64Var(&changeRate, "change-rate", 0, "changes per second the simulated hospital makes (admissions, lab results, prescriptions, amendments), notified to Subscriptions; 0 = none")
	cmd.Flags().StringVar(&notifyFaults, "notify-faults", "", "notification faults, comma-separated: drop, duplicate, reorder, delay, wrong-secret")
	cmd.Flags().Float64Var(&notifyRate, "notify-fault-rate", 0.1, "share of notifications faulted (with --notify-faults)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8081", "listen address HOST:PORT")
	cmd.Flags().StringVar(&f.cdsServices, "cds-services", "", "CDS Hooks server base URL (e.g. ehrgate's http://127.0.0.1:8080): serve an ordering screen at /ehr/ that calls its order-select and order-sign services")
	cmd.Flags().StringVar(&f.cdsIssuer, "cds-issuer", "ehrsim", "iss of the ordering screen's CDS JWTs (register it: ehrgate clients add NAME --cds-client --iss ISS --jwks FILE)")
	cmd.Flags().StringVar(&f.cdsJWKS, "cds-jwks", "", "write the ordering screen's public JWKS to this file (its key is new at every start)")
	cmd.Flags().BoolVar(&f.noAuth, "no-auth", false, "serve the FHIR API without authorization (for clients that cannot do SMART)")
	cmd.Flags().StringVar(&hl7To, "hl7-to", "", "send the simulated ADT/ORU/VXU feed for the synthetic patients to this MLLP receiver HOST:PORT")
	cmd.Flags().Float64Var(&hl7Rate, "hl7-rate", 0, "HL7 messages per second (0 = as fast as acknowledged)")
	cmd.Flags().IntVar(&hl7Conns, "hl7-connections", 1, "parallel MLLP connections (a patient's messages stay in order on one)")
	cmd.Flags().IntVar(&hl7Limit, "hl7-limit", 0, "stop after this many messages (0 = the whole feed)")
	cmd.Flags().Float64Var(&hl7Drop, "hl7-drop-rate", 0, "probability of dropping the connection before an ACK (the message is resent)")
	cmd.Flags().Float64Var(&hl7Dup, "hl7-duplicate-rate", 0, "probability of sending an acknowledged message again")
	cmd.Flags().Float64Var(&hl7Bad, "hl7-malformed-rate", 0, "probability of sending a malformed frame before a message")
	return cmd
}
