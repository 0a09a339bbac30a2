package main

import (
	"time"

	"github.com/spf13/cobra"
)

func newServeCmd(a *app) *cobra.Command {
	var syncOnStart bool
	cmd := &cobra.Command{
		Use:   "serve --data DIR --http-addr HOST:PORT",
		Short: "Serve the dashboard and metrics over the store, syncing configured connections on a schedule",
		Long: `serve runs the gateway: the dashboard at http://HTTP_ADDR/, Prometheus metrics at
/metrics, /healthz and /readyz. Connections from the configuration file are synced
at start (--sync-on-start) and every sync_every (EHRGATE_SYNC_EVERY).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			g, err := a.openGateway(ctx)
			if err != nil {
				return err
			}
			defer g.Close()
			if syncOnStart {
				go func() {
					for _, c := range a.cfg.Connections {
						if _, err := g.syncConnection(ctx, c); err != nil && ctx.Err() == nil {
							a.log.Error("sync failed", "connection", c.Name, "error", err)
						}
					}
				}()
			}
			go g.scheduleSyncs(ctx, a.cfg.Connections, time.Duration(a.cfg.SyncEvery))
			return g.serveHTTP(ctx, a.cfg.HTTPAddr, nil)
		},
	}
	addDataFlag(cmd.Flags())
	addHTTPAddrFlag(cmd.Flags())
	cmd.Flags().BoolVar(&syncOnStart, "sync-on-start", true, "sync every configured connection when starting")
	return cmd
}
