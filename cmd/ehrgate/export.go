package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"ehrgate/audit"
	"ehrgate/export/parquet"
)

func newExportCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the store for other engines",
	}
	cmd.AddCommand(newExportParquetCmd(a))
	return cmd
}

func newExportParquetCmd(a *app) *cobra.Command {
	var (
		out, connName string
		rowsPerFile   int
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "parquet --data DIR --out DIR [--connection NAME]",
		Short: "Write current normalized resources as Hive-partitioned Parquet",
		Long: `parquet writes every current resource (deleted ones excluded) as Parquet under
--out, partitioned by type and month: type=Observation/date=2025-06/part-0000.parquet.
Columns: connection, type, id, version_id, patient_id, last_updated, fetched_at,
normalized (JSON), code_system, code, display, value_number, unit, effective,
status, category. Spark, Trino, DuckDB and BigQuery read the tree directly,
for example in DuckDB:

  SELECT date, count(*), avg(value_number)
  FROM read_parquet('OUT/**/*.parquet', hive_partitioning = true)
  WHERE type = 'Observation' AND code = '8867-4' GROUP BY date ORDER BY date;`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			if out == "" {
				return errors.New("--out is required")
			}
			g, err := a.openGateway(cmd.Context())
			if err != nil {
				return err
			}
			defer g.Close()
			// Patient data leaves the store: recorded first (fail closed).
			ev := audit.Export(cliAgent(), audit.PatientRef{})
			ev.Outcome = audit.OutcomeSuccess
			if connName != "" {
				ev.Query = "connection=" + url.QueryEscape(connName)
			}
			if err := g.Audit().Record(cmd.Context(), ev); err != nil {
				return fmt.Errorf("recording the export in the audit trail (nothing was exported): %w", err)
			}
			sum, err := parquet.Export(cmd.Context(), g.Store(), parquet.Options{Out: out, Connection: connName, RowsPerFile: rowsPerFile})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(sum)
			}
			fmt.Fprintf(a.stdout, "wrote %d rows in %d files, %d partitions, under %s\n", sum.Rows, sum.Files, len(sum.Partitions), out)
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "output directory")
	cmd.Flags().StringVar(&connName, "connection", "", "only this connection (default: all)")
	cmd.Flags().IntVar(&rowsPerFile, "rows-per-file", 500_000, "rows per Parquet file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	return cmd
}

// cliAgent is who the audit trail names for a command: the operating
// system user running it, through the ehrgate CLI.
func cliAgent() audit.Agent {
	a := audit.Agent{ClientID: "ehrgate-cli"}
	if u, err := user.Current(); err == nil {
		a.UserID = "os:" + u.Username
	}
	if h, err := os.Hostname(); err == nil {
		a.Address = h
	}
	return a
}
