package store

import (
	"context"
	"errors"
	"time"
)

// PendingLaunch is one SMART App Launch authorization between ehrgate's
// redirect to the EHR's authorize endpoint and the EHR's redirect back: what
// the callback needs to finish it. The secret parts (PKCE verifier, nonce,
// browser binding, requested scopes, launch id, connection) are only in
// Sealed, envelope-encrypted by the caller (package secrets); the rest is
// metadata a store indexes.
type PendingLaunch struct {
	// Key finds the launch at the callback. Callers derive it from the
	// OAuth state (a hash of it), so the store never holds the state itself.
	Key string
	// Connection is the connection being authorized, for operators; the
	// caller trusts only the copy inside Sealed.
	Connection string
	// ClientAddr is the address (or address prefix) of the client that
	// started the launch, for LaunchLimits.PerAddress.
	ClientAddr string
	Sealed     Sealed
	CreatedAt  time.Time
	// ExpiresAt is when the launch stops being usable: it is live while
	// ExpiresAt is after the time a method is given.
	ExpiresAt time.Time
}

// LaunchLimits bound how many live pending launches PutLaunch accepts:
// PerAddress from one ClientAddr, Total in the whole store (shared by every
// process using it). Zero or negative means no bound.
type LaunchLimits struct {
	PerAddress int
	Total      int
}

// Errors PutLaunch returns when a bound is reached (nothing is written).
var (
	ErrTooManyFromAddress = errors.New("store: too many pending launches from this address")
	ErrTooManyLaunches    = errors.New("store: too many pending launches")
)

// ErrDuplicateKey is returned by PutLaunch when a launch with the same key
// is already stored (keys are random: this is a caller's bug, or an attack).
var ErrDuplicateKey = errors.New("store: duplicate key")

// PendingLaunches keeps pending SMART launches so that a launch started by
// one gateway process can be completed by another sharing the store, and
// so that unauthenticated launch requests cannot grow memory without bound.
//
// Contract: implementations are safe for concurrent use, by goroutines and
// by processes sharing the store. Times are compared at millisecond
// precision or finer; a launch is live at now when now is before its
// ExpiresAt.
//
// PutLaunch stores p unless that would exceed lim: it returns
// ErrTooManyFromAddress when p.ClientAddr already has lim.PerAddress live
// launches and ErrTooManyLaunches when the store holds lim.Total live
// launches, each counted at p.CreatedAt; the check and the insert are
// atomic (two concurrent puts never both take the last place).
//
// TakeLaunch removes the launch with key and returns it: single use, even
// when several processes take the same key at once (exactly one gets it).
// It returns ErrNotFound when no launch with that key is live at now (never
// stored, already taken, or expired; an expired one is removed as well).
//
// CountLaunches returns how many launches from clientAddr are live at now.
// PurgeLaunches removes every launch not live at now and returns how many
// it removed; a store must not need it for correctness, only for space.
type PendingLaunches interface {
	PutLaunch(ctx context.Context, p PendingLaunch, lim LaunchLimits) error
	TakeLaunch(ctx context.Context, key string, now time.Time) (PendingLaunch, error)
	CountLaunches(ctx context.Context, clientAddr string, now time.Time) (int, error)
	PurgeLaunches(ctx context.Context, now time.Time) (int, error)
}

// LaunchRewrapper re-seals pending launches, for a key-encryption key
// rotation. RewrapLaunches calls fn on each stored launch's sealed record
// (with its key, expired ones included) in one transaction, and stores
// what fn returns when its KEK differs; it returns how many it rewrote. A
// launch taken meanwhile is simply gone; fn failing fails the whole call
// and changes nothing.
type LaunchRewrapper interface {
	RewrapLaunches(ctx context.Context, fn func(key string, s Sealed) (Sealed, error)) (int, error)
}
