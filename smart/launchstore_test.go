package smart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ehrgate/secrets"
	"ehrgate/store"
	"ehrgate/store/sqlite"
	"ehrgate/store/storetest"
)

// launchBackends are the launch stores the Launcher's tests run against:
// the in-memory default and the SQLite store.
var launchBackends = []struct {
	name string
	open func(t *testing.T) func(*LauncherOptions)
}{
	{"memory", func(*testing.T) func(*LauncherOptions) { return func(*LauncherOptions) {} }},
	{"sqlite", func(t *testing.T) func(*LauncherOptions) {
		s := openSQLite(t, filepath.Join(t.TempDir(), sqlite.FileName))
		return func(o *LauncherOptions) { o.Launches = s }
	}},
}

func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMemLaunchesConformance(t *testing.T) {
	storetest.RunLaunchTests(t, func(*testing.T) store.PendingLaunches { return newMemLaunches() })
}

// TestMemLaunchesHeap puts, takes and purges launches with random expiries
// and checks the in-memory store against a plain model after each step:
// the heap, the key map and the per-address counts must agree.
func TestMemLaunchesHeap(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	m := newMemLaunches()
	model := map[string]store.PendingLaunch{}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	now := t0
	for i := range 5000 {
		switch op := rng.IntN(10); {
		case op < 6:
			p := store.PendingLaunch{Key: fmt.Sprint("k", i), ClientAddr: fmt.Sprint("a", rng.IntN(7)), CreatedAt: now,
				ExpiresAt: now.Add(time.Duration(1+rng.IntN(600)) * time.Second)}
			if err := m.PutLaunch(ctx, p, store.LaunchLimits{}); err != nil {
				t.Fatal(err)
			}
			model[p.Key] = p
		case op < 8:
			k := fmt.Sprint("k", rng.IntN(i+1))
			_, err := m.TakeLaunch(ctx, k, now)
			want, ok := model[k]
			delete(model, k)
			if live := ok && now.Before(want.ExpiresAt); live != (err == nil) {
				t.Fatalf("step %d: TakeLaunch(%q) error = %v, live in the model: %v", i, k, err, live)
			}
		default:
			now = now.Add(time.Duration(rng.IntN(60)) * time.Second)
			if _, err := m.PurgeLaunches(ctx, now); err != nil {
				t.Fatal(err)
			}
			for k, p := range model {
				if !now.Before(p.ExpiresAt) {
					delete(model, k)
				}
			}
		}
		m.mu.Lock()
		if len(m.byKey) != len(m.exp) {
			t.Fatalf("step %d: %d keys, %d heap entries", i, len(m.byKey), len(m.exp))
		}
		total := 0
		for _, n := range m.byAddr {
			total += n
		}
		for j, e := range m.exp {
			if e.idx != j || (j > 0 && m.exp[(j-1)/2].p.ExpiresAt.After(e.p.ExpiresAt)) {
				t.Fatalf("step %d: heap entry %d (idx %d) out of order", i, j, e.idx)
			}
		}
		m.mu.Unlock()
		if total != len(m.byKey) {
			t.Fatalf("step %d: per-address counts sum to %d, %d launches held", i, total, len(m.byKey))
		}
		// Unpurged expired entries may remain until the next purge;
		// every live launch of the model must be there.
		for k := range model {
			if _, ok := m.byKey[k]; !ok && now.Before(model[k].ExpiresAt) {
				t.Fatalf("step %d: live launch %q lost", i, k)
			}
		}
	}
}

