package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/login"
	"ehrgate/store"
)

// newUsersCmd is `ehrgate users`: the dashboard's local accounts.
func newUsersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "users",
		Short: "Manage the dashboard's local accounts (login.mode: local)",
		Long: `users manages the people who sign in to the dashboard with a local account
(login.mode: local). Accounts are kept in the store, so every replica sees them;
only an argon2id hash of each password is kept. Passwords are read from standard
input (the first line) or, in a terminal, prompted for twice; never from a flag.

Roles: admin (everything), clinician (patients and charts), auditor (the audit
trail, no charts). Removing an account or changing its password or roles ends its
sessions.`,
	}
	cmd.AddCommand(newUsersAddCmd(a), newUsersListCmd(a), newUsersRemoveCmd(a), newUsersPasswdCmd(a))
	return cmd
}

func newUsersAddCmd(a *app) *cobra.Command {
	var (
		roleNames   []string
		displayName string
	)
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE [--role ROLE] [--name \"Display Name\"]",
		Short: "Create a local account (password from stdin or a prompt)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			var roles []login.Role
			for _, n := range roleNames {
				for _, part := range strings.Split(n, ",") {
					r, err := login.ParseRole(part)
					if err != nil {
						return err
					}
					roles = append(roles, r)
				}
			}
			if err := login.ValidName(args[0]); err != nil {
				return err
			}
			if len(roles) == 0 {
				return fmt.Errorf("give at least one --role (admin, clinician or auditor)")
			}
			pw, err := login.ReadNewPassword(cmd.InOrStdin(), a.stderr, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx, store.OpenOptions{})
			if err != nil {
				return err
			}
			defer st.Close()
			if err := login.NewAccounts(st, login.AccountOptions{}).Add(ctx, args[0], displayName, roles, pw); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added %s (%s)\n", args[0], roleList(roles))
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringArrayVar(&roleNames, "role", nil, "a role: admin, clinician or auditor (repeatable)")
	cmd.Flags().StringVar(&displayName, "name", "", "the name shown in the dashboard and the audit trail")
	return cmd
}

func roleList(roles []login.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// accounts opens the existing store's local accounts; done closes it.
func (a *app) accounts(ctx context.Context) (*login.Accounts, func(), error) {
	st, err := a.openExistingStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	return login.NewAccounts(st, login.AccountOptions{}), func() { st.Close() }, nil
}

func newUsersListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List local accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			accts, done, err := a.accounts(ctx)
			if err != nil {
				return err
			}
			defer done()
			list, err := accts.List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []login.Account{}
				}
				return json.NewEncoder(a.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDISPLAY NAME\tROLES\tCREATED\tLAST SIGN-IN\tLOCKED UNTIL")
			when := func(t time.Time) string {
				if t.IsZero() {
					return "-"
				}
				return t.Local().Format(time.DateTime)
			}
			for _, ac := range list {
				locked := "-"
				if ac.LockedUntil.After(time.Now()) {
					locked = when(ac.LockedUntil)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ac.Name, ac.DisplayName, roleList(ac.Roles), when(ac.Created), when(ac.LastLogin), locked)
			}
			return tw.Flush()
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newUsersRemoveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a local account and end its sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			accts, done, err := a.accounts(ctx)
			if err != nil {
				return err
			}
			defer done()
			if err := accts.Remove(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s\n", args[0])
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	return cmd
}

func newUsersPasswdCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a local account's password (from stdin or a prompt), clear its lockout, end its sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			pw, err := login.ReadNewPassword(cmd.InOrStdin(), a.stderr, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			accts, done, err := a.accounts(ctx)
			if err != nil {
				return err
			}
			defer done()
			if err := accts.SetPassword(ctx, args[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "password of %s changed; its sessions are ended\n", args[0])
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	return cmd
}
