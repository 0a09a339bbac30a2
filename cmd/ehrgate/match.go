package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/gateway"
	"ehrgate/identity"
	"ehrgate/store"
)

func newMatchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "match",
		Short: "Find the records that describe one person across sources",
	}
	cmd.AddCommand(newMatchEvalCmd(a), newMatchSynthCmd(a), newMatchRunCmd(a), newMatchStatusCmd(a), newMatchReviewCmd(a),
		newMatchOverrideCmd(a, identity.ActionLink), newMatchOverrideCmd(a, identity.ActionUnlink))
	return cmd
}

func newMatchSynthCmd(a *app) *cobra.Command {
	var (
		people int
		seed   int64
		out    string
	)
	cmd := &cobra.Command{
		Use:   "synth --patients N --out DIR",
		Short: "Write a synthetic population across sources as FHIR Patients, with the truth",
		Long: `synth writes the population 'match eval' uses: DIR/<source>/Patient.ndjson per
source (import each with 'ehrgate bulk import DIR/<source> --connection <source>'),
DIR/truth.csv (source,id,person) and DIR/hard-negatives.csv (kind,person_a,person_b).
The same --patients and --seed give the same files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if people < 1 || out == "" {
				return fmt.Errorf("--patients N (at least 1) and --out DIR are required")
			}
			counts, err := identity.WriteFiles(identity.Generate(identity.GenOptions{People: people, Seed: seed}), out)
			if err != nil {
				return fmt.Errorf("writing the population: %w", err)
			}
			return json.NewEncoder(a.stdout).Encode(map[string]any{"people": people, "seed": seed, "records": counts})
		},
	}
	cmd.Flags().IntVar(&people, "patients", 1000, "number of synthetic people")
	cmd.Flags().Int64Var(&seed, "seed", 1, "random seed; the same seed gives the same population")
	cmd.Flags().StringVar(&out, "out", "", "output directory")
	return cmd
}

func newMatchRunCmd(a *app) *cobra.Command {
	var (
		asJSON  bool
		link    float64
		review  float64
		newOnly bool
	)
	cmd := &cobra.Command{
		Use:   "run --data DIR",
		Short: "Match every stored Patient across connections and keep the persons",
		Long: `run reads every current Patient from every connection, matches them (blocking,
a Fellegi-Sunter score fitted to the data by EM, clustering with guards),
applies the links and unlinks people made ('match link', 'match unlink'),
carries person ids forward from the last run and stores the persons and a
summary (see 'match status').

With --new-only it matches only the Patients no person holds yet and those
stored again since the last run or add, against the stored persons with the
last run's model, without fitting or clustering again: other persons keep
their members. It needs an earlier full run. 'ehrgate serve' does this by
itself when Patients are stored (the identity_match job).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			db, err := a.openStore(cmd.Context(), store.OpenOptions{MustExist: true})
			if err != nil {
				return err
			}
			defer db.Close()
			recs, err := identity.LoadPatients(cmd.Context(), db)
			if err != nil {
				return err
			}
			svc := &identity.Service{Docs: db}
			if newOnly {
				add, err := svc.Add(cmd.Context(), recs, identity.Options{LinkWeight: link, ReviewWeight: review})
				if errors.Is(err, identity.ErrNoRun) {
					return fmt.Errorf("no match run yet: run 'ehrgate match run' without --new-only first")
				}
				if err != nil {
					return fmt.Errorf("matching new records: %w", err)
				}
				if asJSON {
					return json.NewEncoder(a.stdout).Encode(add)
				}
				fmt.Fprintf(a.stdout, "%d new, %d changed (%d moved), %d removed records: %d joined a person, %d persons created, %d pairs for review\n",
					add.New, add.Changed, add.Moved, add.Removed, add.Joined, add.Created, add.Review)
				return nil
			}
			_, sum, err := svc.Run(cmd.Context(), recs, identity.Options{LinkWeight: link, ReviewWeight: review})
			if err != nil {
				return fmt.Errorf("matching: %w", err)
			}
			return printMatchSummary(a, sum, asJSON)
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().Float64Var(&link, "link-weight", 0, "match weight in bits at or above which pairs link (0: the default, 14)")
	cmd.Flags().Float64Var(&review, "review-weight", 0, "match weight in bits at or above which unlinked pairs go to review")
	cmd.Flags().BoolVar(&newOnly, "new-only", false, "match only the Patients no person holds yet, against the stored persons")
	return cmd
}

func newMatchStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --data DIR",
		Short: "Print the last match run: records, persons, links, pairs for review",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			db, err := a.openExistingStore(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			sum, err := (&identity.Service{Docs: db}).Status(cmd.Context())
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no match run yet: run 'ehrgate match run'")
			}
			if err != nil {
				return err
			}
			return printMatchSummary(a, sum, asJSON)
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newMatchReviewCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "review",
		Short: "List the last match run's pairs for review that no one has decided, with each score's explanation",
		Long: `review lists the pairs of records the last 'match run' could not decide
(strongest first) and that no one has linked or unlinked since, each with
its match weight, why it is in review and every field's agreement level and
weight. Decide with 'ehrgate match link' or 'unlink', or on the dashboard's
/identity/review page.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			db, err := a.openExistingStore(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			_, queue, err := (&identity.Service{Docs: db}).ReviewQueue(cmd.Context())
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no match run yet: run 'ehrgate match run'")
			}
			if err != nil {
				return err
			}
			if asJSON {
				if queue == nil {
					queue = []identity.ReviewPair{}
				}
				return json.NewEncoder(a.stdout).Encode(queue)
			}
			for _, p := range queue {
				fmt.Fprintf(a.stdout, "%s %s  weight %.1f  (%s)\n", p.A, p.B, p.Weight, p.Reason)
				for _, c := range p.Explanation {
					fmt.Fprintf(a.stdout, "    %-10s %+6.1f  %s\n", c.Field, c.Weight, c.Level)
				}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func printMatchSummary(a *app, sum identity.RunSummary, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(a.stdout).Encode(sum)
	}
	fmt.Fprintf(a.stdout, "%s: %d records, %d persons (%d carried over, %d new), %d links, %d overrides, %d pairs for review, %.2f s\n",
		sum.At.Format(time.RFC3339), sum.Records, sum.Persons, sum.Carried, sum.New, sum.Links, sum.Overrides, len(sum.Review), sum.Seconds)
	if ad := sum.LastAdd; ad != nil {
		fmt.Fprintf(a.stdout, "last added %s: %d new, %d changed (%d moved), %d removed records; %d joined a person, %d persons created, %d pairs for review\n",
			sum.LastAddAt.Format(time.RFC3339), ad.New, ad.Changed, ad.Moved, ad.Removed, ad.Joined, ad.Created, ad.Review)
	}
	for i, r := range sum.Review {
		if i == 20 {
			fmt.Fprintf(a.stdout, "  ... %d more\n", len(sum.Review)-i)
			break
		}
		fmt.Fprintf(a.stdout, "  review %s %s  weight %.1f  (%s)\n", r.A, r.B, r.Weight, r.Reason)
	}
	return nil
}

func newMatchOverrideCmd(a *app, action identity.Action) *cobra.Command {
	var by, reason string
	verb := "are one person"
	if action == identity.ActionUnlink {
		verb = "are never one person"
	}
	cmd := &cobra.Command{
		Use:   string(action) + " CONNECTION/ID CONNECTION/ID --by NAME --reason TEXT",
		Short: "Record that two Patient records " + verb + " (respected by every later run)",
		Long: `The decision is kept with who made it and why (the reason must not contain
patient data) and applies from the next 'match run' on; a later decision about
the same two records replaces it.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := make([]identity.Key, 2)
			for i, s := range args {
				conn, id, ok := strings.Cut(s, "/")
				if !ok || conn == "" || id == "" {
					return fmt.Errorf("%q is not CONNECTION/ID", s)
				}
				keys[i] = identity.Key{Source: conn, ID: id}
			}
			if err := a.load(cmd); err != nil {
				return err
			}
			db, err := a.openStore(cmd.Context(), store.OpenOptions{MustExist: true})
			if err != nil {
				return err
			}
			defer db.Close()
			err = (&identity.Service{Docs: db}).SetOverride(cmd.Context(),
				identity.Override{A: keys[0], B: keys[1], Action: action, By: by, Reason: reason})
			if errors.Is(err, identity.ErrInvalidOverride) {
				return fmt.Errorf("two different records, --by and --reason are required")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s %s %s: applies from the next 'match run'\n", action, keys[0], keys[1])
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&by, "by", "", "who decides (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, without patient data (required)")
	return cmd
}

