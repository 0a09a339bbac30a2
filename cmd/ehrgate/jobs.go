package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/gateway"
	"ehrgate/jobs"
)

// newJobsCmd is `ehrgate jobs`: the job queue that serve works from.
func newJobsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "The job queue serve works from: list jobs, cancel one",
		Long: `serve runs syncs, bulk exports, event-driven refreshes and HL7 conversion as jobs
in a queue kept in the store, shared by every replica on it. 'jobs list' shows
them (newest first); 'jobs cancel ID' gives one up (a running job's handler is
told to stop; it is not retried).`,
	}
	cmd.AddCommand(newJobsListCmd(a), newJobsCancelCmd(a))
	return cmd
}

func newJobsListCmd(a *app) *cobra.Command {
	var (
		states, kinds []string
		limit         int
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "list [--state running,retryable,...] [--kind sync,...] [--limit N] [--json]",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			q, done, err := a.openJobQueue(ctx)
			if err != nil {
				return err
			}
			defer done()
			f := jobs.Filter{Kinds: splitList(kinds), Limit: limit}
			for _, s := range splitList(states) {
				st := jobs.State(s)
				if !validState(st) {
					return fmt.Errorf("--state %q: want one of %v", s, jobs.States)
				}
				f.States = append(f.States, st)
			}
			list, err := q.List(ctx, f)
			if errors.Is(err, jobs.ErrNoSchema) {
				list, err = nil, nil // no job ever ran on this store
			}
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []jobs.Job{}
				}
				return json.NewEncoder(a.stdout).Encode(list)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tJOB\tSTATE\tATTEMPT\tCREATED\tBY\tLAST ERROR")
			for _, j := range list {
				state := string(j.State)
				if j.Interrupted(now) {
					state = "interrupted"
				}
				by := ""
				if len(j.AttemptedBy) > 0 {
					by = j.AttemptedBy[len(j.AttemptedBy)-1]
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Summary(), state, j.Attempt, j.MaxAttempts,
					j.CreatedAt.Local().Format(time.DateTime), by, j.LastError())
			}
			return tw.Flush()
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringSliceVar(&states, "state", nil, "only jobs in these states (running, retryable, available, scheduled, pending, discarded, cancelled, completed)")
	cmd.Flags().StringSliceVar(&kinds, "kind", nil, "only jobs of these kinds (sync, bulk_export, refresh_patient, hl7_convert, writeback_send, writeback_sweep, pipeline_run, identity_match, ...)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many jobs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func validState(s jobs.State) bool {
	for _, v := range jobs.States {
		if v == s {
			return true
		}
	}
	return false
}

func newJobsCancelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Give a job up: it is not run (again); a running one is told to stop",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("job id %q is not a number", args[0])
			}
			ctx := cmd.Context()
			q, done, err := a.openJobQueue(ctx)
			if err != nil {
				return err
			}
			defer done()
			j, err := q.Cancel(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "job %d (%s): %s\n", j.ID, j.Summary(), j.State)
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	return cmd
}

// openJobQueue opens the existing store's job queue (without starting it)
// for a command that reads or cancels jobs; done releases both.
func (a *app) openJobQueue(ctx context.Context) (q *jobs.Queue, done func(), err error) {
	db, err := a.openExistingStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	q, closeQ, err := gateway.OpenQueue(ctx, db, jobs.Options{Logger: a.log})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return q, func() { closeQ(); db.Close() }, nil
}
