// Package feedeval runs the simulated EHR's change feed against ehrgate's
// subscription side in one process and measures what arrived: `ehrgate
// events eval`. The Rig it builds (simulator, store, notification hub,
// FHIR client) is also what the subscriptions tests run on.
package feedeval

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/fhir"
	"ehrgate/refresh"
	"ehrgate/store"
	"ehrgate/subscriptions"
)

// Connection is the rig's connection name.
const Connection = "sim"

// RigOptions configure a Rig.
type RigOptions struct {
	Patients int    // loaded into the simulator (default 100)
	StoreURL string // default: a fresh sqlite store in a temporary directory
	// HeartbeatUnit is the simulator's heartbeat second (default 100 ms).
	HeartbeatUnit time.Duration
	NoEvents      bool // the simulator offers $status but not $events
	// Criteria: the simulator offers classic R4 criteria Subscriptions
	// instead of topics (as its oracle personality does).
	Criteria bool
	// NoEncounterFilter: the simulator allows patient filters only.
	NoEncounterFilter bool
	Logger            *slog.Logger
}

// Rig is a simulated EHR with topic-based Subscriptions, a store holding
// its initial sync, and a notification hub on its own HTTP server.
type Rig struct {
	Sim    *ehrsim.Server
	SimURL string // FHIR base
	Store  store.Backend
	Hub    *subscriptions.Hub
	HubURL string // origin of the hub's server
	Client *fhir.Client
	Key    []byte // the subscription key: the same for every Manager of the rig (restarts)

	opts    RigOptions
	closers []func()
}

// NewRig builds and syncs a rig. Close it.
func NewRig(ctx context.Context, o RigOptions) (*Rig, error) {
	if o.Patients <= 0 {
		o.Patients = 100
	}
	if o.HeartbeatUnit <= 0 {
		o.HeartbeatUnit = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Rig{opts: o, Key: make([]byte, 32)}
	rand.Read(r.Key)
	if o.StoreURL == "" {
		dir, err := os.MkdirTemp("", "ehrgate-feedeval-")
		if err != nil {
			return nil, fmt.Errorf("feedeval: %w", err)
		}
		r.closers = append(r.closers, func() { os.RemoveAll(dir) })
		o.StoreURL = "sqlite:" + filepath.Join(dir, "data")
	}
	st, err := store.Open(ctx, o.StoreURL, store.OpenOptions{})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("feedeval: opening the store: %w", err)
	}
	r.Store = st
	r.closers = append(r.closers, func() { st.Close() })

	r.Sim = ehrsim.New(ehrsim.Options{Subscriptions: ehrsim.SubscriptionOptions{Enabled: true,
		HeartbeatUnit: o.HeartbeatUnit, NoEvents: o.NoEvents, Criteria: o.Criteria,
		NoEncounterFilter: o.NoEncounterFilter}})
	for i := 1; i <= o.Patients; i++ {
		p := fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","identifier":[{"system":"urn:oid:1.2.3.4","value":"MRN%d"}],"name":[{"family":"Feed","given":["Patient%d"]}],"gender":"unknown","birthDate":"1970-01-%02d"}`,
			i, i, i, 1+i%28)
		if err := r.Sim.Load(json.RawMessage(p)); err != nil {
			r.Close()
			return nil, fmt.Errorf("feedeval: loading patients: %w", err)
		}
	}
	simSrv := httptest.NewServer(r.Sim.Handler())
	r.closers = append(r.closers, func() { r.Sim.CloseSubscriptions(); simSrv.Close() })
	r.SimURL = simSrv.URL + "/fhir"
	r.Hub = subscriptions.NewHub()
	hubSrv := httptest.NewServer(r.Hub)
	r.closers = append(r.closers, hubSrv.Close)
	r.HubURL = hubSrv.URL
	if r.Client, err = fhir.NewClient(r.SimURL, fhir.Options{Connection: Connection, Logger: o.Logger}); err != nil {
		r.Close()
		return nil, err
	}
	syncer, err := refresh.New(r.Client, st, refresh.Options{Connection: Connection, Logger: o.Logger})
	if err == nil {
		_, err = syncer.Run(ctx)
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("feedeval: initial sync: %w", err)
	}
	return r, nil
}

// Close stops the servers and removes a temporary store.
func (r *Rig) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// ManagerOptions are the subscription options the rig uses: its hub, key
// and endpoint, heartbeats of one simulator second, a wait of four.
func (r *Rig) ManagerOptions() subscriptions.Options {
	return subscriptions.Options{Connection: Connection, Hub: r.Hub, Key: r.Key,
		Endpoint:  func(path string) string { return r.HubURL + path },
		Heartbeat: time.Second, HeartbeatWait: 4 * r.opts.HeartbeatUnit, GapWait: 3 * r.opts.HeartbeatUnit,
		Logger: r.opts.Logger}
}

// StartManager starts a Manager with o (from ManagerOptions) and runs it
// until stop is called, which waits for it to end. st, when not nil,
// replaces the rig's store (a wrapper that counts writes).
func (r *Rig) StartManager(ctx context.Context, o subscriptions.Options, st subscriptions.Store) (m *subscriptions.Manager, stop func(), err error) {
	if st == nil {
		st = r.Store
	}
	m, err = subscriptions.New(r.Client, st, o)
	if err != nil {
		return nil, nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	return m, func() { cancel(); wg.Wait() }, nil
}

// Missed counts the simulator's resources whose current version is not
// the store's: absent, or at another version.
func (r *Rig) Missed(ctx context.Context) (int, error) {
	missed := 0
	for ref, version := range r.Sim.ResourceVersions() {
		typ, id, _ := strings.Cut(ref, "/")
		rec, err := r.Store.Get(ctx, Connection, typ, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			missed++
		case err != nil:
			return 0, fmt.Errorf("feedeval: reading %s: %w", typ, err)
		case rec.VersionID != version:
			missed++
		}
	}
	return missed, nil
}

// WaitConverged waits until Missed is 0 (checking every 100 ms) or ctx
// ends, and returns the last count.
func (r *Rig) WaitConverged(ctx context.Context) (int, error) {
	for {
		n, err := r.Missed(ctx)
		if err != nil || n == 0 {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// versionCounter wraps a store and counts versions written twice or
// written after a newer one: duplicates applied.
type versionCounter struct {
	subscriptions.Store
	mu      sync.Mutex
	written map[string]int64 // "Type/id" → highest version written
	dups    int
}

func newVersionCounter(st subscriptions.Store) *versionCounter {
	return &versionCounter{Store: st, written: map[string]int64{}}
}

// PutResources implements store.Writer.
func (v *versionCounter) PutResources(ctx context.Context, recs []store.Record) ([]store.Change, error) {
	changes, err := v.Store.PutResources(ctx, recs)
	if err != nil {
		return changes, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, c := range changes {
		if c == store.Unchanged {
			continue
		}
		k := recs[i].Type + "/" + recs[i].ID
		n, _ := strconv.ParseInt(recs[i].VersionID, 10, 64)
		if prev, ok := v.written[k]; ok && n <= prev {
			v.dups++
			continue
		}
		v.written[k] = n
	}
	return changes, nil
}

func (v *versionCounter) duplicates() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dups
}
