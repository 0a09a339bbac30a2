package main

import (
	"net"

	"github.com/spf13/cobra"

	"ehrgate/gateway"
)

func newServeCmd(a *app) *cobra.Command {
	var (
		syncOnStart bool
		mo          gateway.MLLPOptions
	)
	cmd := &cobra.Command{
		Use:   "serve --data DIR --http-addr HOST:PORT [--mllp-addr HOST:PORT]",
		Short: "Run the gateway: dashboard, metrics, SMART endpoints, HL7 v2 listener, scheduled syncs",
		Long: `serve runs the gateway: the dashboard at http://HTTP_ADDR/, Prometheus metrics at
/metrics, /healthz and /readyz, ehrgate's JWKS at /.well-known/jwks.json, SMART
launch endpoints (/smart/launch, /smart/login, /smart/callback) for connections
with auth type launch, and the event stream at /events/stream.

Connections from the configuration file are synced at start (--sync-on-start) and
every sync_every (EHRGATE_SYNC_EVERY). With --mllp-addr (or hl7.mllp_addr) an HL7
v2 MLLP listener stores every message durably before acknowledging it, converts it
to FHIR, and raises events that refresh the patient on events.refresh_connections
and reach the configured webhooks.

Write-back: records approved in the outbox (on the dashboard's /writes page,
with 'ehrgate writes approve', or by a connection's write policy) are sent from
the job queue, one job per record; a sweep every minute resends approved and
sent records left behind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			mllpFromConfig(cmd, &mo, gateway.MLLPOptionsFromConfig(a.cfg.HL7))
			ctx := cmd.Context()
			g, err := a.openGateway(ctx)
			if err != nil {
				return err
			}
			defer g.Close()
			return g.Run(ctx, gateway.RunOptions{HTTPAddr: a.cfg.HTTPAddr, MLLP: mo, SyncOnStart: syncOnStart,
				OnListen: func(what string, addr net.Addr) { printListen(a.stdout, what, addr, mo.AckMode) }})
		},
	}
	addDataFlag(cmd.Flags())
	addHTTPAddrFlag(cmd.Flags())
	addMLLPFlags(cmd, &mo, "")
	cmd.Flags().BoolVar(&syncOnStart, "sync-on-start", true, "sync every configured connection when starting")
	return cmd
}
