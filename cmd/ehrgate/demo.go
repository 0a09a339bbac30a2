package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/config"
)

// demoConnection is the connection name the demo stores its data under.
const demoConnection = "demo"

func newDemoCmd(a *app) *cobra.Command {
	var (
		f         simFlags
		once      bool
		asJSON    bool
		simAddr   string
		syncEvery time.Duration
		workers   int
	)
	cmd := &cobra.Command{
		Use:   "demo [--once --json] [--data DIR] [--http-addr HOST:PORT]",
		Short: "Start a simulated EHR, pull every chart from it, and serve the dashboard",
		Long: `demo runs the whole pipeline in one process: a simulated EHR (a FHIR R4 server
over synthetic patients), a sync that pulls every patient's chart into the
embedded store in --data, and the dashboard at http://HTTP_ADDR/.

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
			base, stopSim, err := startSim(ctx, sim, simAddr, a.log)
			if err != nil {
				return err
			}
			defer stopSim()
			if !asJSON {
				fmt.Fprintf(a.stdout, "simulated EHR: %d patients at %s\n", len(sim.PatientIDs()), base)
			}
			g, err := a.openGateway(ctx)
			if err != nil {
				return err
			}
			defer g.Close()
			conn := config.Connection{Name: demoConnection, BaseURL: base, Workers: workers}

			if once {
				sum, err := g.syncConnection(ctx, conn)
				if err != nil {
					return err
				}
				if err := printSummary(a.stdout, conn.Name, sum, asJSON); err != nil {
					return err
				}
				if sum.Errors > 0 {
					return &exitError{code: 3, msg: fmt.Sprintf("%d fetches failed", sum.Errors)}
				}
				return nil
			}

			serveErr := make(chan error, 1)
			go func() { serveErr <- g.serveHTTP(ctx, a.cfg.HTTPAddr, nil) }()
			sum, err := g.syncConnection(ctx, conn)
			if err != nil {
				return err
			}
			if err := printSummary(a.stdout, conn.Name, sum, asJSON); err != nil {
				return err
			}
			go g.scheduleSyncs(ctx, []config.Connection{conn}, syncEvery)
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
	return cmd
}
