package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ehrgate/audit"
	"ehrgate/authz"
	"ehrgate/clients"
	"ehrgate/secrets"
	"ehrgate/server"
	"ehrgate/smart"
	"ehrgate/store/sqlite"
)

// runKeys runs `ehrgate keys ARGS` in-process (independent of root.go's
// wiring).
func runKeys(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, env: env}
	cmd := newKeysCmd(a)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestKeysRotateListAndRotateKEK(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, err := runKeys(t, nil, "rotate", "--data", dir, "--alg", "ES384"); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, stderr)
	} else if !strings.Contains(stderr, "generated a key-encryption key") {
		t.Errorf("no log saying a KEK was generated: %s", stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, secrets.DefaultKEKFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated KEK file: %v", err)
	}
	if _, _, err := runKeys(t, nil, "rotate", "--data", dir, "--alg", "es384", "--grace", "2h"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runKeys(t, nil, "list", "--data", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		KEK  string                        `json:"kek_id"`
		Keys []struct{ KID, State string } `json:"signing_keys"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(got.Keys) != 2 || got.Keys[0].State != smart.KeyActive || got.Keys[1].State != smart.KeyPending {
		t.Errorf("keys after two rotations = %+v", got.Keys)
	}

	// Store a token, then rotate the KEK and check it still opens with the
	// new KEK alone.
	ctx := context.Background()
	src, err := secrets.Load(func(string) string { return "" }, dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := smart.NewVault(st, src.Ring, nil).Save(ctx, "c", &smart.Token{AccessToken: "at-secret", RefreshToken: "rt-secret", TokenType: "Bearer"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	out, stderr, err := runKeys(t, nil, "rotate-kek", "--data", dir)
	if err != nil {
		t.Fatalf("rotate-kek: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "re-wrapped 3 records") {
		t.Errorf("rotate-kek output = %q", out)
	}
	primary, older, err := secrets.ReadKeyFile(filepath.Join(dir, secrets.DefaultKEKFile))
	if err != nil || len(older) != 0 || primary.ID() == got.KEK {
		t.Fatalf("key file after rotate-kek: primary %s (old %s), %d older, %v", primary.ID(), got.KEK, len(older), err)
	}
	st, err = sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, _, err := smart.NewVault(st, secrets.NewKeyring(primary), nil).Load(ctx, "c")
	if err != nil || tok.RefreshToken.Reveal() != "rt-secret" {
		t.Fatalf("token after KEK rotation: %v", err)
	}
	for _, s := range []string{out, stderr} {
		if strings.Contains(s, "rt-secret") || strings.Contains(s, "at-secret") {
			t.Error("command output contains a token")
		}
	}
	if _, _, err := runKeys(t, nil, "rotate", "--data", dir, "--alg", "HS256"); err == nil {
		t.Error("rotate --alg HS256 accepted")
	}
}

// TestKeysRotateAPI: rotate-api adds a signing key for the API's access
// tokens; after two rotations and a rotate-kek, ehrgate's authorization
// server (on the same data) still publishes every key and issues tokens.
func TestKeysRotateAPI(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		out, stderr, err := runKeys(t, nil, "rotate-api", "--data", dir)
		if err != nil || !strings.Contains(out, "created API token-signing key") {
			t.Fatalf("rotate-api: %q %v\n%s", out, err, stderr)
		}
	}
	if _, stderr, err := runKeys(t, nil, "rotate-kek", "--data", dir); err != nil {
		t.Fatalf("rotate-kek: %v\n%s", err, stderr)
	}
	ctx := context.Background()
	src, err := secrets.Load(func(string) string { return "" }, dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	az, err := authz.New(ctx, authz.Options{Issuer: "http://127.0.0.1", Audience: "http://127.0.0.1/fhir", Docs: st, Patients: st,
		Clients: clients.NewRegistry(st), Keyring: src.Ring, LoginURL: "/login", Audit: audit.NewLog(st, audit.Source{}, nil),
		Person: func(*http.Request) (authz.Person, bool) { return authz.Person{}, false }})
	if err != nil {
		t.Fatalf("authz.New after rotations: %v", err)
	}
	rec := httptest.NewRecorder()
	srv := server.New(server.Options{Routes: az.Routes()})
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1"+authz.PathJWKS, nil))
	var set struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Errorf("JWKS after two rotations = %d keys (%v), want both published", len(set.Keys), err)
	}
}
