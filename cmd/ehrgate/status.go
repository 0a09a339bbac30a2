package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"ehrgate/gateway"
	"ehrgate/jobs"
	"ehrgate/smart"
	"ehrgate/store"

	"github.com/spf13/cobra"
)

// connectionReport is one connection's line in `ehrgate status`.
type connectionReport struct {
	Name        string    `json:"name"`
	BaseURL     string    `json:"base_url"`
	Auth        string    `json:"auth"`
	Vendor      string    `json:"vendor"`            // configured, or detected by the last probe
	Version     string    `json:"version,omitempty"` // software version from the last probe
	ProbedAt    time.Time `json:"probed_at,omitzero"`
	LastSync    time.Time `json:"last_sync,omitzero"`
	LastErrors  int       `json:"last_sync_errors"`
	SyncError   string    `json:"sync_error,omitempty"`
	Token       string    `json:"token"` // ok, needs_reauthorization, none
	TokenReason string    `json:"token_reason,omitempty"`
	LastFetched time.Time `json:"last_fetched,omitzero"`
	Resources   int       `json:"resources"`
	// NotGranted lists resource types the EHR did not grant ehrgate's
	// token (narrower scopes than requested), as of ScopesCheckedAt.
	NotGranted      []string  `json:"not_granted,omitempty"`
	ScopesCheckedAt time.Time `json:"scopes_checked_at,omitzero"`
	// BulkExports is the last bulk export of each scope.
	BulkExports map[string]*gateway.BulkOutcome `json:"bulk_exports,omitempty"`
	// Runs are the runs under way or interrupted ("sync", "bulk export
	// system").
	Runs []runReport `json:"runs,omitempty"`
}

