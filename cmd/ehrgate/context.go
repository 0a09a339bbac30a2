package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"ehrgate/audit"
	"ehrgate/identity"
	"ehrgate/store"
	"ehrgate/summary"
)

func newContextCmd(a *app) *cobra.Command {
	var (
		person    string
		asJSON    bool
		maxTokens int
	)
	cmd := &cobra.Command{
		Use:   "context PATIENT | --person ID",
		Short: "Print a patient's clinical summary for a language model (Markdown or JSON)",
		Long: `context prints a compact, deterministic clinical summary of one patient
(PATIENT: its served id, CONNECTION.ID, as the API names it) or of one person
across connections (--person, a person id from 'ehrgate match run'): problems
(active first), active medications (stale orders marked), allergies, the last
and previous vital signs and labs with their trend, and recent encounters.
Every statement cites its sources [connection Type/id date]; the same fact
from two sources is one statement citing both; a section a source does not
provide says so (not available, could not be fetched, not fetched yet) and is
never shown as "none recorded".

--max-tokens N keeps the output within N tokens (estimated as bytes/4) by
leaving out the least important statements first (oldest encounters, then
labs, inactive problems, vital signs, ...) and saying how many it left out.
The access is recorded in the audit trail before anything is printed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if (person == "" && len(args) == 1) || (person != "" && len(args) == 0) {
				return nil
			}
			return errors.New("give one PATIENT (CONNECTION.ID) or --person ID")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			if maxTokens < 0 {
				return errors.New("--max-tokens must not be negative (0: no budget)")
			}
			ctx := cmd.Context()
			db, err := a.openExistingStore(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			var members []summary.Member
			if person != "" {
				persons, err := (&identity.Service{Docs: db}).Persons(ctx)
				if err != nil {
					return err
				}
				for _, p := range persons {
					if p.ID == person {
						for _, k := range p.Members {
							members = append(members, summary.Member{Connection: k.Source, PatientID: k.ID})
						}
					}
				}
				if len(members) == 0 {
					return fmt.Errorf("no person %s: run 'ehrgate match run' first, or check the id", person)
				}
			} else {
				m, err := servedPatient(ctx, db, args[0])
				if err != nil {
					return err
				}
				members = []summary.Member{m}
			}
			ev := audit.Read(cliAgent(), audit.PatientRef{Connection: members[0].Connection, ID: members[0].PatientID})
			ev.Subtype = []audit.Coding{audit.Interaction("operation")}
			for _, m := range members {
				ev.Resources = append(ev.Resources, audit.ResourceRef{Connection: m.Connection, Type: "Patient", ID: m.PatientID})
			}
			if person != "" {
				ev.Query = "person=" + person
			}
			host, _ := os.Hostname()
			rec := audit.NewLog(db, audit.Source{InstanceID: fmt.Sprintf("%s-%d", host, os.Getpid())}, nil)
			ev.Outcome = audit.OutcomeSuccess
			if err := rec.Record(ctx, ev); err != nil {
				return fmt.Errorf("recording the access in the audit trail (nothing was printed): %w", err)
			}
			s, err := summary.Build(ctx, db, members, summary.Options{Person: person})
			if err != nil {
				return err
			}
			render := summary.Markdown
			if asJSON {
				render = summary.JSON
			}
			_, out := summary.Fit(s, maxTokens, render)
			_, err = a.stdout.Write(out)
			return err
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&person, "person", "", "a person id (from 'ehrgate match run'): summarize every record of the person")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary model as JSON")
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 0, "token budget (bytes/4); 0: no budget")
	return cmd
}

// servedPatient resolves a served id (CONNECTION.ID, the connection
// written as its name or as its id prefix, with '-' for '_') to a stored
// patient.
func servedPatient(ctx context.Context, db store.Reader, served string) (summary.Member, error) {
	conn, id, ok := strings.Cut(served, ".")
	if !ok || conn == "" || id == "" {
		return summary.Member{}, fmt.Errorf("PATIENT is CONNECTION.ID, as the API serves it (epic-prod.eX3pQ)")
	}
	for _, c := range []string{conn, strings.ReplaceAll(conn, "-", "_")} {
		_, err := db.Get(ctx, c, "Patient", id)
		if err == nil {
			return summary.Member{Connection: c, PatientID: id}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return summary.Member{}, fmt.Errorf("reading the patient: %w", err)
		}
	}
	return summary.Member{}, fmt.Errorf("no patient %s in the store", served)
}
