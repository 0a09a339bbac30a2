package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"ehrgate/quality"
	"ehrgate/terminology"
)

func newQualityCmd(a *app) *cobra.Command {
	var asJSON bool
	var connection, template string
	var top int
	cmd := &cobra.Command{
		Use:   "quality --data DIR",
		Short: "Report data quality per connection: unmapped codes by frequency, missing LOINC/RxNorm, stale medications, US Core profile findings",
		Long: `quality checks every current resource in the store: codes the terminology chain
could not map (by frequency), observations without LOINC, medications without
RxNorm, "active" medication orders gone stale, and US Core 6.1 required and
Must Support elements and required bindings. Findings never reject data.

--template FILE writes the unmapped codes as a local-code map with the target
columns empty ("-" for standard output): fill it in and pass it back with
--local-code-map (or the connection's configured map), then run renormalize.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			n, err := normalizerFromFlags(a, cmd)
			if err != nil {
				return err
			}
			db, err := a.openExistingStore(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			rep, err := quality.Build(cmd.Context(), db, n, connection)
			if err != nil {
				return err
			}
			if template != "" {
				if err := writeTemplate(a.stdout, template, rep); err != nil {
					return err
				}
				if template == "-" {
					return nil
				}
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(rep)
			}
			printQuality(a.stdout, rep, top)
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	addNormalizerFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the full report as JSON")
	cmd.Flags().StringVar(&connection, "connection", "", "only this connection")
	cmd.Flags().StringVar(&template, "template", "", `write unmapped codes as a local-code map template to FILE ("-" for standard output)`)
	cmd.Flags().IntVar(&top, "top", 20, "unmapped codes and profile rules listed per connection in the text report")
	return cmd
}

func writeTemplate(stdout io.Writer, path string, rep *quality.Report) error {
	rows := rep.MapTemplate()
	if path == "-" {
		return terminology.WriteLocalMap(stdout, rows)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing map template: %w", err)
	}
	if err := terminology.WriteLocalMap(f, rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printQuality(w io.Writer, rep *quality.Report, top int) {
	if len(rep.Connections) == 0 {
		fmt.Fprintln(w, "the store holds no resources")
		return
	}
	for _, c := range rep.Connections {
		unmapped := 0
		for _, u := range c.Unmapped {
			unmapped += u.Count
		}
		fmt.Fprintf(w, "%s: %d resources, %d unmapped codes (%d distinct), %d without LOINC, %d without RxNorm, %d stale medications, %d not normalizable\n",
			c.Connection, c.Resources, unmapped, len(c.Unmapped), c.MissingLOINC, c.MissingRxNorm, c.StaleMedications, c.Failed)
		for i, u := range c.Unmapped {
			if i == top {
				fmt.Fprintf(w, "    ... %d more\n", len(c.Unmapped)-top)
				break
			}
			fmt.Fprintf(w, "    %6d  %-20s %-12s %s|%s  %s\n", u.Count, u.Type, u.Element, u.System, u.Code, u.Display)
		}
		for i, r := range c.Profile {
			if i == top {
				fmt.Fprintf(w, "    ... %d more rules\n", len(c.Profile)-top)
				break
			}
			fmt.Fprintf(w, "    %6d  %-7s %-45s %s\n", r.Count, r.Severity, r.Rule, r.Element)
		}
	}
}
