package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/gateway"
	"ehrgate/store"
	"ehrgate/writeback"
)

// writeStates are the states --state accepts.
var writeStates = []writeback.State{writeback.StateProposed, writeback.StateApproved, writeback.StateSent,
	writeback.StateConfirmed, writeback.StateRejected, writeback.StateConflicted, writeback.StateFailed}

// newWritesCmd is `ehrgate writes`: the write-back outbox.
func newWritesCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "writes",
		Short: "The write-back outbox: list proposed writes, show one, approve or reject it",
		Long: `Everything ehrgate would write into an EHR (Flags, derived Observations, Tasks,
Communications, draft notes) is first a record in the outbox, kept encrypted in
the store. A connection's write policy (write: in the configuration) decides
whether a record waits for a person (approval: human) or is approved by the
policy. 'serve' sends approved records from its job queue and follows each to
confirmed (read back, with its Provenance), failed or conflicted.

'writes approve' and 'writes reject' record who decided and why; an approved
record is sent by 'serve' (at once when it runs, else when it starts).
The dashboard's /writes page does the same for signed-in admins and clinicians.`,
	}
	cmd.AddCommand(newWritesListCmd(a), newWritesShowCmd(a), newWritesDecideCmd(a, true), newWritesDecideCmd(a, false))
	return cmd
}

// withOutbox loads the configuration, opens the existing store, its
// keyring and a gateway over them, and runs fn with the gateway's outbox.
func (a *app) withOutbox(cmd *cobra.Command, fn func(ctx context.Context, g *gateway.Gateway, ob *writeback.Outbox) error) error {
	if err := a.load(cmd); err != nil {
		return err
	}
	ctx := cmd.Context()
	src, err := openKeyring(a)
	if err != nil {
		return err
	}
	st, err := a.openExistingStore(ctx)
	if err != nil {
		return err
	}
	g, err := gateway.New(ctx, gateway.Options{Config: a.cfg, Store: st, Keyring: src.Ring, Logger: a.log, Getenv: a.getenv})
	if err != nil {
		st.Close()
		return err
	}
	defer cliGateway{g}.Close()
	return fn(ctx, g, g.Outbox())
}

func newWritesListCmd(a *app) *cobra.Command {
	var (
		state, conn string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "list [--state STATE] [--connection NAME] [--json]",
		Short: "List the outbox's records",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var states []writeback.State
			if state != "" {
				if !slices.Contains(writeStates, writeback.State(state)) {
					return fmt.Errorf("--state %q: want one of %v", state, writeStates)
				}
				states = append(states, writeback.State(state))
			}
			return a.withOutbox(cmd, func(ctx context.Context, _ *gateway.Gateway, ob *writeback.Outbox) error {
				recs, err := ob.List(ctx, conn, states...)
				if err != nil {
					return err
				}
				if asJSON {
					type row struct {
						ID         string               `json:"id"`
						Connection string               `json:"connection"`
						Type       string               `json:"resource_type"`
						Operation  writeback.Operation  `json:"operation"`
						Patient    string               `json:"patient,omitempty"`
						Rule       writeback.Rule       `json:"rule"`
						State      writeback.State      `json:"state"`
						Last       writeback.Transition `json:"last"`
					}
					rows := []row{}
					for _, r := range recs {
						rows = append(rows, row{r.ID, r.Connection, r.ResourceType, r.Operation, r.Patient, r.Rule, r.State, r.Last()})
					}
					return json.NewEncoder(a.stdout).Encode(rows)
				}
				tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tCONNECTION\tWRITE\tPATIENT\tRULE\tSTATE\tLAST CHANGE")
				for _, r := range recs {
					l := r.Last()
					fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s %s\t%s\t%s by %s\n", r.ID, r.Connection, r.Operation, r.ResourceType,
						orDash(r.Patient), r.Rule.Name, r.Rule.Version, r.State, l.At.Local().Format(time.DateTime), l.By)
				}
				return tw.Flush()
			})
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&state, "state", "", "only records in this state (proposed, approved, sent, confirmed, rejected, conflicted, failed)")
	cmd.Flags().StringVar(&conn, "connection", "", "only records of this connection")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newWritesShowCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a record: its history, what it changes (for an update, a diff against the version read) and the proposed resource",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withOutbox(cmd, func(ctx context.Context, g *gateway.Gateway, ob *writeback.Outbox) error {
				rec, err := ob.Get(ctx, args[0])
				if errors.Is(err, writeback.ErrNotFound) {
					return fmt.Errorf("no write-back record %q", args[0])
				}
				if err != nil {
					return err
				}
				var versions writeback.Versions
				if st, ok := g.Store().(store.VersionReader); ok {
					versions = st
				}
				before, against, err := writeback.Before(ctx, versions, rec)
				if err != nil {
					return err
				}
				changes, err := writeback.Diff(before, rec.Resource)
				if err != nil {
					return err
				}
				printWrite(a, rec, against, changes)
				return nil
			})
		},
	}
	addDataFlag(cmd.Flags())
	return cmd
}

