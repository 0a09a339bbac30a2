package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// Session timeout defaults (OWASP Session Management Cheat Sheet: 15-30
// minutes idle for sensitive applications; a working day absolute).
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
)

// session is a session as kept in the store (named by the hash of its id).
type session struct {
	Person  Person    `json:"person"`
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"`
}

// errNoSession: the cookie names no live session.
var errNoSession = errors.New("login: no session")

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashID is the store name of a session id or an OpenID state: only a
// hash is stored, so reading the store does not yield a usable session.
func hashID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// sessions keeps sessions in the store.
type sessions struct {
	docs     store.Documents
	idle     time.Duration
	max      time.Duration
	now      func() time.Time
	touchGap time.Duration // Seen is rewritten only when older than this
}

// create starts a session for p and returns its id (for the cookie only).
func (s *sessions) create(ctx context.Context, p Person) (string, session, error) {
	id := randomToken(32)
	now := s.now().UTC()
	ss := session{Person: p, CSRF: randomToken(32), Created: now, Seen: now}
	b, err := json.Marshal(ss)
	if err != nil {
		return "", ss, err
	}
	err = s.docs.UpdateDocument(ctx, DocSession, hashID(id), func(old []byte) ([]byte, error) {
		if old != nil {
			return nil, errors.New("login: session id collision") // 256 random bits: never
		}
		return b, nil
	})
	if err != nil {
		return "", ss, fmt.Errorf("storing a session: %w", err)
	}
	return id, ss, nil
}

// expired reports whether ss has outlived either timeout at now.
func (s *sessions) expired(ss session, now time.Time) bool {
	return !now.Before(ss.Created.Add(s.max)) || !now.Before(ss.Seen.Add(s.idle))
}

// lookup returns the live session with id, refreshing its last-seen time
// when it is older than touchGap. An expired session is deleted.
func (s *sessions) lookup(ctx context.Context, id string) (session, error) {
	var ss session
	if id == "" {
		return ss, errNoSession
	}
	name := hashID(id)
	d, err := s.docs.GetDocument(ctx, DocSession, name)
	if errors.Is(err, store.ErrNotFound) {
		return ss, errNoSession
	}
	if err != nil {
		return ss, fmt.Errorf("reading a session: %w", err)
	}
	if err := json.Unmarshal(d.Body, &ss); err != nil {
		return ss, fmt.Errorf("reading a session: %w", err)
	}
	now := s.now().UTC()
	if s.expired(ss, now) {
		if _, err := s.docs.DeleteDocument(ctx, DocSession, name); err != nil {
			return ss, fmt.Errorf("deleting an expired session: %w", err)
		}
		return ss, errNoSession
	}
	if now.Sub(ss.Seen) >= s.touchGap {
		err := s.docs.UpdateDocument(ctx, DocSession, name, func(old []byte) ([]byte, error) {
			if old == nil {
				return nil, errNoSession // ended meanwhile (logout on another replica)
			}
			var cur session
			if err := json.Unmarshal(old, &cur); err != nil {
				return nil, err
			}
			if now.After(cur.Seen) {
				cur.Seen = now
			}
			return json.Marshal(cur)
		})
		if err != nil {
			if errors.Is(err, errNoSession) {
				return ss, errNoSession
			}
			return ss, fmt.Errorf("refreshing a session: %w", err)
		}
		ss.Seen = now
	}
	return ss, nil
}

// end deletes the session with id.
func (s *sessions) end(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if _, err := s.docs.DeleteDocument(ctx, DocSession, hashID(id)); err != nil {
		return fmt.Errorf("ending a session: %w", err)
	}
	return nil
}

// sweep deletes expired sessions and pending logins older than
// pendingTTL; it returns how many it deleted.
func (s *sessions) sweep(ctx context.Context, pendingTTL time.Duration) (int, error) {
	now := s.now().UTC()
	n := 0
	err := eachDoc(ctx, s.docs, DocSession, func(name string, body []byte) error {
		var ss session
		if json.Unmarshal(body, &ss) == nil && !s.expired(ss, now) {
			return nil
		}
		if ok, err := s.docs.DeleteDocument(ctx, DocSession, name); err != nil {
			return err
		} else if ok {
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	err = eachDoc(ctx, s.docs, DocPending, func(name string, body []byte) error {
		var p pending
		if json.Unmarshal(body, &p) == nil && now.Sub(p.Created) < pendingTTL {
			return nil
		}
		if ok, err := s.docs.DeleteDocument(ctx, DocPending, name); err != nil {
			return err
		} else if ok {
			n++
		}
		return nil
	})
	return n, err
}

// eachDoc calls fn with every document of kind (documents removed while it
// runs are skipped).
func eachDoc(ctx context.Context, docs store.Documents, kind string, fn func(name string, body []byte) error) error {
	names, err := docs.ListDocuments(ctx, kind)
	if err != nil {
		return fmt.Errorf("listing %s documents: %w", kind, err)
	}
	for _, n := range names {
		d, err := docs.GetDocument(ctx, kind, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading a %s document: %w", kind, err)
		}
		if err := fn(n, d.Body); err != nil {
			return err
		}
	}
	return nil
}

// endSessions deletes every session of the person with id signed in by
// method, and returns how many it deleted (removing an account or changing
// its password or roles ends its sessions on every replica).
func endSessions(ctx context.Context, docs store.Documents, method, id string) (int, error) {
	n := 0
	err := eachDoc(ctx, docs, DocSession, func(name string, body []byte) error {
		var ss session
		if json.Unmarshal(body, &ss) != nil || ss.Person.ID != id || ss.Person.Method != method {
			return nil
		}
		if ok, err := docs.DeleteDocument(ctx, DocSession, name); err != nil {
			return fmt.Errorf("ending a session: %w", err)
		} else if ok {
			n++
		}
		return nil
	})
	return n, err
}
