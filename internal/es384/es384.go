// Package es384 verifies ES384 JWS signatures (ECDSA over P-384 with
// SHA-384) about twice as fast as crypto/ecdsa, for the calls that verify
// one per request: CDS Hooks clients sign every call's JWT, and CDS Hooks
// 2.0 requires services to accept ES384.
//
// crypto/ecdsa computes u1·G + u2·Q with two constant-time scalar
// multiplications, as signing needs. Verification handles public values
// only (signature, message, public key), so it may run in variable time:
// this package uses github.com/cloudflare/circl/ecc/p384's CombinedMult (a
// variable-time wNAF double-scalar multiplication over assembly field
// arithmetic) and otherwise follows the standard algorithm (FIPS 186-5
// §6.4.2; SEC 1 v2 §4.1.4). Tests hold it to crypto/ecdsa's answer on valid,
// tampered and out-of-range signatures.
//
// A Verifier is a go-jose OpaqueVerifier, so go-jose still parses the JWS,
// checks its algorithm against the allowed list and builds the signing
// input; only the signature check is ours.
package es384

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"

	"github.com/cloudflare/circl/ecc/p384"
	"github.com/go-jose/go-jose/v4"
)

// Verifier checks ES384 signatures made with one P-384 key.
type Verifier struct {
	pub *ecdsa.PublicKey
}

// New returns a Verifier for pub, or false when pub is not a valid P-384
// public key (then verify with the key itself).
func New(pub *ecdsa.PublicKey) (*Verifier, bool) {
	if pub == nil || pub.Curve != elliptic.P384() || pub.X == nil || pub.Y == nil {
		return nil, false
	}
	if _, err := pub.ECDH(); err != nil { // the point is on the curve and not the identity
		return nil, false
	}
	return &Verifier{pub: pub}, true
}

var (
	curve = p384.P384()
	order = elliptic.P384().Params().N
)

// ErrInvalid is returned for a signature that does not verify.
var ErrInvalid = errors.New("es384: invalid signature")

// VerifyPayload implements jose.OpaqueVerifier: signature is the JWS form
// (r and s, 48 bytes each, big-endian) over payload (the signing input).
func (v *Verifier) VerifyPayload(payload, signature []byte, alg jose.SignatureAlgorithm) error {
	if alg != jose.ES384 {
		return fmt.Errorf("es384: a P-384 key cannot verify %s", alg)
	}
	if len(signature) != 96 {
		return fmt.Errorf("es384: signature of %d bytes, want 96", len(signature))
	}
	h := sha512.Sum384(payload)
	if !Verify(v.pub, h[:], new(big.Int).SetBytes(signature[:48]), new(big.Int).SetBytes(signature[48:])) {
		return ErrInvalid
	}
	return nil
}

// Verify reports whether (r, s) is a valid signature of the SHA-384 digest
// hash by pub, a P-384 key that New accepted.
func Verify(pub *ecdsa.PublicKey, hash []byte, r, s *big.Int) bool {
	if len(hash) != 48 || r.Sign() <= 0 || s.Sign() <= 0 || r.Cmp(order) >= 0 || s.Cmp(order) >= 0 {
		return false
	}
	// The digest is as long as the order, so e is the whole digest.
	e := new(big.Int).SetBytes(hash)
	w := new(big.Int).ModInverse(s, order)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, order)
	u2 := w.Mul(r, w)
	u2.Mod(u2, order)
	x, y := curve.CombinedMult(pub.X, pub.Y, u1.Bytes(), u2.Bytes())
	if curve.IsAtInfinity(x, y) {
		return false
	}
	return x.Mod(x, order).Cmp(r) == 0
}