// printWrite prints a record for `writes show`.
func printWrite(a *app, rec writeback.Record, against string, changes []writeback.Change) {
	w := a.stdout
	fmt.Fprintf(w, "record %s: %s %s on %s, %s\n", rec.ID, rec.Operation, rec.ResourceType, rec.Connection, rec.State)
	fmt.Fprintf(w, "proposed by %s %s; business identifier %s|%s\n", rec.Rule.Name, rec.Rule.Version, rec.Identifier.System, rec.Identifier.Value)
	if rec.Patient != "" {
		fmt.Fprintf(w, "patient %s\n", rec.Patient)
	}
	if rec.Operation == writeback.OpUpdate {
		fmt.Fprintf(w, "target %s/%s, version %s\n", rec.ResourceType, rec.TargetID, rec.BaseVersion)
	}
	if rec.ResultID != "" {
		fmt.Fprintf(w, "written as %s/%s version %s, Provenance/%s\n", rec.ResourceType, rec.ResultID, rec.ResultVersion, rec.ProvenanceID)
	}
	if rec.Status != 0 {
		fmt.Fprintf(w, "the EHR's last answer: HTTP %d\n", rec.Status)
		if rec.Outcome != nil {
			for _, is := range rec.Outcome.Issue {
				fmt.Fprintf(w, "  %s %s %s\n", is.Severity, is.Code, is.Diagnostics)
			}
		}
	}
	fmt.Fprintln(w, "\nhistory:")
	for _, t := range rec.Transitions {
		from := string(t.From)
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(w, "  %s  %s → %s  by %s: %s\n", t.At.Local().Format(time.DateTime), from, t.To, t.By, t.Why)
	}
	if rec.Operation == writeback.OpCreate {
		against = "nothing (a new resource)"
	}
	fmt.Fprintf(w, "\nchanges against %s:\n", against)
	if len(changes) == 0 {
		fmt.Fprintln(w, "  (no field changes)")
	}
	for _, c := range changes {
		switch c.Kind {
		case writeback.Added:
			fmt.Fprintf(w, "  + %s: %s\n", c.Path, c.After)
		case writeback.Removed:
			fmt.Fprintf(w, "  - %s: %s\n", c.Path, c.Before)
		default:
			fmt.Fprintf(w, "  ~ %s: %s → %s\n", c.Path, c.Before, c.After)
		}
	}
	var res any
	if json.Unmarshal(rec.Resource, &res) == nil {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(w, "\nproposed resource:\n%s\n", b)
	}
}

func newWritesDecideCmd(a *app, approve bool) *cobra.Command {
	var by, reason string
	verb, short := "reject", "Reject a record (never sent), with who and why"
	if approve {
		verb, short = "approve", "Approve a proposed (or failed) record, with who and why; serve then sends it"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID --by NAME --reason TEXT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if by == "" || reason == "" {
				return fmt.Errorf("%s needs --by NAME and --reason TEXT", verb)
			}
			return a.withOutbox(cmd, func(ctx context.Context, _ *gateway.Gateway, ob *writeback.Outbox) error {
				var rec writeback.Record
				var err error
				if approve {
					rec, err = ob.Approve(ctx, args[0], by, reason)
				} else {
					rec, err = ob.Reject(ctx, args[0], by, reason)
				}
				switch {
				case errors.Is(err, writeback.ErrNotFound):
					return fmt.Errorf("no write-back record %q", args[0])
				case errors.Is(err, writeback.ErrTransition):
					cur, _ := ob.Get(ctx, args[0])
					return fmt.Errorf("record %s is %s: it cannot be %s now", args[0], cur.State, map[bool]string{true: "approved", false: "rejected"}[approve])
				case err != nil:
					return err
				}
				fmt.Fprintf(a.stdout, "record %s: %s by %s\n", rec.ID, rec.State, by)
				return nil
			})
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&by, "by", "", "who decides (recorded in the record's history and, on approval, in the Provenance)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the record's history)")
	return cmd
}
