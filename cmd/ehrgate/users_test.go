package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"ehrgate/login"
	"ehrgate/store"
)

// runIn runs the CLI with stdin.
func runIn(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut, nil)
	cmd.SetIn(stdin)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestUsersCommands(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	const pw = "correct horse battery staple"
	out, stderr, err := runIn(t, ctx, strings.NewReader(pw+"\n"), "users", "add", "alice", "--role", "clinician", "--name", "Dr Alice", "--data", data)
	if err != nil || !strings.Contains(out, "added alice (clinician)") {
		t.Fatalf("users add = %v\n%s%s", err, out, stderr)
	}
	if strings.Contains(out+stderr, pw) {
		t.Error("users add printed the password")
	}
	if _, _, err := runIn(t, ctx, strings.NewReader(pw+"\n"), "users", "add", "alice", "--role", "admin", "--data", data); err == nil {
		t.Error("adding alice twice succeeded")
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"short\n", []string{"--role", "admin"}, "characters"},
		{"", []string{"--role", "admin"}, "no password"},
		{pw + "\n", []string{"--role", "superuser"}, "not a role"},
		{pw + "\n", nil, "--role"},
	} {
		args := append([]string{"users", "add", "bob", "--data", data}, tc.args...)
		if _, _, err := runIn(t, ctx, strings.NewReader(tc.stdin), args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("users add bob %v with stdin %q = %v, want an error mentioning %q", tc.args, tc.stdin, err, tc.want)
		}
	}
	if _, _, err := runIn(t, ctx, strings.NewReader(""), "users", "add", "bob", "--role", "admin", "--password", pw, "--data", data); err == nil {
		t.Error("users add accepted a --password flag")
	}
	out, _, err = runIn(t, ctx, nil, "users", "list", "--json", "--data", data)
	var list []login.Account
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Name != "alice" || list[0].DisplayName != "Dr Alice" {
		t.Fatalf("users list --json = %v\n%s", err, out)
	}
	if strings.Contains(out, "argon2") {
		t.Error("users list shows the password hash")
	}
	if out, _, err := runIn(t, ctx, nil, "users", "list", "--data", data); err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "clinician") {
		t.Errorf("users list = %v\n%s", err, out)
	}

	const pw2 = "another long password"
	if out, _, err := runIn(t, ctx, strings.NewReader(pw2+"\r\n"), "users", "passwd", "alice", "--data", data); err != nil || !strings.Contains(out, "changed") {
		t.Fatalf("users passwd = %v\n%s", err, out)
	}
	st, err := store.Open(ctx, "sqlite:"+data, store.OpenOptions{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	accts := login.NewAccounts(st, login.AccountOptions{})
	if _, err := accts.Authenticate(ctx, "alice", []byte(pw2)); err != nil {
		t.Errorf("Authenticate with the new password = %v", err)
	}
	st.Close()

	if out, _, err := runIn(t, ctx, nil, "users", "remove", "alice", "--data", data); err != nil || !strings.Contains(out, "removed alice") {
		t.Errorf("users remove = %v\n%s", err, out)
	}
	if _, _, err := runIn(t, ctx, nil, "users", "remove", "alice", "--data", data); err == nil {
		t.Error("removing a removed account succeeded")
	}
	if _, _, err := runIn(t, ctx, nil, "users", "list", "--data", t.TempDir()+"/missing"); err == nil {
		t.Error("users list on a missing store succeeded")
	}
}
