package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/jobs"
	"ehrgate/secrets"
	"ehrgate/store"
)

func TestJobsListAndCancel(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if out, _, err := run(t, ctx, "jobs", "list", "--data", data); err == nil {
		t.Fatalf("jobs list over a missing store succeeded:\n%s", out)
	}
	st, err := store.Open(ctx, "sqlite:"+data, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := secrets.GenerateKEK()
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{}, Store: st, Keyring: secrets.NewKeyring(kek)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := g.Jobs(ctx) // registers the kinds and migrates; not started
	if err != nil {
		t.Fatal(err)
	}
	job, err := q.Enqueue(ctx, gateway.SyncJob{Connection: "hosp"})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	st.Close()

	out, stderr, err := run(t, ctx, "jobs", "list", "--data", data, "--json")
	if err != nil {
		t.Fatalf("jobs list: %v\n%s", err, stderr)
	}
	var list []jobs.Job
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].ID != job.ID ||
		list[0].State != jobs.Available || !strings.Contains(string(list[0].Args), `"connection":"hosp"`) {
		t.Fatalf("jobs list --json = %v, %s", err, out)
	}
	if out, _, err := run(t, ctx, "jobs", "cancel", fmt.Sprint(job.ID), "--data", data); err != nil || !strings.Contains(out, "cancelled") {
		t.Errorf("jobs cancel = %v\n%s", err, out)
	}
	out, _, err = run(t, ctx, "jobs", "list", "--data", data, "--state", "cancelled")
	if err != nil || !strings.Contains(out, "sync") || !strings.Contains(out, "cancelled") {
		t.Errorf("jobs list --state cancelled = %v\n%s", err, out)
	}
	if _, _, err := run(t, ctx, "jobs", "list", "--data", data, "--state", "stuck"); err == nil {
		t.Error("jobs list --state stuck succeeded")
	}
}
