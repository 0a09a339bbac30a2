package smart

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"ehrgate/secrets"
)

func TestClientAssertionClaims(t *testing.T) {
	for _, alg := range []string{ES384, RS384} {
		t.Run(alg, func(t *testing.T) {
			clock := newClock()
			m := NewKeyManager(newMemStore(), newRing(t), KeyOptions{Now: clock.Now, AssertionLifetime: time.Hour})
			ctx := context.Background()
			k, err := m.Rotate(ctx, alg)
			if err != nil {
				t.Fatal(err)
			}
			set, _ := m.JWKS(ctx)
			pub := set.Key(k.KID)
			if len(pub) != 1 {
				t.Fatalf("JWKS lacks %s", k.KID)
			}
			n := 1000
			if alg == RS384 {
				n = 100 // RSA signing under -race is slow; uniqueness is the same code
			}
			seen := map[string]bool{}
			for i := range n {
				a, err := m.ClientAssertion(ctx, "cid", "https://ehr.example/token")
				if err != nil {
					t.Fatal(err)
				}
				tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					t.Fatal(err)
				}
				h := tok.Headers[0]
				if h.KeyID != k.KID || h.Algorithm != alg || h.ExtraHeaders["typ"] != "JWT" {
					t.Fatalf("header = %+v", h)
				}
				var c jwt.Claims
				if i%100 == 0 { // verifying every signature under -race takes long; signing is the same code
					if err := tok.Claims(pub[0].Key, &c); err != nil {
						t.Fatal(err)
					}
				} else if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
					t.Fatal(err)
				}
				if err := c.Validate(jwt.Expected{Issuer: "cid", Subject: "cid", AnyAudience: jwt.Audience{"https://ehr.example/token"}, Time: clock.Now()}); err != nil {
					t.Fatal(err)
				}
				if life := c.Expiry.Time().Sub(clock.Now()); life > 5*time.Minute || life <= 0 {
					t.Fatalf("exp is %v ahead, want at most 5m (even when configured longer)", life)
				}
				if c.ID == "" || seen[c.ID] {
					t.Fatalf("assertion %d: jti %q empty or repeated", i, c.ID)
				}
				seen[c.ID] = true
			}
		})
	}
	if _, err := NewKeyManager(newMemStore(), newRing(t), KeyOptions{}).Rotate(context.Background(), "HS256"); err == nil {
		t.Error("Rotate(HS256) accepted")
	}
}

func kidOf(t *testing.T, a string) string {
	t.Helper()
	tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.ES384, jose.RS384})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Headers[0].KeyID
}

