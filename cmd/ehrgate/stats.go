package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func newStatsCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats --data DIR",
		Short: "Print what the store holds: resources per connection and type, quarantined input",
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
			st, err := db.Stats(cmd.Context())
			if err != nil {
				return err
			}
			type connStats struct {
				Resources map[string]int `json:"resources"`
				Total     int            `json:"total"`
			}
			out := struct {
				Connections map[string]*connStats `json:"connections"`
				Resources   int                   `json:"resources"`
				Versions    int                   `json:"versions"`
				Quarantined int                   `json:"quarantined"`
			}{Connections: map[string]*connStats{}, Versions: st.Versions, Quarantined: st.Quarantined}
			for _, tc := range st.Resources {
				cs := out.Connections[tc.Connection]
				if cs == nil {
					cs = &connStats{Resources: map[string]int{}}
					out.Connections[tc.Connection] = cs
				}
				cs.Resources[tc.Type] = tc.Count
				cs.Total += tc.Count
				out.Resources += tc.Count
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(out)
			}
			fmt.Fprintf(a.stdout, "%d resources (%d versions), %d quarantined\n", out.Resources, out.Versions, out.Quarantined)
			for _, tc := range st.Resources {
				fmt.Fprintf(a.stdout, "  %-12s %-20s %7d\n", tc.Connection, tc.Type, tc.Count)
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