// TestLaunchAcrossReplicas starts a launch on one Launcher and completes it
// on another, each with its own handle on one SQLite database (two gateway
// processes behind a load balancer), then replays the callback on both.
func TestLaunchAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	stA, stB := openSQLite(t, path), openSQLite(t, path)
	h := newHarness(t, AuthNone, func(o *LauncherOptions) { o.Launches = stA })
	ob := h.opts
	ob.Launches = stB
	lb, err := NewLauncher(ob)
	if err != nil {
		t.Fatal(err)
	}
	replicaB := httptest.NewServer(lb.CallbackHandler())
	t.Cleanup(replicaB.Close)

	cb, browser := h.callbackURL() // launch on A, up to the EHR's redirect back
	if n, err := stB.CountLaunches(ctx, "127.0.0.1", h.clock.Now()); n != 1 || err != nil {
		t.Fatalf("replica B sees %d pending launches (%v), want 1", n, err)
	}
	state := mustQuery(t, cb).Get("state")
	h.as.mu.Lock()
	nonce := h.as.lastAuthorize.Get("nonce")
	h.as.mu.Unlock()
	cbURL, _ := url.Parse(cb)
	cookies := browser.Jar.Cookies(cbURL)
	if len(cookies) != 1 || nonce == "" {
		t.Fatalf("binding cookies %v, nonce %q", cookies, nonce)
	}
	secretsOnDisk := []string{"state:" + state, "nonce:" + nonce, "binding:" + cookies[0].Value}
	assertNotOnDisk(t, path, secretsOnDisk)

	onB := *cbURL
	onB.Host = strings.TrimPrefix(replicaB.URL, "http://") // cookies are not per port: the browser sends its binding
	status, body, _ := get(t, browser, onB.String())
	if status != http.StatusOK || !strings.Contains(body, "Authorized") {
		t.Fatalf("callback on replica B: status %d body %s", status, body)
	}
	if tok, _, err := h.vault.Load(ctx, "hosp"); err != nil || tok == nil || tok.Context.Patient != "pat-123" {
		t.Fatalf("vault after the callback on B: %v, %v", tok, err)
	}
	h.as.mu.Lock()
	verifier := h.as.lastForm.Get("code_verifier")
	h.as.mu.Unlock()
	assertNotOnDisk(t, path, append(secretsOnDisk, "verifier:"+verifier))

	// Single use across both replicas, binding cookie kept.
	for _, u := range []string{cb, onB.String()} {
		req, _ := http.NewRequest("GET", u, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback on %s: status %d, want 400", u, resp.StatusCode)
		}
	}
	if _, n := h.as.count(); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}

	// The same callback delivered to both replicas at once: one completes.
	cb, browser = h.callbackURL()
	cbURL, _ = url.Parse(cb)
	cookies = browser.Jar.Cookies(cbURL)
	onB = *cbURL
	onB.Host = strings.TrimPrefix(replicaB.URL, "http://")
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, u := range []string{cb, onB.String()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", u, nil)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	if statuses[0]+statuses[1] != http.StatusOK+http.StatusBadRequest {
		t.Errorf("concurrent callbacks on A and B: statuses %v, want one 200 and one 400", statuses)
	}
	if _, n := h.as.count(); n != 2 {
		t.Errorf("token requests = %d, want 2 (one per launch)", n)
	}
}

// assertNotOnDisk fails when any secret (each "what:value") appears in the
// database file or its WAL.
func assertNotOnDisk(t *testing.T, path string, secrets []string) {
	t.Helper()
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			what, v, _ := strings.Cut(s, ":")
			if v == "" {
				t.Fatalf("no %s to look for", what)
			}
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s: the %s is stored in plaintext", filepath.Base(f), what)
			}
		}
	}
}

// launchReq is an EHR launch request from addr (RemoteAddr) with the given
// X-Forwarded-For ("" for none).
func (h *harness) launchReq(addr, xff string) *http.Request {
	r := httptest.NewRequest("GET", h.launchURL(), nil)
	r.RemoteAddr = addr
	if xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	return r
}

// flood sends n launch requests from makeReq straight to the launch handler
// and returns how many started an authorization (302) and how many were
// refused as too many (429); anything else fails the test.
func (h *harness) flood(n int, makeReq func(i int) *http.Request) (started, refused int) {
	h.t.Helper()
	hd := h.launcher.LaunchHandler()
	for i := range n {
		rec := httptest.NewRecorder()
		hd.ServeHTTP(rec, makeReq(i))
		switch rec.Code {
		case http.StatusFound:
			started++
		case http.StatusTooManyRequests:
			refused++
			if i == n-1 && (!strings.Contains(rec.Body.String(), "Too many authorizations in progress") || rec.Header().Get("Retry-After") == "") {
				h.t.Errorf("429 page: Retry-After %q, body %s", rec.Header().Get("Retry-After"), rec.Body)
			}
		default:
			h.t.Fatalf("launch %d: status %d body %s", i, rec.Code, rec.Body)
		}
	}
	return started, refused
}

