package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/config"
	"ehrgate/ehr"
	"ehrgate/fhir"
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
site profile (YAML) over it. The report is stored as DATA/probes/CONNECTION.json
(unless --no-save). With --compare FILE, the differences from an earlier report
are printed too; with --json the output is the report, or with --compare
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
			rt, err := g.runtime(ctx, conn)
			if err != nil {
				return err
			}
			client, adapter := rt.client, rt.adapter
			r, err := probe.Run(ctx, client, probe.Options{Types: conn.Types, PatientID: patient, Adapter: adapter})
			if err != nil {
				return err
			}
			r.Connection = conn.Name
			var changes []probe.Change
			if compare != "" {
				prev, err := probe.Load(compare)
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
				if _, err := probe.Save(a.cfg.Data, r); err != nil {
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
	cmd.Flags().StringVar(&vendor, "vendor", "", "vendor adapter ("+strings.Join(ehr.Vendors(), ", ")+"); default: detected")
	cmd.Flags().StringVar(&sitePath, "site", "", "site profile YAML layered over the vendor adapter")
	cmd.Flags().StringVar(&patient, "patient", "", "test patient id (default: the first patient listed)")
	cmd.Flags().StringSliceVar(&types, "types", nil, "resource types to probe (default: the connection's, else the ten chart types)")
	cmd.Flags().StringVar(&compare, "compare", "", "an earlier probe report (JSON) to compare with")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&noSave, "no-save", false, "do not store the report under DATA/probes/")
	return cmd
}

// resolveAdapter returns the adapter for a connection: the configured
// vendor, or (vendor "") the one detected from the server's
// CapabilityStatement and smart-configuration, with the site profile at
// sitePath layered on top. detected describes the choice for status pages,
// e.g. "epic November 2025 11.2.0 (detected, confidence 1.00)". A server
// that cannot be read for detection gets the generic adapter; the sync or
// probe that follows reports the failure. gateway.syncConnection can use it
// as is.
func resolveAdapter(ctx context.Context, baseURL, vendor, sitePath string, opts fhir.Options) (a *ehr.Adapter, detected string, err error) {
	if vendor != "" {
		a, err = connectionAdapter(vendor, sitePath)
		return a, vendor + " (configured)", err
	}
	boot, err := fhir.NewClient(baseURL, opts)
	if err != nil {
		return nil, "", err
	}
	capBody, _ := boot.Capabilities(ctx)
	smartBody := fetchSMARTConfig(ctx, boot.BaseURL())
	v, version, conf := ehr.Detect(ctx, capBody, smartBody)
	a, err = connectionAdapter(v, sitePath)
	return a, strings.TrimSpace(fmt.Sprintf("%s %s", v, version)) + fmt.Sprintf(" (detected, confidence %.2f)", conf), err
}

// fetchSMARTConfig returns [base]/.well-known/smart-configuration, or nil.
func fetchSMARTConfig(ctx context.Context, base string) []byte {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/smart-configuration", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil
	}
	return b
}

// connectionAdapter returns the adapter for a vendor name ("" = generic)
// with the site profile at sitePath ("" = none) layered on top. The sync
// wiring (gateway.syncConnection) can use it once config.Connection has
// vendor and site_profile fields.
func connectionAdapter(vendor, sitePath string) (*ehr.Adapter, error) {
	a, err := ehr.Lookup(vendor)
	if err != nil {
		return nil, err
	}
	if sitePath == "" {
		return a, nil
	}
	site, err := ehr.LoadSiteProfile(sitePath)
	if err != nil {
		return nil, err
	}
	return a.WithSite(site)
}

func nonNil(c []probe.Change) []probe.Change {
	if c == nil {
		return []probe.Change{}
	}
	return c
}
