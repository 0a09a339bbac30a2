package main

import (
	"context"
	"encoding/json"
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
