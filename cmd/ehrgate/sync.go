package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"ehrgate/config"
)

func newSyncCmd(a *app) *cobra.Command {
	var (
		connName string
		baseURL  string
		asJSON   bool
		workers  int
		pageSize int
	)
	cmd := &cobra.Command{
		Use:   "sync [--connection NAME | --base-url URL --connection NAME]",
		Short: "Pull every patient's chart from a FHIR server into the store, once",
		Long: `sync pulls the ten chart resource types for every patient a connection lists,
stores each raw resource beside its normalized form, quarantines what cannot be
read and prints a summary. Re-running it adds nothing that has not changed.

Without --base-url the connection comes from the configuration file. With
--base-url, an ad-hoc connection with that name is used.

Exit status: 0 when the sync completed without errors, 3 when it completed but
some fetches failed, 1 when it could not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			var conn config.Connection
			if baseURL != "" {
				if connName == "" {
					connName = "default"
				}
				conn = config.Connection{Name: connName, BaseURL: baseURL}
				probe := a.cfg
				probe.Connections = []config.Connection{conn}
				if err := probe.Validate(); err != nil {
					return err
				}
			} else {
				if connName == "" && len(a.cfg.Connections) == 1 {
					connName = a.cfg.Connections[0].Name
				}
				c, ok := a.cfg.Connection(connName)
				if !ok {
					return fmt.Errorf("no connection %q in the configuration; pass --base-url or add it to the config file", connName)
				}
				conn = c
			}
			if cmd.Flags().Changed("workers") {
				conn.Workers = workers
			}
			if cmd.Flags().Changed("page-size") {
				conn.PageSize = pageSize
			}
			g, err := a.openGateway(cmd.Context())
			if err != nil {
				return err
			}
			defer g.Close()
			sum, err := g.Sync(cmd.Context(), conn)
			if err != nil {
				return err
			}
			if sum.New+sum.Updated > 0 {
				requestMatch(cmd.Context(), a, g.Gateway)
			}
			if err := printSummary(a.stdout, conn.Name, sum, asJSON); err != nil {
				return err
			}
			if sum.Errors > 0 {
				return &exitError{code: 3, msg: fmt.Sprintf("%d fetches failed; the affected sections are marked in the store", sum.Errors)}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&connName, "connection", "", "connection name")
	cmd.Flags().StringVar(&baseURL, "base-url", "", "FHIR base URL for an ad-hoc connection")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	cmd.Flags().IntVar(&workers, "workers", 8, "concurrent fetches")
	cmd.Flags().IntVar(&pageSize, "page-size", 100, "search page size (_count)")
	return cmd
}
