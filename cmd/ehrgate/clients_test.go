package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"ehrgate/clients"
)

func TestClientsCommands(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	out, stderr, err := run(t, ctx, "clients", "add", "growth-chart", "--public", "--redirect-uri", "https://app.example.org/cb",
		"--scopes", "launch/patient patient/Observation.rs", "--data", data)
	if err != nil || !strings.Contains(out, "registered growth-chart (public app)") {
		t.Fatalf("clients add = %v\n%s%s", err, out, stderr)
	}
	if _, _, err := run(t, ctx, "clients", "add", "growth-chart", "--public", "--redirect-uri", "https://app.example.org/cb", "--data", data); err == nil {
		t.Error("registering the same name twice succeeded")
	}
	if _, _, err := run(t, ctx, "clients", "add", "bad", "--public", "--data", data); err == nil || !strings.Contains(err.Error(), "redirect-uri") {
		t.Errorf("a public client without a redirect URI = %v", err)
	}
	out, _, err = run(t, ctx, "clients", "list", "--data", data, "--json")
	var list []clients.Client
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Scopes[1] != "patient/Observation.rs" {
		t.Fatalf("clients list --json = %v\n%s", err, out)
	}
	if out, _, err := run(t, ctx, "clients", "remove", "growth-chart", "--data", data); err != nil || !strings.Contains(out, "removed") {
		t.Errorf("clients remove = %v\n%s", err, out)
	}
	if _, _, err := run(t, ctx, "clients", "remove", "growth-chart", "--data", data); err == nil {
		t.Error("removing an unknown client succeeded")
	}
}
