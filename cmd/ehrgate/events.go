package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/ehrsim"
	"ehrgate/subscriptions/feedeval"
)

func newEventsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Real-time events: FHIR Subscriptions from the EHRs, durable events to the apps",
	}
	cmd.AddCommand(newEventsEvalCmd(a))
	return cmd
}

func newEventsEvalCmd(a *app) *cobra.Command {
	var o feedeval.Options
	var faults string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval --changes N [--faults drop,duplicate,reorder,delay] [--json]",
		Short: "Run the simulated EHR's change feed against ehrgate's subscriptions in one process and count what was missed",
		Long: `eval starts the simulated EHR with topic-based Subscriptions and ehrgate
subscribed to it (a temporary sqlite store unless --store is given), makes the
simulated hospital change N resources while the notifications are faulted, and
publishes each stored change as a durable event to a deliberately slow webhook
consumer. When the store and the consumer have caught up (or --timeout passed)
it compares the store with the simulator resource by resource.

missed counts simulator resources not at their version in the store;
duplicates_applied counts versions written twice or after a newer one;
lag_ms_p99 is change made -> stored; webhook counts events sent and received.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range strings.Split(faults, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				k, err := ehrsim.ParseNotifyFault(f)
				if err != nil {
					return err
				}
				o.Faults = append(o.Faults, k)
			}
			res, err := feedeval.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(res)
			}
			fmt.Fprintf(a.stdout, "changes %d, applied %d, missed %d, duplicates applied %d, lag p99 %.1f ms\nwebhook: sent %d, received %d, missed %d\n",
				res.Changes, res.Applied, res.Missed, res.DuplicatesApplied, res.LagMsP99, res.Webhook.Sent, res.Webhook.Received, res.Webhook.Missed)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Changes, "changes", 1000, "changes the simulated hospital makes")
	f.StringVar(&faults, "faults", "", "notification faults, comma-separated: drop, duplicate, reorder, delay, wrong-secret")
	f.Float64Var(&o.FaultRate, "fault-rate", 0.2, "share of notifications faulted")
	f.Float64Var(&o.Rate, "rate", 0, "changes per second (0: as fast as they are made)")
	f.IntVar(&o.Patients, "patients", 100, "patients in the simulated EHR")
	f.StringVar(&o.Payload, "payload", "full-resource", "notification payload: full-resource, id-only or empty")
	f.StringVar(&o.StoreURL, "store", "", "store URL (default: a temporary sqlite store)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the changes and faults")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "longest wait for the store and the consumer to catch up")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
