// Command ehrgate is the EHR integration gateway: it connects to EHR FHIR
// endpoints, pulls patient charts into a local store, normalizes them and
// serves a dashboard, metrics and (soon) an application API. It also ships a
// simulated EHR and a synthetic-data generator so everything can be tried
// without a hospital.
//
// Run `ehrgate demo` to see it all in one process; `ehrgate --help` lists
// the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd(os.Stdout, os.Stderr, os.Environ()).ExecuteContext(ctx)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "ehrgate:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "ehrgate:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
