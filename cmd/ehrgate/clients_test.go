package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/clients"
	"ehrgate/config"
	"ehrgate/gateway"
	"ehrgate/secrets"
	"ehrgate/store"
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

// TestClientsGenerateKeyAndToken: clients add --generate-key registers a
// backend-services app and hands its private key to the user; clients
// token gets an access token with it from a running ehrgate, which the
// API accepts.
func TestClientsGenerateKeyAndToken(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "analytics.jwk")
	out, stderr, err := run(t, ctx, "clients", "add", "analytics", "--generate-key", keyFile, "--scopes", "system/Patient.rs", "--data", data)
	if err != nil || !strings.Contains(out, "registered analytics") {
		t.Fatalf("clients add --generate-key = %v\n%s%s", err, out, stderr)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the private key file: %v (mode %v), want 0600", err, fi.Mode())
	}
	if _, _, err := run(t, ctx, "clients", "add", "other", "--generate-key", keyFile, "--data", data); err == nil {
		t.Error("--generate-key over an existing file succeeded, want refused (a key is never overwritten)")
	}
	// A running ehrgate on that data, with its API and authorization server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	st, err := store.Open(ctx, "sqlite:"+data, store.OpenOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := secrets.Load(func(string) string { return "" }, data)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(ctx, gateway.Options{Config: config.Config{API: config.API{BaseURL: base + "/fhir"}}, Store: st, Keyring: src.Ring})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Serve(sctx, ln) }()
	defer func() { stop(); <-done }()

	out, stderr, err = run(t, ctx, "clients", "token", "analytics", "--key", keyFile, "--fhir", base+"/fhir", "--scopes", "system/Patient.rs system/Condition.rs", "--json")
	if err != nil {
		t.Fatalf("clients token = %v\n%s%s", err, out, stderr)
	}
	var tok clients.Token
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.AccessToken == "" || tok.Scope != "system/Patient.rs" {
		t.Fatalf("clients token printed %s (scope %q), want a token for system/Patient.rs only", out, tok.Scope)
	}
	req, _ := http.NewRequest("GET", base+"/fhir/Patient?_count=1", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the API with that token = %d, want 200", resp.StatusCode)
	}
}
