package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ehrgate/config"
	"ehrgate/internal/logging"
)

// app carries what every subcommand shares: output streams, environment and
// the configuration resolved from file, env and flags.
type app struct {
	stdout, stderr io.Writer
	env            []string
	configPath     string
	cfg            config.Config
	log            *slog.Logger
}

func newRootCmd(stdout, stderr io.Writer, env []string) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, env: env}
	root := &cobra.Command{
		Use:   "ehrgate",
		Short: "EHR integration gateway: connect, pull, normalize and watch EHR data",
		Long: `ehrgate connects to EHR FHIR endpoints, pulls patient charts into a local store
(raw resources kept byte for byte beside a normalized clinical model), and serves
a dashboard and metrics. A built-in simulated EHR lets you try everything without
a hospital: start with 'ehrgate demo'.

Configuration comes from a YAML file (--config or EHRGATE_CONFIG), then EHRGATE_*
environment variables, then flags; later sources win.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "YAML configuration file (env EHRGATE_CONFIG)")
	root.PersistentFlags().String("log-level", "", "log level: debug, info, warn, error (env EHRGATE_LOG_LEVEL)")
	root.PersistentFlags().String("log-format", "", "log format: text or json (env EHRGATE_LOG_FORMAT)")
	root.AddCommand(
		newDemoCmd(a), newServeCmd(a), newSimCmd(a), newSynthCmd(a),
		newSyncCmd(a), newStatsCmd(a), newVersionCmd(a),
		newKeysCmd(a), newProbeCmd(a), newBulkCmd(a), newExportCmd(a),
		newRenormalizeCmd(a), newQualityCmd(a), newEventsCmd(a), newStatusCmd(a), newHL7Cmd(a), newMigrateCmd(a), newJobsCmd(a), newClientsCmd(a),
		newAuditCmd(a), newUsersCmd(a), newMatchCmd(a), newContextCmd(a),
		newWritesCmd(a), newPipelineCmd(a),
	)
	return root
}

// load resolves the configuration (file < env < flags) and the logger.
// Flags are applied only when the user set them.
func (a *app) load(cmd *cobra.Command) error {
	path := a.configPath
	if path == "" {
		for _, kv := range a.env {
			if len(kv) > len(config.EnvConfig)+1 && kv[:len(config.EnvConfig)+1] == config.EnvConfig+"=" {
				path = kv[len(config.EnvConfig)+1:]
			}
		}
	}
	cfg, err := config.Load(path, a.env)
	if err != nil {
		return err
	}
	flags := cmd.Flags()
	setIf := func(name string, dst *string) {
		if f := flags.Lookup(name); f != nil && f.Changed {
			*dst = f.Value.String()
		}
	}
	setIf("data", &cfg.Data)
	setIf("store", &cfg.Store)
	setIf("http-addr", &cfg.HTTPAddr)
	setIf("log-level", &cfg.LogLevel)
	setIf("log-format", &cfg.LogFormat)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	a.cfg = cfg
	log, err := logging.New(a.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	a.log = log
	return nil
}

// addDataFlag registers --data and --store: where the store is.
func addDataFlag(fs *pflag.FlagSet) {
	fs.String("data", config.DefaultDataDir, "data directory: the embedded store (unless --store) and the local key file (env EHRGATE_DATA)")
	fs.String("store", "", "store URL: sqlite:DIR or postgres://user@host/db (env EHRGATE_STORE; default: sqlite:<--data>)")
}

func addHTTPAddrFlag(fs *pflag.FlagSet) {
	fs.String("http-addr", config.DefaultHTTPAddr, "dashboard and metrics listen address HOST:PORT (env EHRGATE_HTTP_ADDR)")
}
