package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ehrgate/clients"
	"ehrgate/store"
)

// newClientsCmd is `ehrgate clients`: the apps and CDS clients allowed to
// call ehrgate.
func newClientsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Register the apps and CDS clients allowed to call ehrgate",
		Long: `clients manages who may call ehrgate: SMART apps of its FHIR API (public browser
apps with redirect URIs and PKCE; backend services with a JWKS) and CDS Hooks
clients (the EHRs that call its services, with the JWKS their JWTs are signed
with). Registrations are kept in the store, so every replica sees them. Nothing
secret is registered: public apps use PKCE, the others sign JWTs with their
own keys, of which ehrgate keeps the public half only.`,
	}
	cmd.AddCommand(newClientsAddCmd(a), newClientsListCmd(a), newClientsRemoveCmd(a), newClientsTokenCmd(a))
	return cmd
}

func newClientsAddCmd(a *app) *cobra.Command {
	var (
		c        clients.Client
		jwksFile string
		scopes   string
		genKey   string
	)
	cmd := &cobra.Command{
		Use:   "add NAME (--public --redirect-uri URI | --jwks FILE | --jwks-url URL) [--scopes \"...\"] [--cds-client --iss ISS]",
		Short: "Register an app (client_id NAME) or a CDS client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			c.ID = args[0]
			c.Scopes = strings.Fields(scopes)
			var private []byte
			if genKey != "" {
				if jwksFile != "" || c.JWKSURL != "" {
					return errors.New("--generate-key makes the client's keys: drop --jwks and --jwks-url")
				}
				var err error
				if private, c.JWKS, err = clients.GenerateKey(); err != nil {
					return err
				}
			}
			if jwksFile != "" {
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return fmt.Errorf("reading --jwks: %w", err)
				}
				c.JWKS = b
			}
			if err := c.Validate(); err != nil {
				return fmt.Errorf("client %s:\n%w", c.ID, err)
			}
			ctx := cmd.Context()
			st, err := a.openStore(ctx, store.OpenOptions{})
			if err != nil {
				return err
			}
			defer st.Close()
			if private != nil {
				// Written before registering, and never over a file: a key
				// lost after registration would strand the client.
				f, err := os.OpenFile(genKey, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("--generate-key: %w", err)
				}
				if _, err := f.Write(private); err != nil {
					f.Close()
					return fmt.Errorf("--generate-key: %w", err)
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("--generate-key: %w", err)
				}
			}
			added, err := clients.NewRegistry(st).Add(ctx, c)
			if err != nil {
				if private != nil {
					os.Remove(genKey)
				}
				return err
			}
			fmt.Fprintf(a.stdout, "registered %s (%s)\n", added.ID, clientKind(added))
			if private != nil {
				fmt.Fprintf(a.stdout, "its private key is in %s (mode 0600): keep it secret; ehrgate keeps only the public half\n", genKey)
			}
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	f := cmd.Flags()
	f.BoolVar(&c.Public, "public", false, "a public app (browser or device): PKCE, no keys")
	f.StringArrayVar(&c.RedirectURIs, "redirect-uri", nil, "an allowed redirect URI (repeatable; https, or http on loopback)")
	f.StringVar(&jwksFile, "jwks", "", "a file holding the client's public JWKS")
	f.StringVar(&genKey, "generate-key", "", "make an ES384 key pair: register its public half, write the private JWK to this new file (0600)")
	f.StringVar(&c.JWKSURL, "jwks-url", "", "where the client publishes its JWKS (https)")
	f.StringVar(&scopes, "scopes", "", `the most it may be granted, space-separated (e.g. "system/Patient.rs system/Observation.rs")`)
	f.BoolVar(&c.CDS, "cds-client", false, "a CDS Hooks client (an EHR calling ehrgate's CDS services)")
	f.StringVar(&c.Issuer, "iss", "", "with --cds-client: the iss its JWTs carry (default NAME)")
	return cmd
}

func clientKind(c clients.Client) string {
	switch {
	case c.CDS:
		return "CDS client"
	case c.Public:
		return "public app"
	}
	return "backend service"
}

func newClientsListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			reg, done, err := a.clientRegistry(ctx)
			if err != nil {
				return err
			}
			defer done()
			list, err := reg.List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CLIENT\tKIND\tKEYS / REDIRECTS\tSCOPES\tREGISTERED")
			for _, c := range list {
				keys := c.JWKSURL
				switch {
				case len(c.JWKS) > 0:
					keys = "inline JWKS"
				case c.Public:
					keys = strings.Join(c.RedirectURIs, " ")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, clientKind(c), keys, strings.Join(c.Scopes, " "), c.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func newClientsRemoveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Unregister a client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(cmd); err != nil {
				return err
			}
			ctx := cmd.Context()
			reg, done, err := a.clientRegistry(ctx)
			if err != nil {
				return err
			}
			defer done()
			if err := reg.Remove(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s\n", args[0])
			return nil
		},
	}
	addDataFlag(cmd.Flags())
	return cmd
}

// clientRegistry opens the existing store's client registry for a command
// that reads or removes registrations; done closes the store.
func (a *app) clientRegistry(ctx context.Context) (*clients.Registry, func(), error) {
	st, err := a.openExistingStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	return clients.NewRegistry(st), func() { st.Close() }, nil
}

func newClientsTokenCmd(a *app) *cobra.Command {
	var (
		keyFile, fhirBase, scopes string
		asJSON                    bool
	)
	cmd := &cobra.Command{
		Use:   "token NAME --key FILE --fhir URL [--scopes \"...\"] [--json]",
		Short: "Get an access token as the backend-services client NAME (for trying the API)",
		Long: `token does what a backend-services app does: it signs a client assertion with
the client's private key (as written by clients add --generate-key), finds the
token endpoint through the SMART discovery of the FHIR base URL, and prints the
access token, for use as "Authorization: Bearer TOKEN". It talks to a running
ehrgate (or any SMART authorization server); it opens no store.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" || fhirBase == "" {
				return errors.New("--key and --fhir are required")
			}
			key, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("reading --key: %w", err)
			}
			tok, err := clients.RequestToken(cmd.Context(), nil, strings.TrimSuffix(fhirBase, "/"), args[0], key, strings.Fields(scopes))
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(tok)
			}
			fmt.Fprintln(a.stdout, tok.AccessToken)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "the client's private JWK")
	f.StringVar(&fhirBase, "fhir", "", "the FHIR base URL (e.g. http://127.0.0.1:8080/fhir)")
	f.StringVar(&scopes, "scopes", "", "the scopes to ask for, space-separated (default: what the client is registered for)")
	f.BoolVar(&asJSON, "json", false, "print the token, its scope and expiry as JSON")
	return cmd
}
