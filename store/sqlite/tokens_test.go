package sqlite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/store/storetest"
)

func TestTokenConformance(t *testing.T) {
	storetest.RunTokenTests(t, func(t *testing.T) store.TokenStore {
		s, err := OpenDir(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("OpenDir: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestNoPlaintextTokenOnDisk stores envelope-encrypted tokens and then scans
// the database file and its WAL for the plaintext.
func TestNoPlaintextTokenOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	kek, _ := secrets.GenerateKEK()
	ring := secrets.NewKeyring(kek)
	const access, refresh = "ACCESS-plaintext-7f3a9c", "REFRESH-plaintext-41bd02"
	sealed, err := ring.Seal([]byte(`{"access_token":"`+access+`","refresh_token":"`+refresh+`"}`), secrets.AAD("c", "token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateToken(ctx, "c", func(*store.EncryptedToken) (*store.EncryptedToken, error) {
		return &store.EncryptedToken{Sealed: store.Sealed(sealed)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var scanned int
	check := func() {
		for _, name := range []string{FileName, FileName + "-wal"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				continue
			}
			scanned++
			for _, secret := range []string{access, refresh} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s contains plaintext token %q", name, secret)
				}
			}
		}
	}
	check() // WAL holds the write before a checkpoint
	if scanned == 0 {
		t.Fatal("no database file found to scan")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check() // main file after the checkpoint on close
	// The sealed record still decrypts: the scan looked at real data.
	s2, err := OpenDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.GetToken(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ring.Open(secrets.Sealed(got.Sealed), secrets.AAD("c", "token"))
	if err != nil || !bytes.Contains(pt, []byte(refresh)) {
		t.Fatalf("stored token does not decrypt: %v", err)
	}
}
