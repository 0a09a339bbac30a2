package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ehrgate/config"
	"ehrgate/ehrsim/smartauth"
	"ehrgate/ingest"
	"ehrgate/synth"
)

// TestBulkExportThroughSMART exports from the simulated EHR's Bulk Data
// server behind its SMART authorization server, authorized by Backend
// Services exactly as the REST sync is, and checks everything arrived. An
// unauthorized attempt is refused.
func TestBulkExportThroughSMART(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	a := &app{stdout: io.Discard, stderr: io.Discard, cfg: config.Default(), log: log}
	a.cfg.Data = data
	g, err := a.openGateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := inlineKeyClients(ctx, g)
	g.Close()
	if err != nil {
		t.Fatal(err)
	}
	f := simFlags{patients: 5, seed: 3, vendor: "generic", bulkFileSize: 40, accessTTL: time.Hour, pageSize: 50}
	sim, err := f.newSim(log)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := f.start(ctx, sim, "127.0.0.1:0", clients, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.stop()

	cfgFile := filepath.Join(t.TempDir(), "ehrgate.yaml")
	cfg := "connections:\n" +
		"  - name: authorized\n    base_url: " + ep.base + "\n    auth: {type: backend-services, client_id: " + demoBackendClient + "}\n" +
		"  - name: anonymous\n    base_url: " + ep.base + "\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	want := 0
	gen := synth.New(synth.Options{Patients: 5, Seed: 3})
	for i := 0; i < 5; i++ {
		want += len(gen.Resources(i))
	}
	out, stderr, err := run(t, ctx, "bulk", "export", "--config", cfgFile, "--connection", "authorized", "--data", data, "--json", "--log-level", "error")
	if err != nil {
		t.Fatalf("bulk export through SMART: %v\n%s", err, stderr)
	}
	var sum ingest.ExportSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if sum.New != want {
		t.Errorf("bulk export through SMART stored %d new resources, the population has %d", sum.New, want)
	}
	_, _, err = run(t, ctx, "bulk", "export", "--config", cfgFile, "--connection", "anonymous", "--data", t.TempDir(), "--json", "--log-level", "error")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bulk export without authorization = %v, want a 401 refusal", err)
	}
}

// inlineKeyClients are the demo's clients with ehrgate's public keys copied
// into the backend client's registration instead of its JWKS URL: for
// tests that close the gateway before the simulated EHR authenticates it.
func inlineKeyClients(ctx context.Context, g cliGateway) ([]smartauth.Client, error) {
	if err := g.EnsureSigningKey(ctx); err != nil {
		return nil, err
	}
	jwks, err := g.Keys().JWKS(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(jwks)
	if err != nil {
		return nil, err
	}
	clients, err := demoClients("", "127.0.0.1:1")
	if err != nil {
		return nil, err
	}
	clients[0].JWKSURL, clients[0].JWKS = "", raw
	return clients, nil
}
