package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/gateway"
	"ehrgate/jobs"
	"ehrgate/store"
)

func newMigrateCmd(a *app) *cobra.Command {
	var status, asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate [--status] [--store URL | --data DIR]",
		Short: "Apply the store's schema migrations, or show them with --status",
		Long: `migrate brings the store's schema up to this ehrgate's version. serve, sync and
the other commands that write migrate on their own; run migrate first when several
replicas share one PostgreSQL database (as a Kubernetes Job or init container) or
to see what an upgrade will change. Replicas migrating at once take turns.

With --status it changes nothing and lists each migration, applied (with when) or
pending, and any applied by a newer ehrgate, which this one refuses to use.

Exit status: 0 when the store is (or, with --status, already was) up to date, 3
with --status when migrations are pending, 1 on error (including a store written
by a newer ehrgate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx, store.OpenOptions{NoMigrate: true, MustExist: status})
			if err != nil {
				return err
			}
			defer st.Close()
			if !status {
				before, err := st.Migrations(ctx)
				if err != nil {
					return err
				}
				if err := st.Migrate(ctx); err != nil {
					return fmt.Errorf("migrating %s: %w", st.Location(), err)
				}
				q, closeQ, err := gateway.OpenQueue(ctx, st, jobs.Options{Logger: a.log})
				if err != nil {
					return err
				}
				defer closeQ()
				if err := q.Migrate(ctx); err != nil {
					return fmt.Errorf("migrating the job queue of %s: %w", st.Location(), err)
				}
				n := 0
				for _, m := range before {
					if !m.Applied {
						n++
					}
				}
				fmt.Fprintf(a.stdout, "%s: %d migration(s) applied, schema up to date\n", st.Location(), n)
				return nil
			}
			ms, err := st.Migrations(ctx)
			if err != nil {
				return err
			}
			q, closeQ, err := gateway.OpenQueue(ctx, st, jobs.Options{Logger: a.log})
			if err != nil {
				return err
			}
			defer closeQ()
			jobsApplied, jobsLatest, err := q.SchemaVersion(ctx)
			if err != nil && !errors.Is(err, jobs.ErrNoSchema) {
				return err
			}
			pending, newer := 0, false
			if jobsApplied < jobsLatest {
				pending++
			}
			for _, m := range ms {
				if !m.Applied {
					pending++
				}
				newer = newer || m.Unknown
			}
			if asJSON {
				if err := json.NewEncoder(a.stdout).Encode(struct {
					Store      string            `json:"store"`
					Migrations []store.Migration `json:"migrations"`
					JobQueue   struct {
						Applied int `json:"applied"`
						Latest  int `json:"latest"`
					} `json:"job_queue"`
				}{st.Location(), ms, struct {
					Applied int `json:"applied"`
					Latest  int `json:"latest"`
				}{jobsApplied, jobsLatest}}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "store: %s\n", st.Location())
				tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tMIGRATION\tSTATE")
				for _, m := range ms {
					state := "pending"
					switch {
					case m.Unknown:
						state = "applied by a newer ehrgate"
					case m.Applied:
						state = "applied " + m.AppliedAt.Local().Format(time.DateTime)
					}
					name := m.Name
					if name == "" {
						name = "(unknown to this version)"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, name, state)
				}
				state := "up to date"
				if jobsApplied < jobsLatest {
					state = "pending"
				}
				fmt.Fprintf(tw, "-\tjob queue (River) %d of %d\t%s\n", jobsApplied, jobsLatest, state)
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			switch {
			case newer:
				return fmt.Errorf("%s: %w", st.Location(), store.ErrSchemaTooNew)
			case pending > 0:
				return &exitError{code: 3, msg: fmt.Sprintf("%d migration(s) pending: run ehrgate migrate", pending)}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&status, "status", false, "show the migrations and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --status, print as JSON")
	return cmd
}
