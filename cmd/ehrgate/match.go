package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"ehrgate/identity"
)

func newMatchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "match",
		Short: "Find the records that describe one person across sources",
	}
	cmd.AddCommand(newMatchEvalCmd(a))
	return cmd
}

func newMatchEvalCmd(a *app) *cobra.Command {
	var (
		people int
		seed   int64
		asJSON bool
		link   float64
		review float64
	)
	cmd := &cobra.Command{
		Use:   "eval --patients N",
		Short: "Match a synthetic population with known truth and print precision, recall and F1",
		Long: `eval generates N synthetic people spread over four sources (about 1.9 records
each) with realistic noise and hard negatives (twins, Jr./Sr., namesakes,
spouses), runs the matcher as the service does, and measures the clusters
against the truth: pairwise precision, recall and F1 at the top level, exact
clusters under "cluster". "seconds" is the matcher's time alone; peak_rss_mb
the whole process's peak resident memory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if people < 1 {
				return fmt.Errorf("--patients must be at least 1")
			}
			rep, err := identity.RunEval(cmd.Context(), identity.GenOptions{People: people, Seed: seed},
				identity.Options{LinkWeight: link, ReviewWeight: review})
			if err != nil {
				return fmt.Errorf("matching: %w", err)
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(rep)
			}
			fmt.Fprintf(a.stdout, "%d records of %d people: precision %.5f recall %.5f F1 %.5f\n", rep.Records, rep.People, rep.Precision, rep.Recall, rep.F1)
			fmt.Fprintf(a.stdout, "clusters: precision %.5f recall %.5f F1 %.5f (%d exact of %d people)\n", rep.Cluster.Precision, rep.Cluster.Recall, rep.Cluster.F1, rep.Cluster.Exact, rep.Cluster.True)
			fmt.Fprintf(a.stdout, "hard negatives merged: %v of %v\n", rep.HardMerged, rep.HardNegatives)
			fmt.Fprintf(a.stdout, "%d candidate pairs, %d links, %d for review; %.2f s, peak RSS %.0f MiB\n", rep.Candidates, rep.Links, rep.Review, rep.Seconds, rep.PeakRSSMB)
			return nil
		},
	}
	cmd.Flags().IntVar(&people, "patients", 10000, "number of synthetic people")
	cmd.Flags().Int64Var(&seed, "seed", 1, "random seed; the same seed gives the same population")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().Float64Var(&link, "link-weight", 0, "match weight in bits at or above which pairs link (0: the default, 16)")
	cmd.Flags().Float64Var(&review, "review-weight", 0, "match weight in bits at or above which unlinked pairs go to review")
	return cmd
}