func jwksKIDs(t *testing.T, h http.Handler) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if rec.Code != 200 || !strings.Contains(rec.Header().Get("Cache-Control"), "max-age") {
		t.Fatalf("JWKS handler: %d %v", rec.Code, rec.Header())
	}
	body := rec.Body.String()
	for _, priv := range []string{`"d"`, `"p"`, `"q"`, `"dp"`} {
		if strings.Contains(body, priv+":") {
			t.Fatalf("JWKS publishes private key material %s: %s", priv, body)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatal("JWKS has a private key")
		}
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestJWKSRotation(t *testing.T) {
	clock := newClock()
	ctx := context.Background()
	m := NewKeyManager(newMemStore(), newRing(t), KeyOptions{Now: clock.Now, Grace: time.Hour, RetireAfter: 24 * time.Hour})
	if _, err := m.ClientAssertion(ctx, "c", "https://x/token"); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("assertion without keys: %v", err)
	}
	k1, err := m.Rotate(ctx, ES384)
	if err != nil || k1.State != KeyActive {
		t.Fatalf("first key: %+v, %v (want active at once)", k1, err)
	}
	a, _ := m.ClientAssertion(ctx, "c", "https://x/token")
	if kidOf(t, a) != k1.KID {
		t.Fatal("first key does not sign")
	}
	clock.Advance(time.Minute)
	k2, err := m.Rotate(ctx, ES384)
	if err != nil || k2.State != KeyPending {
		t.Fatalf("second key: %+v, %v (want pending)", k2, err)
	}
	// New key published at once, old key still signing.
	if kids := jwksKIDs(t, m.JWKSHandler()); len(kids) != 2 || !contains(kids, k2.KID) || !contains(kids, k1.KID) {
		t.Errorf("JWKS during grace = %v", kids)
	}
	a, _ = m.ClientAssertion(ctx, "c", "https://x/token")
	if kidOf(t, a) != k1.KID {
		t.Error("the new key signs before its grace period ended")
	}
	clock.Advance(time.Hour)
	a, _ = m.ClientAssertion(ctx, "c", "https://x/token")
	if kidOf(t, a) != k2.KID {
		t.Error("the new key does not sign after its grace period")
	}
	if kids := jwksKIDs(t, m.JWKSHandler()); len(kids) != 2 {
		t.Errorf("old key dropped right after the switch: JWKS = %v", kids)
	}
	list, _ := m.List(ctx)
	if list[0].State != KeyPublished || list[1].State != KeyActive {
		t.Errorf("List() states = %s, %s", list[0].State, list[1].State)
	}
	clock.Advance(24 * time.Hour)
	if kids := jwksKIDs(t, m.JWKSHandler()); len(kids) != 1 || kids[0] != k2.KID {
		t.Errorf("JWKS after retirement = %v, want only %s", kids, k2.KID)
	}
	list, _ = m.List(ctx)
	if list[0].State != KeyRetired {
		t.Errorf("old key state = %s, want retired", list[0].State)
	}
}

func TestRewrapKeysAndTokens(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	oldKEK, _ := secrets.GenerateKEK()
	newKEK, _ := secrets.GenerateKEK()
	old := secrets.NewKeyring(oldKEK)
	m := NewKeyManager(st, old, KeyOptions{})
	if _, err := m.Rotate(ctx, ES384); err != nil {
		t.Fatal(err)
	}
	v := NewVault(st, old, nil)
	if err := v.Save(ctx, "a", &Token{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer"}); err != nil {
		t.Fatal(err)
	}
	// Rotation in progress: new primary, old KEK still accepted.
	rot := secrets.NewKeyring(newKEK, oldKEK)
	newRingOnly := secrets.NewKeyring(newKEK)
	m2, v2 := NewKeyManager(st, rot, KeyOptions{}), NewVault(st, rot, nil)
	if n, err := m2.RewrapKeys(ctx); err != nil || n != 1 {
		t.Fatalf("RewrapKeys = %d, %v", n, err)
	}
	if n, err := v2.RewrapTokens(ctx); err != nil || n != 1 {
		t.Fatalf("RewrapTokens = %d, %v", n, err)
	}
	// With only the new KEK, everything still opens.
	onlyNew := NewVault(st, newRingOnly, nil)
	if tok, _, err := onlyNew.Load(ctx, "a"); err != nil || tok.RefreshToken != "rt" {
		t.Fatalf("Load under new KEK only: %v", err)
	}
	if _, err := NewKeyManager(st, newRingOnly, KeyOptions{}).ClientAssertion(ctx, "c", "https://x/t"); err != nil {
		t.Fatalf("signing under new KEK only: %v", err)
	}
}

func TestVaultRowSwapFails(t *testing.T) {
	ctx := context.Background()
	st := newMemStore()
	v := NewVault(st, newRing(t), nil)
	if err := v.Save(ctx, "a", &Token{AccessToken: "at-a", TokenType: "Bearer"}); err != nil {
		t.Fatal(err)
	}
	// Copy connection a's sealed row to connection b.
	st.mu.Lock()
	row := st.tokens["a"]
	row.Connection = "b"
	st.tokens["b"] = row
	st.mu.Unlock()
	if _, _, err := v.Load(ctx, "b"); err == nil {
		t.Fatal("a token row copied to another connection decrypted")
	}
}
