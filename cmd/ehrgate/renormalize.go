package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ehrgate/normalize"
	"ehrgate/store"
	"ehrgate/terminology"
)

// addNormalizerFlags adds the flags that configure the terminology chain for
// commands that normalize stored resources.
func addNormalizerFlags(fs *pflag.FlagSet) {
	fs.String("local-code-map", "", "local-code map CSV (connection, source_system, source_code, target_system, target_code, ...) applied after standard codes")
	fs.Duration("stale-after", normalize.DefaultStaleAfter, "quiet period after which an active medication order is flagged stale (0 = never)")
}

// normalizerFromFlags builds the Normalizer the flags describe, falling back
// to the configuration's local_code_map and stale_after.
func normalizerFromFlags(a *app, cmd *cobra.Command) (*normalize.Normalizer, error) {
	var opts []normalize.Option
	path := a.cfg.LocalCodeMap
	if cmd.Flags().Changed("local-code-map") {
		path, _ = cmd.Flags().GetString("local-code-map")
	}
	if path != "" {
		m, err := terminology.OpenLocalMap(path)
		if err != nil {
			return nil, err
		}
		opts = append(opts, normalize.WithLocalCodes(m))
	}
	stale := time.Duration(a.cfg.StaleAfter)
	if cmd.Flags().Changed("stale-after") || stale == 0 {
		stale, _ = cmd.Flags().GetDuration("stale-after")
	}
	opts = append(opts, normalize.WithStaleAfter(stale))
	return normalize.New(opts...), nil
}

// renormalizeStore is what renormalize needs from a store.
type renormalizeStore interface {
	store.PagedScanner
	store.NormalizedRewriter
	Quarantine(ctx context.Context, item store.QuarantineItem) error
}

// renormalizeSummary counts what a renormalize pass did.
type renormalizeSummary struct {
	Scanned    int    `json:"scanned"`
	Changed    int    `json:"changed"`
	Unchanged  int    `json:"unchanged"`
	Failed     int    `json:"failed"` // could not be normalized: quarantined, row left as it was
	DurationMS int64  `json:"duration_ms"`
	DryRun     bool   `json:"dryRun,omitempty"`
	Connection string `json:"connection,omitempty"`
	Type       string `json:"type,omitempty"`
}

// renormalize rebuilds the normalized JSON of every current record from its
// raw bytes with n, page by page, rewriting only the rows whose JSON changed.
// It never calls an EHR. Resources that no longer normalize are quarantined
// with the reason (never the payload in the reason) and left as they were.
func renormalize(ctx context.Context, st renormalizeStore, n *normalize.Normalizer, q store.ScanQuery, dryRun bool) (renormalizeSummary, error) {
	start := time.Now()
	sum := renormalizeSummary{DryRun: dryRun, Connection: q.Connection, Type: q.Type}
	for {
		page, err := st.ScanCurrentPage(ctx, q)
		if err != nil {
			return sum, err
		}
		if len(page) == 0 {
			break
		}
		q.After = page[len(page)-1].Key
		var updates []store.NormalizedUpdate
		for i := range page {
			rec := &page[i]
			sum.Scanned++
			res, err := n.Normalize(normalize.Ref{Connection: rec.Connection, Type: rec.Type, ID: rec.ID}, rec.Raw)
			var b []byte
			if err == nil {
				b, err = json.Marshal(res)
			}
			if err != nil {
				sum.Failed++
				if dryRun {
					continue
				}
				item := store.QuarantineItem{Connection: rec.Connection, Type: rec.Type, ResourceID: rec.ID,
					Source: "renormalize", Reason: err.Error(), Raw: rec.Raw, ReceivedAt: time.Now()}
				if qerr := st.Quarantine(ctx, item); qerr != nil {
					return sum, fmt.Errorf("quarantining %s/%s: %w", rec.Type, rec.ID, qerr)
				}
				continue
			}
			if string(b) == string(rec.Normalized) {
				sum.Unchanged++
				continue
			}
			sum.Changed++
			updates = append(updates, store.NormalizedUpdate{Key: rec.Key, Normalized: b})
		}
		if !dryRun {
			if err := st.RewriteNormalized(ctx, updates); err != nil {
				return sum, err
			}
		}
	}
	sum.DurationMS = time.Since(start).Milliseconds()
	return sum, nil
}

func newRenormalizeCmd(a *app) *cobra.Command {
	var asJSON, dryRun bool
	var connection, typ string
	var batch int
	cmd := &cobra.Command{
		Use:   "renormalize --data DIR",
		Short: "Rebuild every normalized row from the stored raw resources (after a mapping change), without calling any EHR",
		Long: `renormalize re-runs normalization over the raw resources already in the store,
with the current terminology tables and local-code map, and rewrites the
normalized JSON of rows that changed, in batches. Raw bytes and versions are
never touched. A resource that no longer normalizes is quarantined with the
reason and its row left as it was. Exit status 3 when some failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			n, err := normalizerFromFlags(a, cmd)
			if err != nil {
				return err
			}
			g, err := a.openGateway(cmd.Context())
			if err != nil {
				return err
			}
			defer g.Close()
			sum, err := renormalize(cmd.Context(), g.Store(), n, store.ScanQuery{Connection: connection, Type: typ, Limit: batch}, dryRun)
			if err != nil {
				return fmt.Errorf("renormalizing: %w", err)
			}
			a.log.Info("renormalized", "scanned", sum.Scanned, "changed", sum.Changed, "unchanged", sum.Unchanged,
				"failed", sum.Failed, "duration_ms", sum.DurationMS)
			if asJSON {
				if err := json.NewEncoder(a.stdout).Encode(sum); err != nil {
					return err
				}
			} else {
				verb := "rewritten"
				if dryRun {
					verb = "would be rewritten"
				}
				fmt.Fprintf(a.stdout, "%d resources: %d changed (%s), %d unchanged, %d failed (quarantined) in %d ms\n",
					sum.Scanned, sum.Changed, verb, sum.Unchanged, sum.Failed, sum.DurationMS)
			}
			if sum.Failed > 0 {
				return &exitError{code: 3, msg: fmt.Sprintf("%d resources could not be normalized and were quarantined", sum.Failed)}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	addNormalizerFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would change without writing or quarantining")
	cmd.Flags().StringVar(&connection, "connection", "", "only this connection")
	cmd.Flags().StringVar(&typ, "type", "", "only this resource type")
	cmd.Flags().IntVar(&batch, "batch", 500, "records read and rewritten per transaction")
	return cmd
}
