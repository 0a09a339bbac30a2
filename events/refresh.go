package events

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"ehrgate/fhir"
)

// Refresher re-reads one patient's chart from a FHIR connection. The
// integrator implements it with refresh.Syncer: resolve identifier to the
// connection's patient id with a Patient?identifier=<system>|<value>
// search, then Syncer.Patient(ctx, id).
type Refresher interface {
	RefreshPatient(ctx context.Context, connection string, identifier fhir.Identifier) error
}

// RefreshOptions configure a RefreshQueue.
type RefreshOptions struct {
	// Connections are the FHIR connections to refresh for each event
	// (the HL7 feed says "something changed for this patient"; the FHIR
	// side is where the chart comes from).
	Connections []string
	// Kinds limits which events trigger a refresh (default: all).
	Kinds []Kind
	// QueueSize bounds patients waiting (default 256); beyond it events
	// are dropped and counted, never blocking ingestion.
	QueueSize int
	// Workers refresh concurrently (default 2).
	Workers int
	Logger  *slog.Logger
}

// RefreshStats counts what a RefreshQueue did.
type RefreshStats struct {
	Queued, Coalesced, Dropped, Done, Failed int64
}

// RefreshQueue is a Subscriber that refreshes patients asynchronously.
// Bursts are de-duplicated: while a (connection, identifier) is waiting,
// further events for it are coalesced into the waiting refresh; an event
// arriving while it is being refreshed schedules exactly one more run.
type RefreshQueue struct {
	r     Refresher
	o     RefreshOptions
	kinds map[Kind]bool
	log   *slog.Logger
	work  chan refreshKey

	mu      sync.Mutex
	pending map[refreshKey]bool // queued (false) or running (true)
	again   map[refreshKey]bool

	queued, coalesced, dropped, done, failed atomic.Int64
}

type refreshKey struct {
	conn string
	id   fhir.Identifier
}

// NewRefreshQueue returns a queue; call Run to process it and subscribe it
// to a Bus.
func NewRefreshQueue(r Refresher, o RefreshOptions) *RefreshQueue {
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	q := &RefreshQueue{r: r, o: o, log: o.Logger, work: make(chan refreshKey, o.QueueSize),
		pending: map[refreshKey]bool{}, again: map[refreshKey]bool{}}
	if len(o.Kinds) > 0 {
		q.kinds = map[Kind]bool{}
		for _, k := range o.Kinds {
			q.kinds[k] = true
		}
	}
	return q
}

// Notify implements Subscriber.
func (q *RefreshQueue) Notify(e Event) {
	if q.kinds != nil && !q.kinds[e.Kind] {
		return
	}
	ids := []fhir.Identifier{e.Patient}
	if e.Replaced != nil {
		ids = append(ids, *e.Replaced)
	}
	for _, conn := range q.o.Connections {
		for _, id := range ids {
			if id.Value != "" {
				q.enqueue(refreshKey{conn, fhir.Identifier{System: id.System, Value: id.Value}})
			}
		}
	}
}

func (q *RefreshQueue) enqueue(k refreshKey) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if running, ok := q.pending[k]; ok {
		if running {
			q.again[k] = true
		}
		q.coalesced.Add(1)
		return
	}
	select {
	case q.work <- k:
		q.pending[k] = false
		q.queued.Add(1)
	default:
		q.dropped.Add(1)
		q.log.Warn("refresh queue full; event-driven refresh dropped", "connection", k.conn)
	}
}

// Run processes the queue until ctx is done.
func (q *RefreshQueue) Run(ctx context.Context) error {
	return runWorkers(ctx, q.o.Workers, q.work, q.run)
}

// runWorkers hands the items of ch to n goroutines running fn until ctx is
// done, then returns ctx's error.
func runWorkers[T any](ctx context.Context, n int, ch <-chan T, fn func(context.Context, T)) error {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case it := <-ch:
					fn(ctx, it)
				}
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (q *RefreshQueue) run(ctx context.Context, k refreshKey) {
	for {
		q.mu.Lock()
		q.pending[k] = true
		q.mu.Unlock()
		err := q.r.RefreshPatient(ctx, k.conn, k.id)
		if err != nil {
			q.failed.Add(1)
			// The identifier value is a patient identifier: log the system only.
			q.log.Warn("event-driven refresh failed", "connection", k.conn, "system", k.id.System, "error", err)
		} else {
			q.done.Add(1)
		}
		q.mu.Lock()
		if q.again[k] && ctx.Err() == nil {
			delete(q.again, k)
			q.mu.Unlock()
			continue
		}
		delete(q.again, k)
		delete(q.pending, k)
		q.mu.Unlock()
		return
	}
}

// Stats returns the counters.
func (q *RefreshQueue) Stats() RefreshStats {
	return RefreshStats{Queued: q.queued.Load(), Coalesced: q.coalesced.Load(), Dropped: q.dropped.Load(),
		Done: q.done.Load(), Failed: q.failed.Load()}
}

var _ Subscriber = (*RefreshQueue)(nil)

// RefresherFunc adapts a function to Refresher.
type RefresherFunc func(ctx context.Context, connection string, identifier fhir.Identifier) error

// RefreshPatient calls f.
func (f RefresherFunc) RefreshPatient(ctx context.Context, connection string, identifier fhir.Identifier) error {
	return f(ctx, connection, identifier)
}