func TestLaunchLimits(t *testing.T) {
	for _, be := range launchBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("per address", func(t *testing.T) {
				h := newHarness(t, AuthNone, be.open(t))
				const n = 500
				// X-Forwarded-For is ignored without trusted proxies: a
				// client cannot pick the address it is counted against.
				started, refused := h.flood(n, func(i int) *http.Request {
					return h.launchReq("203.0.113.9:40000", fmt.Sprintf("198.51.100.%d", i%250))
				})
				if started != DefaultMaxPendingPerAddress || refused != n-started {
					t.Errorf("%d launches from one address: %d started, %d refused; want %d started", n, started, refused, DefaultMaxPendingPerAddress)
				}
				if got, err := h.launcher.launches.CountLaunches(ctx, "203.0.113.9", h.clock.Now()); got != DefaultMaxPendingPerAddress || err != nil {
					t.Errorf("CountLaunches = %d, %v; want %d", got, err, DefaultMaxPendingPerAddress)
				}
				if s, _ := h.flood(1, func(int) *http.Request { return h.launchReq("203.0.113.10:1", "") }); s != 1 {
					t.Error("a launch from another address was refused")
				}
				// IPv6 clients are counted per /64.
				s6, _ := h.flood(30, func(i int) *http.Request { return h.launchReq(fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1), "") })
				if s6 != DefaultMaxPendingPerAddress {
					t.Errorf("30 launches from one IPv6 /64: %d started, want %d", s6, DefaultMaxPendingPerAddress)
				}
				// Once they expire the address may launch again.
				h.clock.Advance(h.launcher.o.StateTTL + time.Minute)
				if s, _ := h.flood(1, func(int) *http.Request { return h.launchReq("203.0.113.9:40000", "") }); s != 1 {
					t.Error("a launch after the others expired was refused")
				}
				if m, ok := h.launcher.launches.(*memLaunches); ok && m.len() != 1 {
					t.Errorf("memory store holds %d launches after expiry and one new, want 1", m.len())
				}
				if strings.Contains(h.logs.String(), "203.0.113.9") || strings.Contains(h.logs.String(), "2001:db8") {
					t.Error("a client address was logged")
				}
			})
			t.Run("total", func(t *testing.T) {
				h := newHarness(t, AuthNone, be.open(t), func(o *LauncherOptions) {
					o.MaxPending = 50
					o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
				})
				// Behind the trusted proxy each client is its own address.
				started, refused := h.flood(300, func(i int) *http.Request {
					return h.launchReq("10.1.2.3:8443", fmt.Sprintf("100.64.%d.%d, 10.9.9.9", i/250, i%250))
				})
				if started != 50 || refused != 250 {
					t.Errorf("300 launches from distinct addresses: %d started, %d refused; want 50 started", started, refused)
				}
				if m, ok := h.launcher.launches.(*memLaunches); ok && m.len() != 50 {
					t.Errorf("memory store holds %d launches, want 50", m.len())
				}
			})
		})
	}
}

// TestLaunchFloodFromOneAddress is the attack: tens of thousands
// of unauthenticated launch requests from one address keep at most
// MaxPendingPerAddress pending authorizations, and memory does not grow
// with the number of requests.
func TestLaunchFloodFromOneAddress(t *testing.T) {
	n := 30000
	if testing.Short() {
		n = 3000
	}
	h := newHarness(t, AuthNone)
	m := h.launcher.launches.(*memLaunches)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	req := func(int) *http.Request { return h.launchReq("203.0.113.9:40000", "") }
	h.flood(n/10, req)
	before := heap()
	started, _ := h.flood(n-n/10, req)
	after := heap()
	if started != 0 || m.len() != DefaultMaxPendingPerAddress {
		t.Errorf("after %d launches: %d pending, want %d", n, m.len(), DefaultMaxPendingPerAddress)
	}
	m.mu.Lock()
	if len(m.exp) != DefaultMaxPendingPerAddress || len(m.byAddr) != 1 {
		t.Errorf("heap %d entries, %d addresses", len(m.exp), len(m.byAddr))
	}
	m.mu.Unlock()
	// 27,000 pending launches would take several MB; refused requests
	// must leave nothing behind.
	if after > before && after-before > 1<<20 {
		t.Errorf("heap grew by %d bytes over %d refused launches", after-before, n-n/10)
	}
}

// failingLaunches is a LaunchStore whose every call fails.
type failingLaunches struct{}

var errStoreDown = errors.New("database is locked")

func (failingLaunches) PutLaunch(context.Context, store.PendingLaunch, store.LaunchLimits) error {
	return errStoreDown
}
func (failingLaunches) TakeLaunch(context.Context, string, time.Time) (store.PendingLaunch, error) {
	return store.PendingLaunch{}, errStoreDown
}
func (failingLaunches) CountLaunches(context.Context, string, time.Time) (int, error) {
	return 0, errStoreDown
}
func (failingLaunches) PurgeLaunches(context.Context, time.Time) (int, error) { return 0, errStoreDown }

