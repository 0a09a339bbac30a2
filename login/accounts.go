package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"ehrgate/store"
)

// Errors Accounts returns; callers branch on them.
var (
	// ErrNoAccount: no local account has that name.
	ErrNoAccount = errors.New("login: no such account")
	// ErrAccountExists: an account with that name exists already.
	ErrAccountExists = errors.New("login: the account exists already")
	// ErrBadCredentials: the name or the password is wrong. Users are shown
	// one message for both, so that names cannot be guessed.
	ErrBadCredentials = errors.New("login: wrong name or password")
	// ErrLocked: too many failures in a row; the account refuses every
	// password until the lockout ends.
	ErrLocked = errors.New("login: account locked after repeated failures")
)

// Lockout defaults: after MaxFailures wrong passwords in a row an account
// refuses every password for LockoutFor (OWASP Authentication Cheat Sheet,
// "Account lockout"; NIST SP 800-63B 5.2.2 rate limiting).
const (
	DefaultMaxFailures = 5
	DefaultLockoutFor  = 15 * time.Minute
)

// Account is a local account as listed (its hash is never returned).
type Account struct {
	Name            string    `json:"name"`
	DisplayName     string    `json:"display_name,omitempty"`
	Roles           []Role    `json:"roles"`
	Created         time.Time `json:"created"`
	PasswordChanged time.Time `json:"password_changed"`
	LastLogin       time.Time `json:"last_login,omitzero"`
	Failures        int       `json:"failures,omitempty"`    // wrong passwords since the last success
	LockedUntil     time.Time `json:"locked_until,omitzero"` // refused until then
}

