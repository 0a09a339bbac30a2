package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"ehrgate/authz"

	"github.com/spf13/cobra"

	"ehrgate/secrets"
	"ehrgate/smart"
	"ehrgate/store"
)

// newKeysCmd is `ehrgate keys`: signing keys for SMART client assertions
// (published at /.well-known/jwks.json) and the key-encryption keys that
// protect tokens and private keys at rest.
func newKeysCmd(a *app) *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Manage signing keys (JWKS) and key-encryption keys",
		Long: `keys manages ehrgate's secrets at rest and its client-assertion signing keys.

Signing keys sign SMART Backend Services and private_key_jwt client assertions.
'keys rotate' creates a new key that is published in the JWKS at once but signs
only after a grace period, so EHRs that cache the JWKS see it first; the key it
replaces stays published until it retires.

Tokens and private keys are stored encrypted (AES-256-GCM) under per-record data
keys wrapped by a key-encryption key (KEK) from EHRGATE_KEK (base64 of 32 bytes,
older ones in EHRGATE_KEK_OLD), EHRGATE_KEK_FILE, or DATA/kek (generated with
mode 0600 when nothing is configured). 'keys rotate-kek' re-wraps every data key
under a new KEK while the service keeps running.`,
		Args: cobra.NoArgs,
	}
	keys.AddCommand(newKeysRotateCmd(a), newKeysRotateAPICmd(a), newKeysRotateKEKCmd(a), newKeysListCmd(a))
	return keys
}

// keysEnv returns a getenv over the app's environment.
func keysEnv(env []string) func(string) string {
	return func(name string) string {
		v := ""
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == name {
				v = val
			}
		}
		return v
	}
}

// openKeyring loads the KEK keyring for the configured data directory,
// logging (never the key) when one was generated.
func openKeyring(a *app) (*secrets.Source, error) {
	getenv := keysEnv(a.env)
	if a.sharedStore() && getenv(secrets.EnvKEK) == "" && getenv(secrets.EnvKEKFile) == "" {
		return nil, fmt.Errorf("a %s store is shared by every ehrgate process on it, so they must hold the same key-encryption key: set %s (or %s) instead of generating one per host",
			store.Redact(a.cfg.StoreURL()), secrets.EnvKEK, secrets.EnvKEKFile)
	}
	src, err := secrets.Load(getenv, a.cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("loading key-encryption key: %w", err)
	}
	if src.Generated {
		a.log.Warn("generated a key-encryption key; back it up: stored tokens cannot be decrypted without it",
			"file", src.File, "kek_id", src.Ring.PrimaryID())
	}
	return src, nil
}

func openKeysStore(ctx context.Context, a *app) (store.Backend, *secrets.Source, error) {
	src, err := openKeyring(a)
	if err != nil {
		return nil, nil, err
	}
	st, err := a.openStore(ctx, store.OpenOptions{})
	if err != nil {
		return nil, nil, err
	}
	return st, src, nil
}

func newKeysRotateAPICmd(a *app) *cobra.Command {
	var keep time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-api [--keep 70m]",
		Short: "Create a new signing key for the access tokens of ehrgate's own authorization server",
		Long: `rotate-api makes a new key sign the access tokens ehrgate's authorization server
issues (api.base_url); running replicas use it within a minute. The keys it
supersedes stay published for --keep, so tokens they signed verify until they
expire: keep it above api.token_ttl.`,
		Args: cobra.NoArgs,
		RunE: keysRun(a, func(ctx context.Context, st store.Backend, src *secrets.Source) error {
			kid, err := authz.RotateKey(ctx, st, src.Ring, keep)
			if err != nil {
				return err
			}
			a.log.Info("API token-signing key created", "kid", kid)
			fmt.Fprintf(a.stdout, "created API token-signing key %s; it signs now, older keys stay published for %s\n", kid, keep)
			return nil
		}),
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().DurationVar(&keep, "keep", 70*time.Minute, "how long superseded keys stay published (above api.token_ttl)")
	return cmd
}