// runReport is a run that started and did not finish.
type runReport struct {
	What  string    `json:"what"`
	State string    `json:"state"` // running, interrupted, or "running or interrupted" (another host)
	Since time.Time `json:"since"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
}

func runReportOf(what string, m *gateway.RunMark) runReport {
	r := runReport{What: what, Since: m.Since, Host: m.Host, PID: m.PID, State: "running or interrupted"}
	if alive, ok := m.Alive(); ok {
		r.State = "interrupted"
		if alive {
			r.State = "running"
		}
	}
	return r
}

// jobReport is a job of the queue as status shows it.
type jobReport struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	Args      string    `json:"args"`
	State     string    `json:"state"`
	Attempt   int       `json:"attempt"`
	Since     time.Time `json:"since,omitzero"`
	By        string    `json:"by,omitempty"`
	LastError string    `json:"last_error,omitempty"`
}

// listJobs returns the queue's jobs that need attention: active ones, and
// those given up in the last week. A store without job tables has none.
func listJobs(ctx context.Context, db store.Backend, log *slog.Logger) ([]jobReport, error) {
	q, closeQ, err := gateway.OpenQueue(ctx, db, jobs.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	defer closeQ()
	list, err := q.List(ctx, jobs.Filter{States: []jobs.State{jobs.Running, jobs.Retryable, jobs.Available,
		jobs.Scheduled, jobs.Pending, jobs.Discarded, jobs.Cancelled}})
	if errors.Is(err, jobs.ErrNoSchema) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []jobReport
	for _, j := range list {
		r := jobReport{ID: j.ID, Kind: j.Kind, Args: string(j.Args), State: string(j.State), Attempt: j.Attempt,
			Since: j.AttemptedAt, LastError: j.LastError()}
		if len(j.AttemptedBy) > 0 {
			r.By = j.AttemptedBy[len(j.AttemptedBy)-1]
		}
		switch {
		case j.Interrupted(now):
			r.State = "interrupted (its process stopped; another takes it over)"
		case j.State == jobs.Running:
		case j.State == jobs.Discarded || j.State == jobs.Cancelled:
			if now.Sub(j.FinalizedAt) > 7*24*time.Hour {
				continue
			}
			r.Since = j.FinalizedAt
		default:
			r.Since = j.ScheduledAt
		}
		out = append(out, r)
	}
	return out, nil
}

// bulkState summarizes a connection's bulk exports for the table.
func (r connectionReport) bulkState() string {
	if len(r.BulkExports) == 0 {
		return "-"
	}
	for _, b := range r.BulkExports {
		switch {
		case b.Error != "":
			return "failed"
		case !b.Complete:
			return "INCOMPLETE"
		}
	}
	return "complete"
}

func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --data DIR",
		Short: "Show each connection: vendor, authorization state, data freshness",
		Long: `status reports, for every configured connection (and every connection the store
holds data for): the vendor (configured, or detected by the last 'ehrgate probe'),
the authorization state ('needs_reauthorization' after the EHR refused ehrgate's
refresh token or credentials), when data was last fetched and how many resources
are stored, which resource types the EHR did not grant (narrower scopes than
requested) and, per scope, whether the last bulk export was complete (and if
not, which types and files are missing and why). It reads the data directory
only; it calls no EHR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			// Read-only: no store, data directory or key is created.
			db, err := a.openExistingStore(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			vault := smart.NewVault(db, nil, nil) // reads token states, never tokens
			st, err := db.Stats(ctx)
			if err != nil {
				return err
			}
			byName := map[string]*connectionReport{}
			var order []string
			add := func(name string) *connectionReport {
				if r := byName[name]; r != nil {
					return r
				}
				r := &connectionReport{Name: name, Auth: "none", Vendor: "unknown"}
				byName[name] = r
				order = append(order, name)
				return r
			}
			for _, c := range a.cfg.Connections {
				r := add(c.Name)
				r.BaseURL = c.BaseURL
				if c.Auth != nil && c.Auth.Type != "" {
					r.Auth = c.Auth.Type
				}
				if c.Vendor != "" {
					r.Vendor = c.Vendor + " (configured)"
				}
			}
			names, err := gateway.ListConnectionStates(ctx, db)
			if err != nil {
				return err
			}
			// State an older ehrgate kept in files, until a gateway start
			// imports it into the store.
			legacy := gateway.LegacyConnectionStates(a.cfg.Data)
			for name := range legacy {
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			for _, name := range names {
				saved, ok, err := gateway.LoadConnectionState(ctx, db, name)
				if err != nil {
					return err
				}
				if !ok {
					saved, ok = legacy[name]
				}
				if !ok {
					continue
				}
				r := add(name)
				if r.BaseURL == "" {
					r.BaseURL = saved.BaseURL
				}
				if r.Auth == "none" && saved.Auth != "" {
					r.Auth = saved.Auth
				}
				if r.Vendor == "unknown" && saved.Vendor != "" {
					r.Vendor = saved.Vendor
				}
				r.LastSync, r.SyncError = saved.LastSync, saved.Error
				if saved.Summary != nil {
					r.LastErrors = saved.Summary.Errors
				}
				r.NotGranted, r.ScopesCheckedAt, r.BulkExports = saved.NotGranted, saved.ScopesCheckedAt, saved.BulkExports
				for _, what := range slices.Sorted(maps.Keys(saved.Running)) {
					r.Runs = append(r.Runs, runReportOf(what, saved.Running[what]))
				}
			}
			for _, tc := range st.Resources {
				add(tc.Connection).Resources += tc.Count
			}
			for _, name := range order {
				r := byName[name]
				r.LastFetched = st.LastFetched[name]
				if rep, err := gateway.LoadProbe(ctx, db, name); err == nil {
					if r.Vendor == "unknown" {
						r.Vendor = rep.Vendor + " (probed)"
					}
					r.Version, r.ProbedAt = rep.Version, rep.At
					if r.BaseURL == "" {
						r.BaseURL = rep.BaseURL
					}
				}
				vs, err := vault.Status(ctx, name)
				if err != nil {
					return err
				}
				r.Token, r.TokenReason = vs.State, vs.Reason
			}
			reports := make([]connectionReport, 0, len(order))
			for _, name := range order {
				reports = append(reports, *byName[name])
			}
			jobList, err := listJobs(ctx, db, a.log)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"connections": reports, "quarantined": st.Quarantined, "jobs": jobList})
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONNECTION\tVENDOR\tAUTH\tTOKEN\tLAST SYNC\tERRORS\tRESOURCES\tBULK EXPORT")
			for _, r := range reports {
				last := "never"
				switch {
				case r.SyncError != "":
					last = "failed: " + r.SyncError
				case !r.LastSync.IsZero():
					last = r.LastSync.Local().Format(time.DateTime)
				case !r.LastFetched.IsZero():
					last = r.LastFetched.Local().Format(time.DateTime)
				}
				vendor := r.Vendor
				if r.Version != "" {
					vendor += " " + r.Version
				}
				token := r.Token
				if r.TokenReason != "" {
					token += " (" + r.TokenReason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Name, vendor, r.Auth, token, last, r.LastErrors, r.Resources, r.bulkState())
			}
			fmt.Fprintf(tw, "\nquarantined inputs: %d\n", st.Quarantined)
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range reports {
				printConnectionNotes(a.stdout, r)
			}
			if len(jobList) > 0 {
				fmt.Fprintln(a.stdout, "\njobs:")
				tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tJOB\tSTATE\tATTEMPT\tSINCE\tBY\tLAST ERROR")
				for _, j := range jobList {
					since := "-"
					if !j.Since.IsZero() {
						since = j.Since.Local().Format(time.DateTime)
					}
					fmt.Fprintf(tw, "%d\t%s %s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Kind, j.Args, j.State, j.Attempt, since, j.By, j.LastError)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// printConnectionNotes prints what needs attention on a connection: types
// not granted, and incomplete or failed bulk exports.
func printConnectionNotes(w io.Writer, r connectionReport) {
	for _, run := range r.Runs {
		switch run.State {
		case "interrupted":
			fmt.Fprintf(w, "%s: %s INTERRUPTED: started %s (process %d is gone); the next run completes it\n", r.Name, run.What, run.Since.Local().Format(time.DateTime), run.PID)
		case "running":
			fmt.Fprintf(w, "%s: %s running since %s (process %d)\n", r.Name, run.What, run.Since.Local().Format(time.DateTime), run.PID)
		default:
			fmt.Fprintf(w, "%s: %s started %s on %s (process %d) and has not finished: running there, or interrupted\n", r.Name, run.What, run.Since.Local().Format(time.DateTime), run.Host, run.PID)
		}
	}
	if len(r.NotGranted) > 0 {
		fmt.Fprintf(w, "%s: the EHR did not grant reading %s (narrower scopes than requested)\n", r.Name, strings.Join(r.NotGranted, ", "))
	}
	for _, scope := range slices.Sorted(maps.Keys(r.BulkExports)) {
		b := r.BulkExports[scope]
		switch {
		case b.Error != "":
			fmt.Fprintf(w, "%s: bulk export (%s) failed %s: %s\n", r.Name, scope, b.At.Local().Format(time.DateTime), b.Error)
		case !b.Complete:
			fmt.Fprintf(w, "%s: bulk export (%s) of %s INCOMPLETE; the next run asks again for:\n", r.Name, scope, b.At.Local().Format(time.DateTime))
			for _, is := range b.Incomplete {
				fmt.Fprintf(w, "  %s: %s\n", typeLabels([]string{is.Type})[0], is.Reason)
				for _, f := range is.Files {
					fmt.Fprintf(w, "    %s\n", f)
				}
			}
		}
	}
}
