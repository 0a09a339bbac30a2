package main

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"ehrgate/synth"
)

func newSynthCmd(a *app) *cobra.Command {
	var (
		patients int
		seed     int64
		out      string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "synth --patients N --seed S --out DIR",
		Short: "Write a deterministic synthetic patient population as FHIR NDJSON",
		Long: `synth writes one <ResourceType>.ndjson file per resource type into --out.
The same --patients and --seed always give byte-identical files. Patients 1 to 4
are edge cases on purpose: no conditions, 200+ medications, no labs in two
years, a drug allergy recorded as text only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if patients < 1 {
				return fmt.Errorf("--patients must be at least 1")
			}
			if out == "" {
				return fmt.Errorf("--out DIR is required")
			}
			counts, err := synth.New(synth.Options{Patients: patients, Seed: seed}).WriteNDJSON(out)
			if err != nil {
				return fmt.Errorf("writing synthetic data: %w", err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"patients": patients, "seed": seed, "out": out, "resources": counts})
			}
			types := make([]string, 0, len(counts))
			total := 0
			for t, n := range counts {
				types = append(types, t)
				total += n
			}
			sort.Strings(types)
			fmt.Fprintf(a.stdout, "wrote %d resources for %d patients (seed %d) to %s\n", total, patients, seed, out)
			for _, t := range types {
				fmt.Fprintf(a.stdout, "  %-20s %7d\n", t, counts[t])
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&patients, "patients", 100, "number of patients")
	cmd.Flags().Int64Var(&seed, "seed", 1, "random seed; the same seed gives the same data")
	cmd.Flags().StringVar(&out, "out", "", "output directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print counts as JSON")
	return cmd
}
