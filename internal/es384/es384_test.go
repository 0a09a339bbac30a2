package es384

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"math/big"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestAgreesWithCryptoECDSA: on valid signatures, tampered digests and
// signatures, another key's, and out-of-range r and s, Verify answers as
// crypto/ecdsa does.
func TestAgreesWithCryptoECDSA(t *testing.T) {
	n := elliptic.P384().Params().N
	for k := range 2 {
		key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		// 12 cases a round, each verified both ways (the race detector
		// makes a verification ~5 ms); FuzzVerify explores further.
		rounds := 40
		if testing.Short() {
			rounds = 10
		}
		for i := range rounds {
			msg := make([]byte, 1+i%70)
			rand.Read(msg)
			h := sha512.Sum384(msg)
			r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
			if err != nil {
				t.Fatal(err)
			}
			flipped := h
			flipped[i%48] ^= 1 << (i % 8)
			cases := []struct {
				name string
				pub  *ecdsa.PublicKey
				hash []byte
				r, s *big.Int
			}{
				{"valid", &key.PublicKey, h[:], r, s},
				{"other digest", &key.PublicKey, flipped[:], r, s},
				{"other key", &other.PublicKey, h[:], r, s},
				{"r+1", &key.PublicKey, h[:], new(big.Int).Add(r, big.NewInt(1)), s},
				{"s+1", &key.PublicKey, h[:], r, new(big.Int).Add(s, big.NewInt(1))},
				{"-s mod n", &key.PublicKey, h[:], r, new(big.Int).Sub(n, s)}, // also valid (ECDSA malleability)
				{"r+n", &key.PublicKey, h[:], new(big.Int).Add(r, n), s},
				{"s+n", &key.PublicKey, h[:], r, new(big.Int).Add(s, n)},
				{"r=0", &key.PublicKey, h[:], new(big.Int), s},
				{"s=0", &key.PublicKey, h[:], r, new(big.Int)},
				{"r=n", &key.PublicKey, h[:], new(big.Int).Set(n), s},
				{"s=1", &key.PublicKey, h[:], r, big.NewInt(1)},
			}
			for _, c := range cases {
				want := ecdsa.Verify(c.pub, c.hash, c.r, c.s)
				if got := Verify(c.pub, c.hash, c.r, c.s); got != want {
					t.Fatalf("key %d round %d, %s: Verify = %v, crypto/ecdsa says %v", k, i, c.name, got, want)
				}
				if c.name == "valid" && !want {
					t.Fatal("crypto/ecdsa rejects its own signature")
				}
			}
		}
	}
}

// TestOpaqueVerifierInGoJose: a JWT signed ES384 verifies through go-jose
// with the Verifier; a tampered one, one signed by another key and one
// claiming another algorithm do not.
func TestOpaqueVerifierInGoJose(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	v, ok := New(&key.PublicKey)
	if !ok {
		t.Fatal("New refused a P-384 key")
	}
	sign := func(k *ecdsa.PrivateKey) string {
		sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: k}, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(sg).Claims(jwt.Claims{Issuer: "https://ehr.example", Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	check := func(raw string) error {
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES384, jose.RS384})
		if err != nil {
			return err
		}
		var c jwt.Claims
		return tok.Claims(v, &c)
	}
	good := sign(key)
	if err := check(good); err != nil {
		t.Errorf("a valid ES384 JWT: %v", err)
	}
	if err := check(sign(other)); err == nil {
		t.Error("a JWT signed by another key verified")
	}
	tampered := []byte(good)
	tampered[len(tampered)-3] ^= 'A' ^ 'B'
	if tampered[len(tampered)-3] == good[len(good)-3] {
		tampered[len(tampered)-3] = 'A'
	}
	if err := check(string(tampered)); err == nil {
		t.Error("a JWT with a tampered signature verified")
	}
	if err := v.VerifyPayload([]byte("x"), make([]byte, 96), jose.RS384); err == nil {
		t.Error("an RS384 signature was checked with a P-384 key")
	}
	if err := v.VerifyPayload([]byte("x"), make([]byte, 95), jose.ES384); err == nil {
		t.Error("a 95-byte signature was accepted")
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, ok := New(&p256.PublicKey); ok {
		t.Error("New accepted a P-256 key")
	}
	if _, ok := New(&ecdsa.PublicKey{Curve: elliptic.P384(), X: big.NewInt(1), Y: big.NewInt(2)}); ok {
		t.Error("New accepted a point off the curve")
	}
}

// FuzzVerify: on any digest and (r, s), Verify answers as crypto/ecdsa.
func FuzzVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	h := sha512.Sum384([]byte("seed"))
	r, s, _ := ecdsa.Sign(rand.Reader, key, h[:])
	f.Add(h[:], r.Bytes(), s.Bytes())
	f.Add(h[:], []byte{1}, []byte{1})
	f.Fuzz(func(t *testing.T, hash, rb, sb []byte) {
		if len(hash) != 48 || len(rb) > 60 || len(sb) > 60 {
			return
		}
		r, s := new(big.Int).SetBytes(rb), new(big.Int).SetBytes(sb)
		if got, want := Verify(&key.PublicKey, hash, r, s), ecdsa.Verify(&key.PublicKey, hash, r, s); got != want {
			t.Fatalf("Verify = %v, crypto/ecdsa says %v", got, want)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	h := sha512.Sum384([]byte("payload"))
	r, s, _ := ecdsa.Sign(rand.Reader, key, h[:])
	b.Run("es384", func(b *testing.B) {
		for b.Loop() {
			if !Verify(&key.PublicKey, h[:], r, s) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("crypto-ecdsa", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.Verify(&key.PublicKey, h[:], r, s) {
				b.Fatal("invalid")
			}
		}
	})
}
