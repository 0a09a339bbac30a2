package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ehrgate/ehrsim"
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
}

func (f *simFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.patients, "patients", 120, "number of synthetic patients the simulated EHR serves")
	fs.Int64Var(&f.seed, "seed", 1, "synthetic data seed")
	fs.Float64Var(&f.faultRate, "fault-rate", 0, "probability (0..1) that a simulated EHR request fails: 429, 500, 503, slow or malformed body")
	fs.StringVar(&f.faultKinds, "fault-kinds", "", "comma-separated fault kinds to draw from (429,500,503,slow,malformed-body); default all")
	fs.DurationVar(&f.retryAfter, "fault-retry-after", time.Second, "Retry-After sent with injected 429 and 503 responses")
	fs.IntVar(&f.pageSize, "page-size", 50, "simulated EHR default page size")
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

// startSim serves sim on addr in the background and returns its FHIR base URL.
func startSim(ctx context.Context, sim *ehrsim.Server, addr string, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("simulated EHR listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("simulated EHR stopped", "error", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return "http://" + ln.Addr().String() + "/fhir", stop, nil
}

func newSimCmd(a *app) *cobra.Command {
	var (
		f    simFlags
		addr string
	)
	cmd := &cobra.Command{
		Use:   "sim --addr HOST:PORT --patients N --seed S",
		Short: "Run the simulated EHR: a FHIR R4 server over synthetic patients",
		Long: `sim serves a FHIR R4 REST API at http://ADDR/fhir over deterministic synthetic
patients: /metadata, read, search (patient, category, code, date, clinical-status,
status, _lastUpdated, _count, _id, _include), paging, ETags and OperationOutcome
errors. --fault-rate injects 429 (with Retry-After), 500, 503, slow responses and
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
			base, stop, err := startSim(cmd.Context(), sim, addr, a.log)
			if err != nil {
				return err
			}
			defer stop()
			total := 0
			for _, n := range sim.Counts() {
				total += n
			}
			fmt.Fprintf(a.stdout, "simulated EHR: %d patients, %d resources, FHIR base %s\n", len(sim.PatientIDs()), total, base)
			<-cmd.Context().Done()
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8081", "listen address HOST:PORT")
	return cmd
}