func newMatchEvalCmd(a *app) *cobra.Command {
	var (
		people int
		seed   int64
		asJSON bool
		link   float64
		review float64
		memMB  int64
		misses int
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
			if memMB > 0 {
				debug.SetMemoryLimit(memMB << 20)
			}
			rep, err := identity.RunEval(cmd.Context(), identity.GenOptions{People: people, Seed: seed},
				identity.Options{LinkWeight: link, ReviewWeight: review}, misses)
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
			fmt.Fprintf(a.stdout, "missed true pairs by cause: %v\n", rep.Missed)
			for _, cause := range slices.Sorted(maps.Keys(rep.MissSamples)) {
				for _, s := range rep.MissSamples[cause] {
					fmt.Fprintf(a.stdout, "  %s: %s %s weight %.1f:", cause, s.A, s.B, s.Weight)
					for _, c := range s.Explanation {
						fmt.Fprintf(a.stdout, " %s=%s(%.1f)", c.Field, c.Level, c.Weight)
					}
					fmt.Fprintln(a.stdout)
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&people, "patients", 10000, "number of synthetic people")
	cmd.Flags().IntVar(&misses, "misses", 0, "show up to this many missed true pairs of each cause, with their explanations (synthetic data)")
	cmd.Flags().Int64Var(&memMB, "memory-limit-mb", 1536, "soft memory limit for the Go runtime in MiB (0: none)")
	cmd.Flags().Int64Var(&seed, "seed", 1, "random seed; the same seed gives the same population")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().Float64Var(&link, "link-weight", 0, "match weight in bits at or above which pairs link (0: the default, 14)")
	cmd.Flags().Float64Var(&review, "review-weight", 0, "match weight in bits at or above which unlinked pairs go to review")
	return cmd
}

// requestMatch asks the serving gateways to match the Patients a command
// stored (gateway.RequestMatch); a failure is only logged: the leader's
// periodic match job gets to them.
func requestMatch(ctx context.Context, a *app, g *gateway.Gateway) {
	if err := g.RequestMatch(ctx); err != nil {
		a.log.Warn("could not ask for a match of the stored patients; the serving gateway's periodic match will", "error", err)
	}
}
