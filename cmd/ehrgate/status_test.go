package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/secrets"
	"ehrgate/smart"
	"ehrgate/store/sqlite"
)

func TestStatusReportsConnectionsAndReauthorization(t *testing.T) {
	data := t.TempDir()
	if _, stderr, err := run(t, context.Background(), "demo", "--once", "--json", "--data", data, "--patients", "3", "--log-level", "error"); err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr)
	}
	status := func() connectionReport {
		t.Helper()
		out, _, err := run(t, context.Background(), "status", "--data", data, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Connections []connectionReport }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		for _, c := range got.Connections {
			if c.Name == demoConnection {
				return c
			}
		}
		t.Fatalf("status lists no %s connection:\n%s", demoConnection, out)
		return connectionReport{}
	}
	c := status()
	if c.Auth != "backend-services" || c.Token != "ok" || c.Resources == 0 || c.LastSync.IsZero() ||
		!strings.Contains(c.Vendor, "generic") || !strings.HasPrefix(c.BaseURL, "http://127.0.0.1:") {
		t.Errorf("status after a demo sync = %+v", c)
	}

	// The EHR refuses ehrgate's credentials: status must say so.
	st, err := sqlite.OpenDir(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	src, err := secrets.Load(func(string) string { return "" }, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := smart.NewVault(st, src.Ring, nil).MarkNeedsReauthorization(context.Background(), demoConnection, "invalid_grant"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if c := status(); c.Token != "needs_reauthorization" || c.TokenReason != "invalid_grant" {
		t.Errorf("status after invalid_grant = token %q reason %q, want needs_reauthorization (invalid_grant)", c.Token, c.TokenReason)
	}
	out, _, _ := run(t, context.Background(), "status", "--data", data)
	if !strings.Contains(out, "needs_reauthorization") {
		t.Errorf("status text does not show the re-authorization need:\n%s", out)
	}
}

// A store upgraded from a version that kept connection state in files
// shows that state in status before any gateway has imported it, and
// status changes nothing.
func TestStatusReadsStateFilesOfOlderVersions(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	if _, _, err := run(t, ctx, "migrate", "--data", data); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "connections")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := `{"name":"hosp","base_url":"https://ehr.example.org/fhir","auth":"backend-services","vendor":"epic (configured)",` +
		`"last_sync":"2026-11-01T10:00:00Z","not_granted":["Immunization"]}`
	if err := os.WriteFile(filepath.Join(dir, "hosp.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, ctx, "status", "--data", data, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Connections []connectionReport `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Connections) != 1 {
		t.Fatalf("status --json = %v\n%s", err, out)
	}
	c := got.Connections[0]
	if c.Name != "hosp" || c.Vendor != "epic (configured)" || c.LastSync.IsZero() || len(c.NotGranted) != 1 {
		t.Errorf("status from the old file = %+v", c)
	}
}