// TestLaunchStoreFailure: a store that fails gives 503 pages with a
// reference, not a launch and not the internal error.
func TestLaunchStoreFailure(t *testing.T) {
	h := newHarness(t, AuthNone, func(o *LauncherOptions) { o.Launches = failingLaunches{} })
	status, body, _ := get(t, h.browser(true), h.launchURL())
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "reference") || strings.Contains(body, errStoreDown.Error()) {
		t.Errorf("launch with the store down: status %d body %s", status, body)
	}
	status, body, _ = get(t, h.browser(false), h.app.URL+"/smart/callback?code=c&state=s")
	if status != http.StatusServiceUnavailable || strings.Contains(body, errStoreDown.Error()) {
		t.Errorf("callback with the store down: status %d body %s", status, body)
	}
	if all, _ := h.as.count(); all != 0 {
		t.Errorf("%d requests reached the EHR, want 0", all)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"peer", "203.0.113.9:5555", nil, nil, "203.0.113.9"},
		{"forwarded-for ignored by default", "203.0.113.9:5555", []string{"198.51.100.1"}, nil, "203.0.113.9"},
		{"forwarded-for from an untrusted peer", "203.0.113.9:5555", []string{"198.51.100.1"}, trusted, "203.0.113.9"},
		{"trusted proxy", "10.0.0.1:5555", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"client-supplied hops left of the real one", "10.0.0.1:5555", []string{"1.2.3.4, 198.51.100.1, 10.0.0.7"}, trusted, "198.51.100.1"},
		{"several headers", "10.0.0.1:5555", []string{"1.2.3.4", "198.51.100.1"}, trusted, "198.51.100.1"},
		{"hop with a port", "10.0.0.1:5555", []string{"198.51.100.1:999"}, trusted, "198.51.100.1"},
		{"malformed hop stops at the proxy", "10.0.0.1:5555", []string{"198.51.100.1, garbage"}, trusted, "10.0.0.1"},
		{"only trusted hops", "10.0.0.1:5555", []string{"10.0.0.2"}, trusted, "10.0.0.2"},
		{"no header from a trusted proxy", "10.0.0.1:5555", nil, trusted, "10.0.0.1"},
		{"IPv6 per /64", "[2001:db8:1:2:aaaa::1]:443", nil, nil, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:203.0.113.9]:443", nil, nil, "203.0.113.9"},
		{"IPv6 behind a trusted IPv6 proxy", "[fd00::1]:443", []string{"2001:db8:5:6::99"}, trusted, "2001:db8:5:6::/64"},
		{"unparseable peer", "pipe", nil, nil, "unknown"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/smart/launch", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientAddr(r, c.trusted); got != c.want {
			t.Errorf("%s: clientAddr(%q, X-Forwarded-For %q) = %q, want %q", c.name, c.remote, c.xff, got, c.want)
		}
	}
}

// BenchmarkLaunch measures launch requests per second: "refused" floods
// from one address already at its limit (the attack), "started" begins an
// authorization for a new address each time (discovery over loopback HTTP,
// sealing, storing).
func BenchmarkLaunch(b *testing.B) {
	benchBackend := func(b *testing.B, name string) func(*LauncherOptions) {
		if name == "memory" {
			return func(*LauncherOptions) {}
		}
		s := openSQLite(b, filepath.Join(b.TempDir(), sqlite.FileName))
		return func(o *LauncherOptions) { o.Launches = s }
	}
	for _, be := range []string{"memory", "sqlite"} {
		for _, kind := range []string{"refused", "started"} {
			b.Run(be+"/"+kind, func(b *testing.B) {
				h := newHarness(b, AuthNone, benchBackend(b, be), func(o *LauncherOptions) { o.MaxPending = 1 << 30 })
				hd := h.launcher.LaunchHandler()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					addr := "203.0.113.9:1"
					if kind == "started" {
						addr = netip.AddrFrom4([4]byte{100, byte(64 + i>>16&63), byte(i >> 8), byte(i)}).String() + ":1"
					}
					rec := httptest.NewRecorder()
					hd.ServeHTTP(rec, h.launchReq(addr, ""))
					if kind == "started" && rec.Code != http.StatusFound || kind == "refused" && rec.Code != http.StatusTooManyRequests && i >= DefaultMaxPendingPerAddress {
						b.Fatalf("launch %d: status %d", i, rec.Code)
					}
				}
			})
		}
	}
}

// A launch sealed before a KEK rotation opens after it, once rewrapped,
// with only the new KEK left (keys rotate-kek drops the old one).
func TestRewrapLaunchesAcrossARotation(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t, filepath.Join(t.TempDir(), sqlite.FileName))
	k1, _ := secrets.GenerateKEK()
	k2, _ := secrets.GenerateKEK()
	key := launchKey("state-1")
	sealed, err := secrets.NewKeyring(k1).Seal([]byte(`{"connection":"hosp"}`), launchAAD(key))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.PutLaunch(ctx, store.PendingLaunch{Key: key, Connection: "hosp", ClientAddr: "192.0.2.1",
		Sealed: store.Sealed(sealed), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}, store.LaunchLimits{}); err != nil {
		t.Fatal(err)
	}
	n, err := RewrapLaunches(ctx, st, secrets.NewKeyring(k2, k1))
	if err != nil || n != 1 {
		t.Fatalf("RewrapLaunches = %d, %v; want 1", n, err)
	}
	p, err := st.TakeLaunch(ctx, key, now)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := secrets.NewKeyring(k2).Open(secrets.Sealed(p.Sealed), launchAAD(key)); err != nil || string(b) != `{"connection":"hosp"}` {
		t.Errorf("opening with the new KEK only = %q, %v", b, err)
	}
}
