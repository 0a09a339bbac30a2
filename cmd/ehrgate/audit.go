package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/audit"
	"ehrgate/store"
)

// auditPage is how many entries `ehrgate audit` reads from the store at once.
const auditPage = 500

func newAuditCmd(a *app) *cobra.Command {
	var (
		q            store.AuditQuery
		since, until string
		limit        int
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "audit [--patient ID] [--agent WHO] [--since T] [--json]",
		Short: "Print the audit trail: who accessed which patient's data, when, from where",
		Long: `Print the audit trail, oldest first: one line per access, or with --json one
FHIR R4 AuditEvent per line (IHE Basic Audit Log Patterns), for auditors and SIEMs.
--since and --until take an RFC 3339 time, a date (2026-12-07, UTC) or a duration
back from now (24h). Read-only: it never creates a store.

'ehrgate audit verify' checks the trail's hash chain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			now := time.Now()
			if q.Since, err = parseAuditTime(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.Until, err = parseAuditTime(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			return a.withAuditLog(cmd, func(ctx context.Context, trail store.AuditLog) error {
				n := 0
				for {
					q.Limit = auditPage
					if limit > 0 && limit-n < q.Limit {
						q.Limit = limit - n
					}
					page, err := trail.QueryAudit(ctx, q)
					if err != nil {
						return err
					}
					for _, e := range page {
						if err := printAuditEntry(a, e, asJSON); err != nil {
							return err
						}
					}
					n += len(page)
					if len(page) < q.Limit || (limit > 0 && n >= limit) {
						return nil
					}
					q.After = page[len(page)-1].Seq
				}
			})
		},
	}
	addDataFlag(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&q.Patient, "patient", "", "only accesses to this patient's data (the patient's resource id)")
	f.StringVar(&q.Connection, "connection", "", "only patients of this connection")
	f.StringVar(&q.Agent, "agent", "", "only accesses by this user or app (user id, or client id when no user)")
	f.StringVar(&q.Type, "type", "", "only events of this type code (rest, 110106 for exports, 110114 for launches)")
	f.StringVar(&q.Subtype, "subtype", "", "only events of this subtype (read, search-type, ...)")
	f.StringVar(&since, "since", "", "only events recorded at or after this time")
	f.StringVar(&until, "until", "", "only events recorded before this time")
	f.IntVar(&limit, "limit", 0, "print at most this many events (0: all)")
	f.BoolVar(&asJSON, "json", false, "print FHIR AuditEvents as JSON lines")
	cmd.AddCommand(newAuditVerifyCmd(a))
	return cmd
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain (exit 0 intact, 3 broken)",
		Long: `Walk the audit trail from its first event and check that each event is chained
to the one before it by hash. Exit status 0 when intact; 3 when an event was
changed, removed or inserted, printing the first sequence number that does not
follow. The head hash printed can be noted elsewhere: the chain alone cannot show
that its newest events were removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAuditLog(cmd, func(ctx context.Context, trail store.AuditLog) error {
				v, err := trail.VerifyAudit(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					out := struct {
						Intact  bool   `json:"intact"`
						Entries int64  `json:"entries"`
						Last    int64  `json:"last"`
						Head    string `json:"head,omitempty"`
						Broken  int64  `json:"broken,omitempty"`
						Reason  string `json:"reason,omitempty"`
					}{v.Intact(), v.Entries, v.Last, hex.EncodeToString(v.Head), v.Broken, v.Reason}
					if err := json.NewEncoder(a.stdout).Encode(out); err != nil {
						return err
					}
				} else if v.Intact() {
					fmt.Fprintf(a.stdout, "audit trail intact: %d events, head %x\n", v.Entries, v.Head)
				} else {
					fmt.Fprintf(a.stdout, "audit trail broken at sequence %d: %s (%d events before it verify)\n", v.Broken, v.Reason, v.Entries)
				}
				if !v.Intact() {
					return &exitError{code: 3, msg: fmt.Sprintf("audit trail broken at sequence %d", v.Broken)}
				}
				return nil
			})
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// withAuditLog opens the existing store read-only and runs fn on its audit
// trail.
func (a *app) withAuditLog(cmd *cobra.Command, fn func(ctx context.Context, trail store.AuditLog) error) error {
	if err := a.load(cmd); err != nil {
		return err
	}
	db, err := a.openExistingStore(cmd.Context())
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(cmd.Context(), db)
}

func printAuditEntry(a *app, e store.AuditEntry, asJSON bool) error {
	if asJSON {
		res, err := audit.Resource(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", res)
		return err
	}
	kind := e.Type
	if e.Subtype != "" {
		kind += "/" + e.Subtype
	}
	patient := "-"
	if e.Patient != "" {
		patient = "Patient/" + e.Patient
		if e.Connection != "" {
			patient = e.Connection + ":" + patient
		}
	}
	_, err := fmt.Fprintf(a.stdout, "%6d  %s  %-18s %s  outcome %-2s  %-20s %s\n", e.Seq,
		e.Recorded.UTC().Format(time.RFC3339), kind, e.Action, e.Outcome, e.Agent, patient)
	return err
}

// parseAuditTime reads an RFC 3339 time, a date (UTC midnight) or a duration
// back from now; "" is the zero time.
func parseAuditTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, a date or a duration", s)
}
