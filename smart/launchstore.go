package smart

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"ehrgate/secrets"
	"ehrgate/store"
)

// LaunchStore keeps the Launcher's pending authorizations between the
// redirect to the EHR and the callback. Records arrive sealed (the PKCE
// verifier, nonce, browser binding, scopes and launch id are
// envelope-encrypted by the Launcher with the Vault's keyring), keyed by a
// hash of the OAuth state.
//
// The contract is store.PendingLaunches' (which every store backend
// implementing that role satisfies): PutLaunch enforces the limits
// atomically with the insert, TakeLaunch is an atomic single-use
// get-and-delete that refuses expired launches, CountLaunches counts one
// client address's live launches and PurgeLaunches drops expired ones.
// Give the Launcher a store shared by every gateway process (the SQLite or
// PostgreSQL store) so a launch begun on one replica completes on another;
// without one it keeps them in memory, for this process only.
type LaunchStore interface {
	PutLaunch(ctx context.Context, p store.PendingLaunch, lim store.LaunchLimits) error
	TakeLaunch(ctx context.Context, key string, now time.Time) (store.PendingLaunch, error)
	CountLaunches(ctx context.Context, clientAddr string, now time.Time) (int, error)
	PurgeLaunches(ctx context.Context, now time.Time) (int, error)
}

// Every store role implementation is a LaunchStore.
var _ LaunchStore = store.PendingLaunches(nil)

// launchKey is the store key of the pending launch for an OAuth state: its
// SHA-256, so the store (and whoever reads it) never holds a usable state.
func launchKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// launchAAD binds a sealed pending launch to its key, so a record copied
// into another row does not decrypt.
func launchAAD(key string) []byte { return secrets.AAD(key, "smart-launch") }

// RewrapLaunches re-seals every pending launch in st under ring's primary
// KEK (keys rotate-kek), so that launches begun before a rotation complete
// after the old KEK is dropped. It returns how many it rewrote.
func RewrapLaunches(ctx context.Context, st store.LaunchRewrapper, ring *secrets.Keyring) (int, error) {
	return st.RewrapLaunches(ctx, func(key string, s store.Sealed) (store.Sealed, error) {
		next, err := ring.Rewrap(secrets.Sealed(s), launchAAD(key))
		return store.Sealed(next), err
	})
}

// pendingRecord is the sealed part of a pending launch.
type pendingRecord struct {
	Connection string    `json:"connection"`
	Launch     string    `json:"launch,omitempty"`
	Verifier   string    `json:"code_verifier"`
	Nonce      string    `json:"nonce"`
	Binding    string    `json:"binding"`
	Scopes     Scopes    `json:"scopes"`
	Created    time.Time `json:"created"`
}

func (l *Launcher) seal(key string, r *pendingRecord) (store.Sealed, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return store.Sealed{}, fmt.Errorf("encoding pending launch: %w", err)
	}
	s, err := l.o.Vault.ring.Seal(b, launchAAD(key))
	if err != nil {
		return store.Sealed{}, fmt.Errorf("sealing pending launch: %w", err)
	}
	return store.Sealed(s), nil
}

func (l *Launcher) open(key string, s store.Sealed) (*pendingRecord, error) {
	b, err := l.o.Vault.ring.Open(secrets.Sealed(s), launchAAD(key))
	if err != nil {
		return nil, fmt.Errorf("opening pending launch: %w", err)
	}
	var r pendingRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding pending launch: stored record is corrupt")
	}
	return &r, nil
}

// memLaunches is the in-memory LaunchStore, for one process. Expired
// launches are dropped from the front of a min-heap ordered by expiry, so
// no call scans the launches that are still live; the limits bound how
// many it holds.
type memLaunches struct {
	mu     sync.Mutex
	byKey  map[string]*memLaunch
	byAddr map[string]int
	exp    launchHeap
}

type memLaunch struct {
	p   store.PendingLaunch
	idx int // position in the heap
}

func newMemLaunches() *memLaunches {
	return &memLaunches{byKey: map[string]*memLaunch{}, byAddr: map[string]int{}}
}

// purge drops every launch not live at now. Callers hold m.mu.
func (m *memLaunches) purge(now time.Time) int {
	n := 0
	for len(m.exp) > 0 && !now.Before(m.exp[0].p.ExpiresAt) {
		m.remove(m.exp[0])
		n++
	}
	return n
}

// remove drops e. Callers hold m.mu.
func (m *memLaunches) remove(e *memLaunch) {
	heap.Remove(&m.exp, e.idx)
	delete(m.byKey, e.p.Key)
	if m.byAddr[e.p.ClientAddr]--; m.byAddr[e.p.ClientAddr] <= 0 {
		delete(m.byAddr, e.p.ClientAddr)
	}
}

// PutLaunch implements LaunchStore.
func (m *memLaunches) PutLaunch(_ context.Context, p store.PendingLaunch, lim store.LaunchLimits) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.purge(p.CreatedAt)
	switch {
	case lim.PerAddress > 0 && m.byAddr[p.ClientAddr] >= lim.PerAddress:
		return fmt.Errorf("storing pending launch: %w", store.ErrTooManyFromAddress)
	case lim.Total > 0 && len(m.byKey) >= lim.Total:
		return fmt.Errorf("storing pending launch: %w", store.ErrTooManyLaunches)
	}
	if _, dup := m.byKey[p.Key]; dup {
		return fmt.Errorf("storing pending launch: %w", store.ErrDuplicateKey)
	}
	p.Sealed.WrappedKey, p.Sealed.Ciphertext = slices.Clone(p.Sealed.WrappedKey), slices.Clone(p.Sealed.Ciphertext)
	e := &memLaunch{p: p}
	heap.Push(&m.exp, e)
	m.byKey[p.Key] = e
	m.byAddr[p.ClientAddr]++
	return nil
}

// TakeLaunch implements LaunchStore.
func (m *memLaunches) TakeLaunch(_ context.Context, key string, now time.Time) (store.PendingLaunch, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byKey[key]
	if !ok {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", store.ErrNotFound)
	}
	m.remove(e)
	if !now.Before(e.p.ExpiresAt) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: expired: %w", store.ErrNotFound)
	}
	return e.p, nil
}

// CountLaunches implements LaunchStore.
func (m *memLaunches) CountLaunches(_ context.Context, clientAddr string, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.purge(now)
	return m.byAddr[clientAddr], nil
}

// PurgeLaunches implements LaunchStore.
func (m *memLaunches) PurgeLaunches(_ context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.purge(now), nil
}

// len returns how many launches m holds, live or not yet purged.
func (m *memLaunches) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byKey)
}

// launchHeap is a min-heap of launches by expiry (container/heap).
type launchHeap []*memLaunch

func (h launchHeap) Len() int           { return len(h) }
func (h launchHeap) Less(i, j int) bool { return h[i].p.ExpiresAt.Before(h[j].p.ExpiresAt) }
func (h launchHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *launchHeap) Push(x any) {
	e := x.(*memLaunch)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *launchHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

var (
	_ LaunchStore           = (*memLaunches)(nil)
	_ store.PendingLaunches = (*memLaunches)(nil)
)
