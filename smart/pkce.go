package smart

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// NewVerifier returns a PKCE code verifier (RFC 7636 §4.1): 32 random bytes,
// base64url without padding (43 characters).
func NewVerifier() string { return randomToken(32) }

// S256Challenge returns the S256 code challenge of a verifier (RFC 7636
// §4.2): BASE64URL(SHA256(ASCII(verifier))).
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("smart: crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
