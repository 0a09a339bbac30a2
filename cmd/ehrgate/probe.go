package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"ehrgate/config"
	"ehrgate/ehr"
	"ehrgate/gateway"
	"ehrgate/probe"
)

func newProbeCmd(a *app) *cobra.Command {
	var (
		baseURL, vendor, sitePath, patient, compare string
		types                                       []string
		asJSON, noSave                              bool
	)
	cmd := &cobra.Command{
		Use:   "probe CONNECTION",
		Short: "Exercise a FHIR endpoint and print its compatibility matrix",
		Long: `probe reads a connection's CapabilityStatement and SMART configuration,
detects the vendor and version, searches each resource type and each search
parameter for a test patient (the first patient listed, or --patient), follows
paging links twice, provokes two error shapes (an unknown parameter, a bogus
id) and prints the results with timings.

The vendor adapter comes from --vendor, else from detection; --site layers a
site profile (YAML) over it. The report is kept in the store as the
connection's latest (unless --no-save), where status and the dashboard show it.
With --compare FILE (a report saved with --json) or --compare last (the one in
the store), the differences from that earlier report are printed too; with --json the output is the report, or with --compare
{"report": ..., "changes": [...]}.

Exit status: 0 when the probe ran (and, with --compare, nothing changed), 3
when --compare found differences, 1 when the endpoint could not be probed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			name := args[0]
			conn, ok := a.cfg.Connection(name)
			if baseURL != "" {
				conn = config.Connection{Name: name, BaseURL: baseURL, Types: conn.Types}
			} else if !ok {
				return fmt.Errorf("no connection %q in the configuration; pass --base-url or add it to the config file", name)
			}
			if len(types) > 0 {
				conn.Types = types
			}
			// A configured connection is probed exactly as it is synced:
			// through its SMART authorization and its adapter.
			if vendor != "" {
				conn.Vendor = vendor
			}
			if sitePath != "" {
				conn.SiteProfile = sitePath
			}
			g, err := a.openGateway(ctx)
			if err != nil {
				return err
			}
			defer g.Close()
			rt, err := g.Runtime(ctx, conn)
			if err != nil {
				return err
			}
			client, adapter := rt.Client, rt.Adapter
			r, err := probe.Run(ctx, client, probe.Options{Types: conn.Types, PatientID: patient, Adapter: adapter})
			if err != nil {
				return err
			}
			r.Connection = conn.Name
			var changes []probe.Change
			if compare != "" {
				var prev *probe.Report
				if compare == "last" {
					prev, err = gateway.LoadProbe(ctx, g.Store(), conn.Name)
				} else {
					prev, err = probe.Load(compare)
				}
				if err != nil {
					return err
				}
				changes = probe.Diff(prev, r)
			}
			switch {
			case asJSON && compare != "":
				err = json.NewEncoder(a.stdout).Encode(struct {
					Report  *probe.Report  `json:"report"`
					Changes []probe.Change `json:"changes"`
				}{r, nonNil(changes)})
			case asJSON:
				err = json.NewEncoder(a.stdout).Encode(r)
			default:
				err = probe.WriteText(a.stdout, r, probe.TextOptions{Timings: true})
				for _, w := range adapter.Warnings() {
					fmt.Fprintln(a.stdout, "warning:", w)
				}
				if compare != "" {
					fmt.Fprintf(a.stdout, "\n%d differences since %s\n", len(changes), compare)
					for _, c := range changes {
						fmt.Fprintln(a.stdout, "  "+c.String())
					}
				}
			}
			if err != nil {
				return fmt.Errorf("writing the probe report: %w", err)
			}
			if !noSave {
				if err := gateway.SaveProbe(ctx, g.Store(), r); err != nil {
					return err
				}
			}
			if len(changes) > 0 {
				return &exitError{code: 3, msg: fmt.Sprintf("%d differences since %s", len(changes), compare)}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&baseURL, "base-url", "", "FHIR base URL for an ad-hoc connection named CONNECTION")
	cmd.Flags().StringVar(&vendor, "vendor", "", "vendor adapter: "+ehr.AcceptedNames()+"; default: detected")
	cmd.Flags().StringVar(&sitePath, "site", "", "site profile YAML layered over the vendor adapter")
	cmd.Flags().StringVar(&patient, "patient", "", "test patient id (default: the first patient listed)")
	cmd.Flags().StringSliceVar(&types, "types", nil, "resource types to probe (default: the connection's, else the ten chart types)")
	cmd.Flags().StringVar(&compare, "compare", "", "an earlier probe report to compare with: a JSON file (probe --json), or last for the one kept in the store")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&noSave, "no-save", false, "do not keep the report in the store")
	return cmd
}

func nonNil(c []probe.Change) []probe.Change {
	if c == nil {
		return []probe.Change{}
	}
	return c
}
