package storetest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"ehrgate/store"
)

// RunTokenTests runs the store.TokenStore conformance suite against stores
// made by newStore (a fresh, empty store per subtest).
func RunTokenTests(t *testing.T, newStore func(t *testing.T) store.TokenStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.TokenStore)
	}{
		{"GetNotFound", testTokenNotFound},
		{"UpdateCreatesAndReplaces", testTokenUpdate},
		{"UpdaterErrorWritesNothing", testTokenUpdaterError},
		{"NilResultWritesNothing", testTokenNilResult},
		{"ConcurrentUpdatesSerialize", testTokenConcurrent},
		{"ListAndDelete", testTokenListDelete},
		{"SigningKeys", testSigningKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var tokT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func sealed(s string) store.Sealed {
	return store.Sealed{KEKID: "kek-test", WrappedKey: []byte("wrapped-" + s), Ciphertext: []byte(s)}
}

func testTokenNotFound(t *testing.T, s store.TokenStore) {
	if _, err := s.GetToken(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetToken(%q) error = %v, want ErrNotFound", "nope", err)
	}
}

func testTokenUpdate(t *testing.T, s store.TokenStore) {
	ctx := context.Background()
	err := s.UpdateToken(ctx, "c1", func(cur *store.EncryptedToken) (*store.EncryptedToken, error) {
		if cur != nil {
			t.Errorf("first update: cur = %+v, want nil", cur)
		}
		return &store.EncryptedToken{Sealed: sealed("one"), ExpiresAt: tokT0, UpdatedAt: tokT0}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetToken(ctx, "c1")
	if err != nil || got.Connection != "c1" || !bytes.Equal(got.Sealed.Ciphertext, []byte("one")) ||
		got.Sealed.KEKID != "kek-test" || !got.ExpiresAt.Equal(tokT0) || got.Status != store.TokenOK {
		t.Fatalf("GetToken(c1) = %+v, %v", got, err)
	}
	err = s.UpdateToken(ctx, "c1", func(cur *store.EncryptedToken) (*store.EncryptedToken, error) {
		if cur == nil || string(cur.Sealed.Ciphertext) != "one" {
			t.Errorf("second update: cur = %+v", cur)
		}
		n := *cur
		n.Sealed = sealed("two")
		n.Status, n.StatusReason = store.TokenNeedsReauthorization, "invalid_grant"
		return &n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetToken(ctx, "c1")
	if string(got.Sealed.Ciphertext) != "two" || got.Status != store.TokenNeedsReauthorization || got.StatusReason != "invalid_grant" {
		t.Errorf("after second update = %+v", got)
	}
}

func testTokenUpdaterError(t *testing.T, s store.TokenStore) {
	ctx := context.Background()
	boom := errors.New("boom")
	if err := s.UpdateToken(ctx, "c", func(*store.EncryptedToken) (*store.EncryptedToken, error) {
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Errorf("UpdateToken error = %v, want boom", err)
	}
	if _, err := s.GetToken(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after failed updater GetToken error = %v, want ErrNotFound", err)
	}
}

func testTokenNilResult(t *testing.T, s store.TokenStore) {
	ctx := context.Background()
	if err := s.UpdateToken(ctx, "c", func(*store.EncryptedToken) (*store.EncryptedToken, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetToken after nil update: %v, want ErrNotFound", err)
	}
}

// testTokenConcurrent proves updaters are serialized: concurrent
// read-increment-write cycles lose no increment.
func testTokenConcurrent(t *testing.T, s store.TokenStore) {
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.UpdateToken(ctx, "c", func(cur *store.EncryptedToken) (*store.EncryptedToken, error) {
				v := 0
				if cur != nil {
					v, _ = strconv.Atoi(string(cur.Sealed.Ciphertext))
				}
				return &store.EncryptedToken{Sealed: sealed(strconv.Itoa(v + 1)), UpdatedAt: tokT0}, nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.GetToken(ctx, "c")
	if string(got.Sealed.Ciphertext) != strconv.Itoa(n) {
		t.Errorf("counter after %d concurrent updates = %s", n, got.Sealed.Ciphertext)
	}
}

func testTokenListDelete(t *testing.T, s store.TokenStore) {
	ctx := context.Background()
	for _, c := range []string{"b", "a"} {
		if err := s.UpdateToken(ctx, c, func(*store.EncryptedToken) (*store.EncryptedToken, error) {
			return &store.EncryptedToken{Sealed: sealed(c), UpdatedAt: tokT0}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].Connection != "a" || list[1].Connection != "b" {
		t.Fatalf("ListTokens() = %+v, %v", list, err)
	}
	if err := s.DeleteToken(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx, "a"); err != nil {
		t.Errorf("deleting an absent token: %v", err)
	}
	if list, _ := s.ListTokens(ctx); len(list) != 1 {
		t.Errorf("after delete ListTokens() has %d", len(list))
	}
}

func testSigningKeys(t *testing.T, s store.TokenStore) {
	ctx := context.Background()
	k1 := store.SigningKey{KID: "k1", Alg: "RS384", Public: []byte(`{"kty":"RSA"}`), Private: sealed("p1"), CreatedAt: tokT0, ActiveAt: tokT0}
	k2 := store.SigningKey{KID: "k2", Alg: "ES384", Public: []byte(`{"kty":"EC"}`), Private: sealed("p2"), CreatedAt: tokT0.Add(time.Hour), ActiveAt: tokT0.Add(2 * time.Hour)}
	for _, k := range []store.SigningKey{k2, k1} {
		if err := s.PutSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	k1.RetiredAt = tokT0.Add(48 * time.Hour)
	if err := s.PutSigningKey(ctx, k1); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListSigningKeys(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("ListSigningKeys() = %+v, %v", got, err)
	}
	if got[0].KID != "k1" || !got[0].RetiredAt.Equal(k1.RetiredAt) || got[1].KID != "k2" ||
		!got[1].ActiveAt.Equal(k2.ActiveAt) || string(got[1].Private.Ciphertext) != "p2" || got[1].Alg != "ES384" {
		t.Errorf("ListSigningKeys() = %+v", got)
	}
}
