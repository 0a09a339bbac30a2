package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ehrgate/store"
)

// RunLaunchTests runs the store.PendingLaunches conformance suite against
// stores made by newStore (a fresh, empty store per subtest; the factory
// registers its own cleanup).
func RunLaunchTests(t *testing.T, newStore func(t *testing.T) store.PendingLaunches) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.PendingLaunches)
	}{
		{"TakeNotFound", testLaunchTakeNotFound},
		{"PutTakeRoundTrip", testLaunchRoundTrip},
		{"TakeIsSingleUse", testLaunchSingleUse},
		{"ExpiredIsNotTaken", testLaunchExpired},
		{"DuplicateKey", testLaunchDuplicate},
		{"CountPerAddress", testLaunchCount},
		{"PerAddressLimit", testLaunchPerAddressLimit},
		{"TotalLimit", testLaunchTotalLimit},
		{"Purge", testLaunchPurge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
	t.Run("ConcurrentTakeSingleUse", func(t *testing.T) {
		s := newStore(t)
		testLaunchConcurrentTake(t, s, s)
	})
	t.Run("ConcurrentPutsRespectLimits", func(t *testing.T) {
		s := newStore(t)
		testLaunchConcurrentLimits(t, s, s)
	})
}

// RunSharedLaunchTests checks that two handles on one storage (two
// processes opening the same database) see each other's launches, that a
// launch is taken exactly once across them, and that the limits hold
// across them. open returns two such handles on a fresh, empty storage.
func RunSharedLaunchTests(t *testing.T, open func(t *testing.T) (a, b store.PendingLaunches)) {
	t.Run("PutOnOneTakeOnOther", func(t *testing.T) {
		a, b := open(t)
		ctx := context.Background()
		p := launch("k1", "10.0.0.1", launchT0)
		if err := a.PutLaunch(ctx, p, store.LaunchLimits{}); err != nil {
			t.Fatal(err)
		}
		if n, err := b.CountLaunches(ctx, "10.0.0.1", launchT0); n != 1 || err != nil {
			t.Errorf("other handle: CountLaunches = %d, %v; want 1", n, err)
		}
		got, err := b.TakeLaunch(ctx, "k1", launchT0.Add(time.Minute))
		if err != nil || !bytes.Equal(got.Sealed.Ciphertext, p.Sealed.Ciphertext) {
			t.Fatalf("other handle: TakeLaunch = %+v, %v", got, err)
		}
		if _, err := a.TakeLaunch(ctx, "k1", launchT0.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("first handle after take on the other: TakeLaunch error = %v, want ErrNotFound", err)
		}
	})
	t.Run("ConcurrentTakeSingleUse", func(t *testing.T) {
		a, b := open(t)
		testLaunchConcurrentTake(t, a, b)
	})
	t.Run("ConcurrentPutsRespectLimits", func(t *testing.T) {
		a, b := open(t)
		testLaunchConcurrentLimits(t, a, b)
	})
}

var launchT0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const launchTTL = 10 * time.Minute

func launch(key, addr string, created time.Time) store.PendingLaunch {
	return store.PendingLaunch{Key: key, Connection: "hosp", ClientAddr: addr,
		Sealed:    store.Sealed{KEKID: "kek-test", WrappedKey: []byte("wrapped-" + key), Ciphertext: []byte("sealed-" + key)},
		CreatedAt: created, ExpiresAt: created.Add(launchTTL)}
}

func testLaunchTakeNotFound(t *testing.T, s store.PendingLaunches) {
	if _, err := s.TakeLaunch(context.Background(), "nope", launchT0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeLaunch(%q) error = %v, want ErrNotFound", "nope", err)
	}
}

func testLaunchRoundTrip(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	p := launch("k1", "192.0.2.7", launchT0.Add(123*time.Millisecond))
	p.Sealed.WrappedKey = []byte{0, 1, 2, 0xff} // binary, not text
	if err := s.PutLaunch(ctx, p, store.LaunchLimits{PerAddress: 5, Total: 5}); err != nil {
		t.Fatalf("PutLaunch: %v", err)
	}
	got, err := s.TakeLaunch(ctx, "k1", launchT0.Add(time.Minute))
	if err != nil {
		t.Fatalf("TakeLaunch: %v", err)
	}
	if got.Key != p.Key || got.Connection != p.Connection || got.ClientAddr != p.ClientAddr ||
		got.Sealed.KEKID != p.Sealed.KEKID || !bytes.Equal(got.Sealed.WrappedKey, p.Sealed.WrappedKey) ||
		!bytes.Equal(got.Sealed.Ciphertext, p.Sealed.Ciphertext) ||
		!got.CreatedAt.Equal(p.CreatedAt) || !got.ExpiresAt.Equal(p.ExpiresAt) {
		t.Errorf("TakeLaunch = %+v, want %+v", got, p)
	}
}

func testLaunchSingleUse(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	if err := s.PutLaunch(ctx, launch("k1", "a", launchT0), store.LaunchLimits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLaunch(ctx, "k1", launchT0); err != nil {
		t.Fatalf("first TakeLaunch: %v", err)
	}
	if _, err := s.TakeLaunch(ctx, "k1", launchT0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second TakeLaunch error = %v, want ErrNotFound", err)
	}
	if n, err := s.CountLaunches(ctx, "a", launchT0); n != 0 || err != nil {
		t.Errorf("CountLaunches after take = %d, %v; want 0", n, err)
	}
}

func testLaunchExpired(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	for _, k := range []string{"k1", "k2"} {
		if err := s.PutLaunch(ctx, launch(k, "a", launchT0), store.LaunchLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	// Live until just before ExpiresAt.
	if _, err := s.TakeLaunch(ctx, "k1", launchT0.Add(launchTTL-time.Millisecond)); err != nil {
		t.Errorf("TakeLaunch 1ms before expiry: %v", err)
	}
	if _, err := s.TakeLaunch(ctx, "k2", launchT0.Add(launchTTL)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeLaunch at expiry error = %v, want ErrNotFound", err)
	}
	// The expired launch was removed, not left for an earlier clock.
	if _, err := s.TakeLaunch(ctx, "k2", launchT0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeLaunch of an expired launch after a failed take: error = %v, want ErrNotFound", err)
	}
}

func testLaunchDuplicate(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	if err := s.PutLaunch(ctx, launch("k1", "a", launchT0), store.LaunchLimits{}); err != nil {
		t.Fatal(err)
	}
	other := launch("k1", "b", launchT0)
	other.Sealed.Ciphertext = []byte("attacker")
	if err := s.PutLaunch(ctx, other, store.LaunchLimits{}); !errors.Is(err, store.ErrDuplicateKey) {
		t.Errorf("PutLaunch of a duplicate key error = %v, want ErrDuplicateKey", err)
	}
	got, err := s.TakeLaunch(ctx, "k1", launchT0)
	if err != nil || string(got.Sealed.Ciphertext) != "sealed-k1" {
		t.Errorf("TakeLaunch after a refused duplicate = %q, %v; want the first launch", got.Sealed.Ciphertext, err)
	}
}

func testLaunchCount(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	puts := []struct {
		key, addr string
		at        time.Duration
	}{{"a1", "a", 0}, {"a2", "a", time.Minute}, {"a3", "a", 2 * time.Minute}, {"b1", "b", 0}}
	for _, p := range puts {
		if err := s.PutLaunch(ctx, launch(p.key, p.addr, launchT0.Add(p.at)), store.LaunchLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		addr string
		at   time.Duration
		want int
	}{
		{"a", 2 * time.Minute, 3},
		{"b", 2 * time.Minute, 1},
		{"c", 2 * time.Minute, 0},
		{"a", launchTTL, 2}, // a1 expired
		{"a", launchTTL + 2*time.Minute, 0},
		{"b", launchTTL, 0},
	}
	for _, c := range cases {
		if n, err := s.CountLaunches(ctx, c.addr, launchT0.Add(c.at)); n != c.want || err != nil {
			t.Errorf("CountLaunches(%q, t0+%v) = %d, %v; want %d", c.addr, c.at, n, err, c.want)
		}
	}
}

func testLaunchPerAddressLimit(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	lim := store.LaunchLimits{PerAddress: 3, Total: 100}
	for i := range 3 {
		if err := s.PutLaunch(ctx, launch(fmt.Sprint("a", i), "a", launchT0), lim); err != nil {
			t.Fatalf("PutLaunch %d under the limit: %v", i, err)
		}
	}
	if err := s.PutLaunch(ctx, launch("a3", "a", launchT0), lim); !errors.Is(err, store.ErrTooManyFromAddress) {
		t.Errorf("PutLaunch over the per-address limit error = %v, want ErrTooManyFromAddress", err)
	}
	if _, err := s.TakeLaunch(ctx, "a3", launchT0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused launch was stored: TakeLaunch error = %v", err)
	}
	if err := s.PutLaunch(ctx, launch("b0", "b", launchT0), lim); err != nil {
		t.Errorf("PutLaunch from another address: %v", err)
	}
	if _, err := s.TakeLaunch(ctx, "a0", launchT0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLaunch(ctx, launch("a4", "a", launchT0), lim); err != nil {
		t.Errorf("PutLaunch after a take freed a place: %v", err)
	}
	// Expired launches do not count, purged or not.
	if err := s.PutLaunch(ctx, launch("a5", "a", launchT0.Add(launchTTL)), lim); err != nil {
		t.Errorf("PutLaunch after the others expired: %v", err)
	}
}

func testLaunchTotalLimit(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	lim := store.LaunchLimits{PerAddress: 2, Total: 5}
	for i := range 5 {
		if err := s.PutLaunch(ctx, launch(fmt.Sprint("k", i), fmt.Sprint("addr", i), launchT0), lim); err != nil {
			t.Fatalf("PutLaunch %d under the limit: %v", i, err)
		}
	}
	if err := s.PutLaunch(ctx, launch("k5", "fresh", launchT0), lim); !errors.Is(err, store.ErrTooManyLaunches) {
		t.Errorf("PutLaunch over the total limit error = %v, want ErrTooManyLaunches", err)
	}
	// A take frees a place, a refused duplicate takes none.
	if _, err := s.TakeLaunch(ctx, "k0", launchT0); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLaunch(ctx, launch("k1", "fresh", launchT0), lim); !errors.Is(err, store.ErrDuplicateKey) {
		t.Errorf("PutLaunch of a duplicate key error = %v, want ErrDuplicateKey", err)
	}
	if err := s.PutLaunch(ctx, launch("k7", "fresh", launchT0), lim); err != nil {
		t.Errorf("PutLaunch after a take freed a place: %v", err)
	}
	if err := s.PutLaunch(ctx, launch("k8", "fresh", launchT0), lim); !errors.Is(err, store.ErrTooManyLaunches) {
		t.Errorf("PutLaunch over the total limit again: error = %v, want ErrTooManyLaunches", err)
	}
	// Purged launches free their places too.
	if _, err := s.PurgeLaunches(ctx, launchT0.Add(launchTTL)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.PutLaunch(ctx, launch(fmt.Sprint("p", i), fmt.Sprint("addr", i), launchT0.Add(launchTTL)), lim); err != nil {
			t.Fatalf("PutLaunch %d after a purge: %v", i, err)
		}
	}
	if err := s.PutLaunch(ctx, launch("p5", "fresh", launchT0.Add(launchTTL)), lim); !errors.Is(err, store.ErrTooManyLaunches) {
		t.Errorf("PutLaunch over the total limit after a purge: error = %v, want ErrTooManyLaunches", err)
	}
	if err := s.PutLaunch(ctx, launch("k6", "fresh", launchT0.Add(2*launchTTL)), lim); err != nil {
		t.Errorf("PutLaunch once the others expired: %v", err)
	}
	// No limits: anything goes.
	for i := range 10 {
		if err := s.PutLaunch(ctx, launch(fmt.Sprint("u", i), "a", launchT0.Add(2*launchTTL)), store.LaunchLimits{}); err != nil {
			t.Fatalf("PutLaunch without limits: %v", err)
		}
	}
}

func testLaunchPurge(t *testing.T, s store.PendingLaunches) {
	ctx := context.Background()
	for i := range 6 {
		if err := s.PutLaunch(ctx, launch(fmt.Sprint("k", i), "a", launchT0.Add(time.Duration(i)*time.Minute)), store.LaunchLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PurgeLaunches(ctx, launchT0); n != 0 || err != nil {
		t.Errorf("PurgeLaunches before any expiry = %d, %v; want 0", n, err)
	}
	// At t0+TTL+2m, k0, k1 and k2 have expired (k2 exactly at its ExpiresAt).
	now := launchT0.Add(launchTTL + 2*time.Minute)
	if n, err := s.PurgeLaunches(ctx, now); n != 3 || err != nil {
		t.Errorf("PurgeLaunches(t0+TTL+2m) = %d, %v; want 3", n, err)
	}
	if n, err := s.PurgeLaunches(ctx, now); n != 0 || err != nil {
		t.Errorf("second PurgeLaunches = %d, %v; want 0", n, err)
	}
	// Purge really removed them: not even an earlier clock finds them.
	if _, err := s.TakeLaunch(ctx, "k1", launchT0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeLaunch of a purged launch error = %v, want ErrNotFound", err)
	}
	for _, k := range []string{"k3", "k4", "k5"} {
		if _, err := s.TakeLaunch(ctx, k, now); err != nil {
			t.Errorf("TakeLaunch(%q) after purge: %v", k, err)
		}
	}
}

// testLaunchConcurrentTake takes each of several launches from many
// goroutines at once, half through a and half through b: each must be
// taken exactly once.
func testLaunchConcurrentTake(t *testing.T, a, b store.PendingLaunches) {
	ctx := context.Background()
	const keys, takers = 8, 8
	for i := range keys {
		if err := a.PutLaunch(ctx, launch(fmt.Sprint("k", i), "a", launchT0), store.LaunchLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	var won [keys]atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range keys {
		for j := range takers {
			s := a
			if j%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := s.TakeLaunch(ctx, fmt.Sprint("k", i), launchT0)
				switch {
				case err == nil:
					won[i].Add(1)
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("TakeLaunch: %v", err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	for i := range keys {
		if n := won[i].Load(); n != 1 {
			t.Errorf("launch k%d taken %d times, want exactly once", i, n)
		}
	}
}

// testLaunchConcurrentLimits puts many launches from one address (and many
// from distinct addresses) at once through a and b: the limits must hold
// exactly.
func testLaunchConcurrentLimits(t *testing.T, a, b store.PendingLaunches) {
	ctx := context.Background()
	const perAddr, total, tries = 4, 10, 24
	lim := store.LaunchLimits{PerAddress: perAddr, Total: total}
	var okSame, okMany atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range tries {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			err := s.PutLaunch(ctx, launch(fmt.Sprint("same", i), "same", launchT0), lim)
			switch {
			case err == nil:
				okSame.Add(1)
			case !errors.Is(err, store.ErrTooManyFromAddress) && !errors.Is(err, store.ErrTooManyLaunches):
				t.Errorf("PutLaunch: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			err := s.PutLaunch(ctx, launch(fmt.Sprint("many", i), fmt.Sprint("addr", i), launchT0), lim)
			switch {
			case err == nil:
				okMany.Add(1)
			case !errors.Is(err, store.ErrTooManyLaunches):
				t.Errorf("PutLaunch: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n, err := a.CountLaunches(ctx, "same", launchT0); n != int(okSame.Load()) || n > perAddr || err != nil {
		t.Errorf("CountLaunches(same) = %d, %v; %d puts succeeded; limit %d", n, err, okSame.Load(), perAddr)
	}
	if got := okSame.Load() + okMany.Load(); got != total {
		t.Errorf("%d puts succeeded in all, want exactly the total limit %d", got, total)
	}
}

// LaunchRewrapStore is a store whose pending launches can be re-sealed.
type LaunchRewrapStore interface {
	store.PendingLaunches
	store.LaunchRewrapper
}

// RunLaunchRewrapTests checks store.LaunchRewrapper: what fn returns under
// another KEK is stored, the same KEK is left alone, and a failing fn
// changes nothing.
func RunLaunchRewrapTests(t *testing.T, newStore func(t *testing.T) LaunchRewrapStore) {
	ctx := context.Background()
	s := newStore(t)
	for _, k := range []string{"a", "b"} {
		if err := s.PutLaunch(ctx, launch(k, "192.0.2.1", launchT0), store.LaunchLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if _, err := s.RewrapLaunches(ctx, func(key string, in store.Sealed) (store.Sealed, error) {
		if key == "b" {
			return in, boom
		}
		return store.Sealed{KEKID: "new", WrappedKey: []byte("w2"), Ciphertext: []byte("c2")}, nil
	}); !errors.Is(err, boom) {
		t.Fatalf("RewrapLaunches with a failing fn = %v, want its error", err)
	}
	n, err := s.RewrapLaunches(ctx, func(key string, in store.Sealed) (store.Sealed, error) {
		if key == "b" {
			return in, nil // already under the primary KEK
		}
		return store.Sealed{KEKID: "new", WrappedKey: []byte("w2"), Ciphertext: []byte("c2")}, nil
	})
	if err != nil || n != 1 {
		t.Fatalf("RewrapLaunches = %d, %v; want 1", n, err)
	}
	a, err := s.TakeLaunch(ctx, "a", launchT0)
	if err != nil || a.Sealed.KEKID != "new" || string(a.Sealed.Ciphertext) != "c2" || a.Connection != "hosp" {
		t.Errorf("launch a after rewrap = %+v, %v", a, err)
	}
	b, err := s.TakeLaunch(ctx, "b", launchT0)
	if err != nil || b.Sealed.KEKID == "new" {
		t.Errorf("launch b after rewrap = %+v, %v; want it unchanged", b, err)
	}
}