func newKeysRotateCmd(a *app) *cobra.Command {
	var (
		alg         string
		grace       time.Duration
		retireAfter time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate [--alg RS384|ES384] [--grace 1h]",
		Short: "Create a signing key: published now, signing after the grace period",
		Long: `rotate generates a new client-assertion signing key. It is published in the
JWKS immediately and starts signing after --grace (keep it above the JWKS cache
time of every EHR you are registered with). Keys it supersedes stay published
for --retire-after once it signs, then drop out of the JWKS.

The very first key signs at once: there is no older key to overlap with.`,
		Args: cobra.NoArgs,
		RunE: keysRun(a, func(ctx context.Context, st store.Backend, src *secrets.Source) error {
			alg = strings.ToUpper(alg)
			if alg != smart.RS384 && alg != smart.ES384 {
				return fmt.Errorf("--alg %q: want RS384 or ES384", alg)
			}
			m := smart.NewKeyManager(st, src.Ring, smart.KeyOptions{Grace: grace, RetireAfter: retireAfter})
			k, err := m.Rotate(ctx, alg)
			if err != nil {
				return err
			}
			a.log.Info("signing key created", "kid", k.KID, "alg", k.Alg, "signs_from", k.ActiveAt)
			fmt.Fprintf(a.stdout, "created %s key %s (%s); signs from %s\n", k.Alg, k.KID, k.State, k.ActiveAt.Format(time.RFC3339))
			return nil
		}),
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().StringVar(&alg, "alg", smart.RS384, "signing algorithm: RS384 or ES384")
	cmd.Flags().DurationVar(&grace, "grace", time.Hour, "how long the new key is published before it signs")
	cmd.Flags().DurationVar(&retireAfter, "retire-after", 24*time.Hour, "how long superseded keys stay published once the new key signs")
	return cmd
}

func newKeysRotateKEKCmd(a *app) *cobra.Command {
	var keepOld bool
	cmd := &cobra.Command{
		Use:   "rotate-kek",
		Short: "Re-wrap every stored data key under a new key-encryption key",
		Long: `rotate-kek moves every encrypted record (tokens, private signing keys) to a new
key-encryption key without downtime: only each record's small wrapped data key
is rewritten, one record per transaction, and the old KEK keeps decrypting until
the end.

With a key file (DATA/kek or EHRGATE_KEK_FILE) a new KEK is generated and
appended; running ehrgate processes pick it up on their next use of the file;
after re-wrapping, the old KEKs are removed from the file unless --keep-old.

With EHRGATE_KEK, set the new key there and the old one in EHRGATE_KEK_OLD
first; rotate-kek then re-wraps under EHRGATE_KEK, after which EHRGATE_KEK_OLD
can be removed.`,
		Args: cobra.NoArgs,
		RunE: keysRun(a, func(ctx context.Context, st store.Backend, src *secrets.Source) error {
			var old []secrets.KEK
			if src.File != "" {
				primary, older, err := secrets.ReadKeyFile(src.File)
				if err != nil {
					return err
				}
				old = append(older, primary)
				nk, err := secrets.GenerateKEK()
				if err != nil {
					return err
				}
				if err := secrets.WriteKeyFile(src.File, append(old, nk)); err != nil {
					return err
				}
				src.Ring.Set(nk, old...)
				a.log.Info("new key-encryption key written", "file", src.File, "kek_id", nk.ID())
			}
			m := smart.NewKeyManager(st, src.Ring, smart.KeyOptions{})
			v := smart.NewVault(st, src.Ring, nil)
			total := 0
			// Two passes: the second catches records a running process sealed
			// under the old KEK before it noticed the new one.
			for range 2 {
				nt, err := v.RewrapTokens(ctx)
				if err != nil {
					return err
				}
				nk, err := m.RewrapKeys(ctx)
				if err != nil {
					return err
				}
				nl, err := smart.RewrapLaunches(ctx, st, src.Ring)
				if err != nil {
					return err
				}
				na, err := authz.Rewrap(ctx, st, src.Ring)
				if err != nil {
					return err
				}
				total += nt + nk + nl + na
			}
			if src.File != "" && !keepOld {
				primary, _, err := secrets.ReadKeyFile(src.File)
				if err != nil {
					return err
				}
				if err := secrets.WriteKeyFile(src.File, []secrets.KEK{primary}); err != nil {
					return err
				}
			}
			fmt.Fprintf(a.stdout, "re-wrapped %d records under %s\n", total, src.Ring.PrimaryID())
			return nil
		}),
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&keepOld, "keep-old", false, "keep the old KEKs in the key file after re-wrapping")
	return cmd
}

func newKeysListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List signing keys and their states, and the KEK in use",
		Args:  cobra.NoArgs,
		RunE: keysRun(a, func(ctx context.Context, st store.Backend, src *secrets.Source) error {
			keys, err := smart.NewKeyManager(st, src.Ring, smart.KeyOptions{}).List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				type row struct {
					KID       string     `json:"kid"`
					Alg       string     `json:"alg"`
					State     string     `json:"state"`
					CreatedAt time.Time  `json:"created_at"`
					ActiveAt  time.Time  `json:"active_at"`
					RetiredAt *time.Time `json:"retired_at,omitempty"`
				}
				out := struct {
					KEK  string `json:"kek_id"`
					Keys []row  `json:"signing_keys"`
				}{KEK: src.Ring.PrimaryID(), Keys: []row{}}
				for _, k := range keys {
					r := row{KID: k.KID, Alg: k.Alg, State: k.State, CreatedAt: k.CreatedAt, ActiveAt: k.ActiveAt}
					if !k.RetiredAt.IsZero() {
						ra := k.RetiredAt
						r.RetiredAt = &ra
					}
					out.Keys = append(out.Keys, r)
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			fmt.Fprintf(a.stdout, "key-encryption key: %s\n", src.Ring.PrimaryID())
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tRETIRES")
			for _, k := range keys {
				ret := "-"
				if !k.RetiredAt.IsZero() {
					ret = k.RetiredAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.State,
					k.CreatedAt.Format(time.RFC3339), k.ActiveAt.Format(time.RFC3339), ret)
			}
			return tw.Flush()
		}),
	}
	addDataFlag(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// keysRun is the body of a keys subcommand: load the configuration, open
// the store with its keyring, run fn, close the store.
func keysRun(a *app, fn func(ctx context.Context, st store.Backend, src *secrets.Source) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := a.load(cmd); err != nil {
			return err
		}
		ctx := cmd.Context()
		st, src, err := openKeysStore(ctx, a)
		if err != nil {
			return err
		}
		defer st.Close()
		return fn(ctx, st, src)
	}
}
