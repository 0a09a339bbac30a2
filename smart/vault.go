package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ehrgate/secrets"
	"ehrgate/store"
)

// Vault keeps connections' tokens in a store.TokenStore, envelope-encrypted
// (package secrets) with associated data binding each record to its
// connection, so a row copied to another connection does not decrypt. It is
// safe for concurrent use.
type Vault struct {
	st   store.TokenStore
	ring *secrets.Keyring
	now  func() time.Time
}

// NewVault returns a Vault over st sealing with ring; now is the clock
// (nil: time.Now).
func NewVault(st store.TokenStore, ring *secrets.Keyring, now func() time.Time) *Vault {
	if now == nil {
		now = time.Now
	}
	return &Vault{st: st, ring: ring, now: now}
}

// Status is a connection's authorization state, safe to show an operator.
type Status struct {
	Connection string
	State      string // store.TokenOK, store.TokenNeedsReauthorization, or StateNone
	Reason     string // OAuth error code behind a needs-reauthorization state
	ExpiresAt  time.Time
	UpdatedAt  time.Time
}

// StateNone is Status.State for a connection that was never authorized.
const StateNone = "none"

func tokenAAD(connection string) []byte { return secrets.AAD(connection, "oauth-token") }

func (v *Vault) seal(connection string, t *Token) (store.Sealed, error) {
	b, err := json.Marshal(t.record())
	if err != nil {
		return store.Sealed{}, fmt.Errorf("encoding token: %w", err)
	}
	s, err := v.ring.Seal(b, tokenAAD(connection))
	if err != nil {
		return store.Sealed{}, fmt.Errorf("sealing token: %w", err)
	}
	return store.Sealed(s), nil
}

func (v *Vault) open(e *store.EncryptedToken) (*Token, error) {
	if len(e.Sealed.Ciphertext) == 0 {
		return nil, nil // a status-only record (marked before any token was stored)
	}
	b, err := v.ring.Open(secrets.Sealed(e.Sealed), tokenAAD(e.Connection))
	if err != nil {
		return nil, fmt.Errorf("opening token of %q: %w", e.Connection, err)
	}
	var r tokenRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding token of %q: stored record is corrupt", e.Connection)
	}
	return r.token(), nil
}

// Save stores t as the connection's token and marks it authorized.
func (v *Vault) Save(ctx context.Context, connection string, t *Token) error {
	return v.Update(ctx, connection, func(*Token, Status) (*Token, error) { return t, nil })
}

// Load returns the connection's token and status. The token is nil (and no
// error) when the connection was never authorized.
func (v *Vault) Load(ctx context.Context, connection string) (*Token, Status, error) {
	e, err := v.st.GetToken(ctx, connection)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Status{Connection: connection, State: StateNone}, nil
	}
	if err != nil {
		return nil, Status{}, err
	}
	st := statusOf(&e)
	t, err := v.open(&e)
	if err != nil {
		return nil, st, err
	}
	return t, st, nil
}

func statusOf(e *store.EncryptedToken) Status {
	st := e.Status
	if st == "" {
		st = store.TokenOK
	}
	return Status{Connection: e.Connection, State: st, Reason: e.StatusReason, ExpiresAt: e.ExpiresAt, UpdatedAt: e.UpdatedAt}
}

// Status returns the connection's authorization state without decrypting.
func (v *Vault) Status(ctx context.Context, connection string) (Status, error) {
	e, err := v.st.GetToken(ctx, connection)
	if errors.Is(err, store.ErrNotFound) {
		return Status{Connection: connection, State: StateNone}, nil
	}
	if err != nil {
		return Status{}, err
	}
	return statusOf(&e), nil
}

// Update runs fn on the connection's current token (nil when none) inside
// the store's transaction and stores the token fn returns, marked
// authorized. fn returning (nil, nil) writes nothing. fn must not do I/O.
func (v *Vault) Update(ctx context.Context, connection string, fn func(cur *Token, st Status) (*Token, error)) error {
	return v.st.UpdateToken(ctx, connection, func(cur *store.EncryptedToken) (*store.EncryptedToken, error) {
		var t *Token
		st := Status{Connection: connection, State: StateNone}
		if cur != nil {
			st = statusOf(cur)
			var err error
			if t, err = v.open(cur); err != nil {
				return nil, err
			}
		}
		next, err := fn(t, st)
		if err != nil || next == nil {
			return nil, err
		}
		sealed, err := v.seal(connection, next)
		if err != nil {
			return nil, err
		}
		return &store.EncryptedToken{Connection: connection, Sealed: sealed, Status: store.TokenOK,
			ExpiresAt: next.ExpiresAt, UpdatedAt: v.now().UTC()}, nil
	})
}

// MarkNeedsReauthorization records that the server refused the
// connection's grant (reason: the OAuth error code). The sealed token is
// kept (it is useless but harmless) and replaced at the next authorization.
func (v *Vault) MarkNeedsReauthorization(ctx context.Context, connection, reason string) error {
	return v.st.UpdateToken(ctx, connection, func(cur *store.EncryptedToken) (*store.EncryptedToken, error) {
		next := store.EncryptedToken{Connection: connection, Sealed: store.Sealed{}}
		if cur != nil {
			next = *cur
		}
		next.Status, next.StatusReason, next.UpdatedAt = store.TokenNeedsReauthorization, reason, v.now().UTC()
		return &next, nil
	})
}

// RewrapTokens re-wraps every stored token's data key under the keyring's
// primary KEK (part of `ehrgate keys rotate-kek`); each record is re-wrapped
// in its own transaction, so readers never wait long. It returns how many
// records changed.
func (v *Vault) RewrapTokens(ctx context.Context) (int, error) {
	list, err := v.st.ListTokens(ctx)
	if err != nil {
		return 0, fmt.Errorf("re-wrapping tokens: %w", err)
	}
	n := 0
	for _, e := range list {
		err := v.st.UpdateToken(ctx, e.Connection, func(cur *store.EncryptedToken) (*store.EncryptedToken, error) {
			if cur == nil || len(cur.Sealed.Ciphertext) == 0 {
				return nil, nil
			}
			s, err := v.ring.Rewrap(secrets.Sealed(cur.Sealed), tokenAAD(cur.Connection))
			if err != nil {
				return nil, err
			}
			if s.KEKID == cur.Sealed.KEKID {
				return nil, nil
			}
			next := *cur
			next.Sealed = store.Sealed(s)
			n++
			return &next, nil
		})
		if err != nil {
			return n, fmt.Errorf("re-wrapping token of %q: %w", e.Connection, err)
		}
	}
	return n, nil
}
