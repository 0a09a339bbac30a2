package store

import (
	"context"
	"time"
)

// Sealed is an envelope-encrypted value as the secrets package produces it
// (same fields as secrets.Sealed, so the two convert directly). A store keeps
// it opaque: it never sees a plaintext token or key.
type Sealed struct {
	KEKID      string // id of the key-encryption key that wrapped WrappedKey
	WrappedKey []byte // the record's data key, encrypted under the KEK
	Ciphertext []byte // the record, encrypted under the data key
}

// Token authorization states of a connection.
const (
	TokenOK                   = "ok"                    // tokens usable (or refreshable)
	TokenNeedsReauthorization = "needs_reauthorization" // the server refused the grant; a person must authorize again
)

// EncryptedToken is one connection's OAuth token set at rest. The secret
// parts (access, refresh and id tokens) are only in Sealed; the rest is
// metadata a store may index and an operator may see.
type EncryptedToken struct {
	Connection   string
	Sealed       Sealed
	Status       string    // TokenOK or TokenNeedsReauthorization
	StatusReason string    // OAuth error code that set the status (e.g. "invalid_grant"); never a token
	ExpiresAt    time.Time // access token expiry, zero when unknown
	UpdatedAt    time.Time
}

// SigningKey is one of ehrgate's private keys for JWT client assertions,
// with its public half. Keys are published (JWKS) from CreatedAt, sign from
// ActiveAt, and stop being published at RetiredAt (zero: not scheduled).
type SigningKey struct {
	KID       string
	Alg       string // RS384 or ES384
	Public    []byte // public JWK, JSON
	Private   Sealed // private JWK, JSON, envelope-encrypted
	CreatedAt time.Time
	ActiveAt  time.Time
	RetiredAt time.Time
}

// TokenStore keeps OAuth tokens and signing keys, encrypted by the caller.
//
// Contract: implementations must be safe for concurrent use. UpdateToken runs
// update inside a transaction that excludes every other UpdateToken for the
// same connection (across processes sharing the store), so a refresh-token
// rotation reads the current refresh token and stores its successor
// atomically; cur is nil when the connection has no token; when update
// returns an error nothing is written and UpdateToken returns that error
// (unwrapped-compatible with errors.Is); when it returns (nil, nil) nothing
// is written. GetToken returns ErrNotFound for an unknown connection.
type TokenStore interface {
	GetToken(ctx context.Context, connection string) (EncryptedToken, error)
	UpdateToken(ctx context.Context, connection string, update func(cur *EncryptedToken) (*EncryptedToken, error)) error
	DeleteToken(ctx context.Context, connection string) error
	ListTokens(ctx context.Context) ([]EncryptedToken, error)

	// PutSigningKey inserts or replaces (by KID) a signing key.
	PutSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns every stored key, oldest CreatedAt first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
}
