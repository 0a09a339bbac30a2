package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKEK(t *testing.T) KEK {
	t.Helper()
	k, err := GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := NewKeyring(mustKEK(t))
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("token"), 1000)} {
		s, err := r.Seal(pt, AAD("conn", "access-token"))
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 0 && bytes.Contains(s.Ciphertext, pt) {
			t.Fatal("ciphertext contains plaintext")
		}
		got, err := r.Open(s, AAD("conn", "access-token"))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open() = %q, %v; want %q", got, err, pt)
		}
	}
}

func TestTamperAndAADMismatch(t *testing.T) {
	r := NewKeyring(mustKEK(t))
	aad := AAD("conn-a", "refresh-token")
	s, err := r.Seal([]byte("refresh-secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
	cases := []struct {
		name string
		s    Sealed
		aad  []byte
	}{
		{"ciphertext bit flipped", Sealed{s.KEKID, s.WrappedKey, flip(s.Ciphertext, len(s.Ciphertext)-1)}, aad},
		{"nonce flipped", Sealed{s.KEKID, s.WrappedKey, flip(s.Ciphertext, 0)}, aad},
		{"wrapped key flipped", Sealed{s.KEKID, flip(s.WrappedKey, 20), s.Ciphertext}, aad},
		{"truncated", Sealed{s.KEKID, s.WrappedKey, s.Ciphertext[:5]}, aad},
		{"other connection", s, AAD("conn-b", "refresh-token")},
		{"other purpose", s, AAD("conn-a", "access-token")},
		{"ambiguous concatenation", s, AAD("conn-ar", "efresh-token")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := r.Open(c.s, c.aad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open() error = %v, want ErrDecrypt", err)
			}
		})
	}
	other := NewKeyring(mustKEK(t))
	if _, err := other.Open(s, aad); !errors.Is(err, ErrUnknownKEK) {
		t.Errorf("Open with another keyring: %v, want ErrUnknownKEK", err)
	}
}

func TestKEKRotationRewrap(t *testing.T) {
	old, nw := mustKEK(t), mustKEK(t)
	r := NewKeyring(old)
	aad := AAD("c", "p")
	s, err := r.Seal([]byte("secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	// Rotation in progress: new primary, old still accepted.
	r.Set(nw, old)
	if got, err := r.Open(s, aad); err != nil || string(got) != "secret" {
		t.Fatalf("Open old record during rotation = %q, %v", got, err)
	}
	s2, err := r.Rewrap(s, aad)
	if err != nil {
		t.Fatal(err)
	}
	if s2.KEKID != nw.ID() || !bytes.Equal(s2.Ciphertext, s.Ciphertext) {
		t.Fatalf("Rewrap: kek %s (want %s), ciphertext changed=%v", s2.KEKID, nw.ID(), !bytes.Equal(s2.Ciphertext, s.Ciphertext))
	}
	// Rotation complete: old KEK dropped.
	r.Set(nw)
	if got, err := r.Open(s2, aad); err != nil || string(got) != "secret" {
		t.Fatalf("Open re-wrapped = %q, %v", got, err)
	}
	if _, err := r.Open(s, aad); !errors.Is(err, ErrUnknownKEK) {
		t.Fatalf("Open record under retired KEK: %v, want ErrUnknownKEK", err)
	}
	if _, err := r.Rewrap(s2, AAD("c", "other")); err != nil {
		// Already under primary: returned as is without checking.
		t.Fatalf("Rewrap of a current record: %v", err)
	}
}

func TestKEKNeverPrinted(t *testing.T) {
	k := mustKEK(t)
	raw := k.Bytes()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "kek", k, "ring", NewKeyring(k))
	out := fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k, k) + logs.String()
	for _, enc := range []string{string(raw), base64.StdEncoding.EncodeToString(raw), fmt.Sprintf("%x", raw), fmt.Sprint(raw)} {
		if strings.Contains(out, enc) {
			t.Fatalf("KEK bytes printed: %s", out)
		}
	}
	if !strings.Contains(out, k.ID()) {
		t.Errorf("output does not name the KEK id: %s", out)
	}
}

func TestLoad(t *testing.T) {
	k1, k2 := mustKEK(t), mustKEK(t)
	b64 := func(k KEK) string { return base64.StdEncoding.EncodeToString(k.Bytes()) }
	t.Run("env", func(t *testing.T) {
		env := map[string]string{EnvKEK: b64(k2), EnvKEKOld: b64(k1)}
		src, err := Load(func(s string) string { return env[s] }, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if src.Ring.PrimaryID() != k2.ID() || len(src.Ring.IDs()) != 2 || src.File != "" {
			t.Errorf("Load(env) = primary %s ids %v", src.Ring.PrimaryID(), src.Ring.IDs())
		}
	})
	t.Run("bad env value not echoed", func(t *testing.T) {
		_, err := Load(func(s string) string {
			if s == EnvKEK {
				return "c2VjcmV0LXZhbHVl"
			}
			return ""
		}, t.TempDir())
		if err == nil || strings.Contains(err.Error(), "c2VjcmV0LXZhbHVl") {
			t.Errorf("Load(bad) error = %v", err)
		}
	})
	t.Run("generated", func(t *testing.T) {
		dir := t.TempDir()
		src, err := Load(func(string) string { return "" }, dir)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, DefaultKEKFile))
		if err != nil || fi.Mode().Perm() != 0o600 || !src.Generated {
			t.Fatalf("generated key file: %v mode %v generated %v", err, fi.Mode(), src.Generated)
		}
		again, err := Load(func(string) string { return "" }, dir)
		if err != nil || again.Generated || again.Ring.PrimaryID() != src.Ring.PrimaryID() {
			t.Fatalf("second Load: %v generated=%v", err, again.Generated)
		}
	})
	t.Run("file reload on rotation", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys")
		if err := WriteKeyFile(path, []KEK{k1}); err != nil {
			t.Fatal(err)
		}
		src, err := Load(func(s string) string {
			if s == EnvKEKFile {
				return path
			}
			return ""
		}, "")
		if err != nil {
			t.Fatal(err)
		}
		// Another process rotates: appends k2 and seals under it.
		if err := WriteKeyFile(path, []KEK{k1, k2}); err != nil {
			t.Fatal(err)
		}
		other := NewKeyring(k2, k1)
		s, _ := other.Seal([]byte("v"), AAD("c", "p"))
		if got, err := src.Ring.Open(s, AAD("c", "p")); err != nil || string(got) != "v" {
			t.Fatalf("Open after rotation in another process = %q, %v", got, err)
		}
		if src.Ring.PrimaryID() != k2.ID() {
			t.Errorf("primary after reload = %s, want %s", src.Ring.PrimaryID(), k2.ID())
		}
	})
}
