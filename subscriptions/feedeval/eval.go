package feedeval

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ehrgate/ehrsim"
	"ehrgate/events"
	"ehrgate/subscriptions"
)

// Options configure Run.
type Options struct {
	Changes   int                  // changes the simulated hospital makes; required
	Faults    []ehrsim.NotifyFault // notification faults
	FaultRate float64              // share of notifications faulted (default 0.2 when Faults are given)
	Rate      float64              // changes per second (0: as fast as they are made)
	Patients  int                  // default 100
	Payload   string               // default full-resource
	StoreURL  string               // default: a temporary sqlite store
	Seed      uint64
	// SlowConsumer is how long the webhook consumer takes per delivery
	// (default 2 ms); it also fails every 50th delivery once.
	SlowConsumer time.Duration
	// Timeout bounds the wait for the store and the consumer to catch up
	// after the feed (default 2 minutes).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Result is the JSON `ehrgate events eval --json` prints.
type Result struct {
	Changes           int     `json:"changes"`
	Applied           int64   `json:"applied"`            // resource versions the subscription stored
	Missed            int     `json:"missed"`             // simulator resources not at their version in the store at the end
	DuplicatesApplied int     `json:"duplicates_applied"` // versions written twice, or after a newer one
	LagMsP99          float64 `json:"lag_ms_p99"`         // change made → stored, 99th percentile
	Webhook           Webhook `json:"webhook"`
}

// Webhook is the durable-events side of Result.
type Webhook struct {
	Sent     int64 `json:"sent"`     // events written to the event log for the consumer
	Received int64 `json:"received"` // distinct events the consumer got
	Missed   int64 `json:"missed"`   // sent and never received
}

// Run makes the simulator's hospital change o.Changes resources while its
// notifications are faulted, with ehrgate subscribed (stored changes are
// published as durable events to a slow webhook consumer), waits for both
// to settle and compares the store with the simulator resource by
// resource.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Changes <= 0 {
		return Result{}, errors.New("feedeval: --changes must be positive")
	}
	if o.FaultRate == 0 && len(o.Faults) > 0 {
		o.FaultRate = 0.2
	}
	if o.SlowConsumer <= 0 {
		o.SlowConsumer = 2 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	rig, err := NewRig(ctx, RigOptions{Patients: o.Patients, StoreURL: o.StoreURL, Logger: o.Logger})
	if err != nil {
		return Result{}, err
	}
	defer rig.Close()

	// The durable bus and its slow consumer.
	bus := events.NewBus(events.BusOptions{Log: rig.Store})
	consumer := newConsumer(o.SlowConsumer)
	csrv := httptest.NewServer(consumer)
	defer csrv.Close()
	hooks := events.NewWebhooks(events.WebhookOptions{Hooks: []events.Webhook{{URL: csrv.URL, Secret: consumer.secret}},
		InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAttempts: 10, Logger: o.Logger})
	if _, err := hooks.DeliverFromLog(ctx, rig.Store, rig.Store); err != nil { // the hook's position: the log's end
		return Result{}, fmt.Errorf("feedeval: webhook: %w", err)
	}
	dctx, stopDelivery := context.WithCancel(ctx)
	var dwg sync.WaitGroup
	dwg.Go(func() {
		for dctx.Err() == nil {
			if _, err := hooks.DeliverFromLog(dctx, rig.Store, rig.Store); err != nil && dctx.Err() == nil {
				rig.opts.Logger.Warn("feedeval: webhook delivery", "error", err)
			}
			select {
			case <-dctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	defer func() { stopDelivery(); dwg.Wait() }()

	var lagMu sync.Mutex
	var lags []float64
	var published atomic.Int64
	mo := rig.ManagerOptions()
	mo.Payload = o.Payload
	mo.Applied = func(a subscriptions.Applied) {
		if !a.EventTime.IsZero() {
			lagMu.Lock()
			lags = append(lags, float64(a.AppliedAt.Sub(a.EventTime))/float64(time.Millisecond))
			lagMu.Unlock()
		}
		e := bus.Publish(events.Event{Kind: events.Changed, Connection: Connection, PatientRef: "Patient/" + a.PatientID,
			Resources: []string{a.Ref + "/_history/" + a.Version}})
		if e.ID != 0 {
			published.Add(1)
		}
	}
	counter := newVersionCounter(rig.Store)
	m, stop, err := rig.StartManager(ctx, mo, counter)
	if err != nil {
		return Result{}, err
	}
	defer stop()

	rig.Sim.SetNotificationFaults(ehrsim.NotificationFaults{Rate: o.FaultRate, Kinds: o.Faults, Seed: o.Seed})
	st, err := rig.Sim.RunChanges(ctx, ehrsim.ChangeOptions{Changes: o.Changes, Rate: o.Rate, Seed: o.Seed, Base: rig.SimURL})
	if err != nil {
		return Result{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	missed, err := rig.WaitConverged(wctx)
	if err != nil {
		return Result{}, err
	}
	// The last stored changes reach the log before the consumer is waited for.
	for wctx.Err() == nil && consumer.received() < published.Load() {
		time.Sleep(50 * time.Millisecond)
	}
	res := Result{Changes: st.Changes, Applied: m.Stats().Applied, Missed: missed, DuplicatesApplied: counter.duplicates()}
	lagMu.Lock()
	res.LagMsP99 = percentile(lags, 0.99)
	lagMu.Unlock()
	res.Webhook = Webhook{Sent: published.Load(), Received: consumer.received()}
	// Only the eval's events are in the log, so every id received is one sent.
	res.Webhook.Missed = res.Webhook.Sent - res.Webhook.Received
	return res, nil
}

// percentile returns the p-quantile of xs (nearest rank), rounded to 0.1.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return math.Round(s[max(i, 0)]*10) / 10
}

// consumer is the deliberately slow webhook receiver: it checks each
// signature, takes its time, and fails every 50th delivery the first time.
type consumer struct {
	secret []byte
	delay  time.Duration
	mu     sync.Mutex
	ids    map[uint64]bool
	calls  int
}

func newConsumer(delay time.Duration) *consumer {
	c := &consumer{secret: make([]byte, 32), delay: delay, ids: map[uint64]bool{}}
	rand.Read(c.secret)
	return c
}

func (c *consumer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || !events.Verify(c.secret, r.Header.Get(events.HeaderTimestamp), body, r.Header.Get(events.HeaderSignature)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	time.Sleep(c.delay)
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls%50 == 0 && !c.ids[e.ID] {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	c.ids[e.ID] = true
	w.WriteHeader(http.StatusNoContent)
}

func (c *consumer) received() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.ids))
}