// stored is an account as kept in the store.
type stored struct {
	Account
	Hash string `json:"hash"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// ValidName reports whether name may name a local account: lower-case
// letters, digits, '.', '_', '@' and '-', at most 64.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("login: %q is not an account name (lower-case letters, digits, . _ @ -; at most 64)", name)
	}
	return nil
}

// AccountOptions configure Accounts; zero values take the defaults.
type AccountOptions struct {
	Params      *Params // password hashing cost; nil = DefaultParams
	MaxFailures int     // default DefaultMaxFailures
	LockoutFor  time.Duration
	Clock       func() time.Time // time.Now when nil
}

// Accounts are the local accounts, kept in the store (every replica sees
// the same, and lockouts count failures from every replica). Safe for
// concurrent use.
type Accounts struct {
	docs      store.Documents
	p         Params
	max       int
	lock      time.Duration
	now       func() time.Time
	slots     chan struct{} // bounds concurrent hashing (each takes Params.Memory)
	dummyOnce sync.Once
	dummy     string // a hash checked for unknown names, so they take as long
}

// NewAccounts returns the local accounts kept in docs.
func NewAccounts(docs store.Documents, o AccountOptions) *Accounts {
	a := &Accounts{docs: docs, p: DefaultParams, max: o.MaxFailures, lock: o.LockoutFor, now: o.Clock, slots: make(chan struct{}, 2)}
	if o.Params != nil {
		a.p = *o.Params
	}
	if a.max <= 0 {
		a.max = DefaultMaxFailures
	}
	if a.lock <= 0 {
		a.lock = DefaultLockoutFor
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

func (a *Accounts) hash(ctx context.Context, pw []byte) (string, error) {
	if err := a.acquire(ctx); err != nil {
		return "", err
	}
	defer a.release()
	return hashPassword(pw, a.p)
}

func (a *Accounts) acquire(ctx context.Context) error {
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Accounts) release() { <-a.slots }

// Add creates an account with roles (at least one) and password.
func (a *Accounts) Add(ctx context.Context, name, displayName string, roles []Role, password []byte) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := checkRoles(roles); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := a.hash(ctx, password)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	return a.docs.UpdateDocument(ctx, DocAccount, name, func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, fmt.Errorf("%w: %s", ErrAccountExists, name)
		}
		return json.Marshal(stored{Account: Account{Name: name, DisplayName: displayName, Roles: roles, Created: now, PasswordChanged: now}, Hash: h})
	})
}

func checkRoles(roles []Role) error {
	if len(roles) == 0 {
		return errors.New("login: an account needs at least one role (admin, clinician or auditor)")
	}
	for _, r := range roles {
		if _, err := ParseRole(string(r)); err != nil {
			return err
		}
	}
	return nil
}

// SetPassword replaces name's password, clears its lockout and ends its
// sessions.
func (a *Accounts) SetPassword(ctx context.Context, name string, password []byte) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	h, err := a.hash(ctx, password)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	if err := a.update(ctx, name, func(s *stored) error {
		s.Hash, s.PasswordChanged, s.Failures, s.LockedUntil = h, now, 0, time.Time{}
		return nil
	}); err != nil {
		return err
	}
	_, err = endSessions(ctx, a.docs, "local", name)
	return err
}

// SetRoles replaces name's roles and ends its sessions (they carry the
// old roles).
func (a *Accounts) SetRoles(ctx context.Context, name string, roles []Role) error {
	if err := checkRoles(roles); err != nil {
		return err
	}
	if err := a.update(ctx, name, func(s *stored) error { s.Roles = roles; return nil }); err != nil {
		return err
	}
	_, err := endSessions(ctx, a.docs, "local", name)
	return err
}

// Remove deletes name's account and ends its sessions.
func (a *Accounts) Remove(ctx context.Context, name string) error {
	ok, err := a.docs.DeleteDocument(ctx, DocAccount, name)
	if err != nil {
		return fmt.Errorf("removing account %s: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoAccount, name)
	}
	_, err = endSessions(ctx, a.docs, "local", name)
	return err
}

// List returns every account, by name.
func (a *Accounts) List(ctx context.Context) ([]Account, error) {
	names, err := a.docs.ListDocuments(ctx, DocAccount)
	if err != nil {
		return nil, fmt.Errorf("listing accounts: %w", err)
	}
	var out []Account
	for _, n := range names {
		s, err := a.get(ctx, n)
		if errors.Is(err, ErrNoAccount) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s.Account)
	}
	return out, nil
}

func (a *Accounts) get(ctx context.Context, name string) (stored, error) {
	var s stored
	d, err := a.docs.GetDocument(ctx, DocAccount, name)
	if errors.Is(err, store.ErrNotFound) {
		return s, fmt.Errorf("%w: %s", ErrNoAccount, name)
	}
	if err != nil {
		return s, fmt.Errorf("reading account %s: %w", name, err)
	}
	if err := json.Unmarshal(d.Body, &s); err != nil {
		return s, fmt.Errorf("reading account %s: %w", name, err)
	}
	return s, nil
}

func (a *Accounts) update(ctx context.Context, name string, fn func(*stored) error) error {
	return a.docs.UpdateDocument(ctx, DocAccount, name, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("%w: %s", ErrNoAccount, name)
		}
		var s stored
		if err := json.Unmarshal(old, &s); err != nil {
			return nil, fmt.Errorf("reading account %s: %w", name, err)
		}
		if err := fn(&s); err != nil {
			return nil, err
		}
		return json.Marshal(s)
	})
}

// Authenticate checks name's password. It returns ErrBadCredentials for an
// unknown name or a wrong password (an unknown name costs as much time as
// a known one), and ErrLocked while the account is locked. Failures are
// counted in the store, so attempts spread over replicas add up; a success
// clears them. A hash made with other parameters than the current ones is
// replaced.
func (a *Accounts) Authenticate(ctx context.Context, name string, password []byte) (Person, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if ValidName(name) != nil || len(password) > MaxPasswordLen {
		a.burn(ctx, password)
		return Person{}, ErrBadCredentials
	}
	s, err := a.get(ctx, name)
	if errors.Is(err, ErrNoAccount) {
		a.burn(ctx, password)
		return Person{}, ErrBadCredentials
	}
	if err != nil {
		return Person{}, err
	}
	now := a.now()
	if now.Before(s.LockedUntil) {
		return Person{}, ErrLocked
	}
	if err := a.acquire(ctx); err != nil {
		return Person{}, err
	}
	ok, stale := verifyPassword(password, s.Hash, a.p)
	a.release()
	if !ok {
		err := a.update(ctx, name, func(s *stored) error {
			s.Failures++
			if s.Failures >= a.max {
				s.LockedUntil, s.Failures = now.Add(a.lock).UTC(), 0
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrNoAccount) {
			return Person{}, err
		}
		return Person{}, ErrBadCredentials
	}
	var rehash string
	if stale {
		if h, err := a.hash(ctx, password); err == nil {
			rehash = h
		}
	}
	if err := a.update(ctx, name, func(s *stored) error {
		if now.Before(s.LockedUntil) {
			return ErrLocked // locked by another replica meanwhile
		}
		s.Failures, s.LastLogin = 0, now.UTC()
		if rehash != "" {
			s.Hash = rehash
		}
		return nil
	}); err != nil {
		if errors.Is(err, ErrNoAccount) {
			return Person{}, ErrBadCredentials
		}
		return Person{}, err
	}
	return Person{ID: s.Name, Name: s.DisplayName, Roles: slices.Clone(s.Roles), Method: "local"}, nil
}

// burn spends the time a password check takes, for names that have no
// account.
func (a *Accounts) burn(ctx context.Context, pw []byte) {
	a.dummyOnce.Do(func() { a.dummy, _ = hashPassword([]byte("ehrgate dummy password"), a.p) })
	if err := a.acquire(ctx); err != nil {
		return
	}
	verifyPassword(pw, a.dummy, a.p)
	a.release()
}
