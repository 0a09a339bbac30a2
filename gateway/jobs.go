package gateway

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ehrgate/config"
	"ehrgate/fhir"
	"ehrgate/fhir/bulk"
	"ehrgate/hl7/hl7store"
	"ehrgate/jobs"
)

// The job kinds the gateway runs on its queue. Their arguments name what
// to work on (connection, identifier), never patient data beyond an
// identifier, and never tokens. Each handler is idempotent: a job run
// twice (a retry, or a rescue after its process died) leaves the store as
// one run would.
type (
	// SyncJob is a full sync of a connection. Cycle is when it was
	// scheduled: an attempt after the first (its process died, or it
	// failed) skips the patient types fetched since, so a run is finished,
	// not repeated.
	SyncJob struct {
		Connection string    `json:"connection" river:"unique"`
		Cycle      time.Time `json:"cycle,omitzero"`
	}
	// BulkExportJob is an incremental system-level Bulk Data export of a
	// connection into the store; a killed run resumes the server's export
	// job where it stood (ingest keeps its status URL and checkpoints).
	BulkExportJob struct {
		Connection string `json:"connection" river:"unique"`
	}
	// RefreshJob refreshes, on a FHIR connection, the patient an event
	// named by identifier (event-driven refresh).
	RefreshJob struct {
		Connection string `json:"connection" river:"unique"`
		System     string `json:"system" river:"unique"`
		Value      string `json:"value" river:"unique"`
	}
	// HL7ConvertJob converts the messages an HL7 v2 listener logged
	// (deferred mode) into FHIR resources in the store.
	HL7ConvertJob struct {
		Connection string `json:"connection" river:"unique"`
	}
)

// Kind implements jobs.Args.
func (SyncJob) Kind() string { return "sync" }

// Kind implements jobs.Args.
func (BulkExportJob) Kind() string { return "bulk_export" }

// Kind implements jobs.Args.
func (RefreshJob) Kind() string { return "refresh_patient" }

// Kind implements jobs.Args.
func (HL7ConvertJob) Kind() string { return "hl7_convert" }

// Queues: long syncs and exports do not hold up conversions and refreshes.
const (
	queueLong  = "long"
	queueShort = "short"
)

// hl7SafetyInterval is how often a conversion job is enqueued even when no
// listener asked (messages a dead process logged but did not convert).
const hl7SafetyInterval = 5 * time.Second

// jobState is the gateway's queue, built once.
type jobState struct {
	once  sync.Once
	queue *jobs.Queue
	close func() error // releases what the queue's backend opened
	err   error

	mu       sync.Mutex
	hl7      map[string]*hl7store.Handler // conversion handlers by connection
	identity *kicker                      // asks for match jobs (kickIdentity); nil until Run
}

// pooled is a store on PostgreSQL (store/postgres).
type pooled interface{ Pool() *pgxpool.Pool }

// jobDBOpener is a store on SQLite (store/sqlite).
type jobDBOpener interface {
	OpenJobDB(ctx context.Context) (*sql.DB, error)
}

// Jobs returns the gateway's durable job queue on its store, building it
// (and migrating its tables) on first use, with every gateway job kind
// registered. It is not started: Run starts it.
func (g *Gateway) Jobs(ctx context.Context) (*jobs.Queue, error) {
	g.jobs.once.Do(func() { g.jobs.queue, g.jobs.close, g.jobs.err = g.openJobs(ctx) })
	return g.jobs.queue, g.jobs.err
}

func (g *Gateway) openJobs(ctx context.Context) (*jobs.Queue, func() error, error) {
	jc := g.cfg.Jobs
	timeout := g.jobTimeout()
	host, _ := os.Hostname()
	opts := jobs.Options{
		ID:          fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()%1e6),
		Logger:      g.log,
		Workers:     jc.Workers,
		MaxAttempts: jc.MaxAttempts,
		JobTimeout:  timeout,
		RescueAfter: time.Duration(jc.RescueAfter),
	}
	if opts.Workers == 0 {
		opts.Workers = 4
	}
	q, closeFn, err := OpenQueue(ctx, g.store, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := q.Migrate(ctx); err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("migrating the job queue: %w", err)
	}
	long := jobs.KindOptions{Queue: queueLong, Timeout: timeout}
	short := jobs.KindOptions{Queue: queueShort, Timeout: 5 * time.Minute}
	err = errors.Join(
		jobs.Register(q, g.runSyncJob, long),
		jobs.Register(q, g.runBulkExportJob, long),
		jobs.Register(q, g.runRefreshJob, short),
		jobs.Register(q, g.runHL7ConvertJob, short),
		jobs.Register(q, g.runAuditForwardJob, short),
		jobs.Register(q, g.runAuthzPurgeJob, short),
		jobs.Register(q, g.runCDSPruneJob, short),
		jobs.Register(q, g.runWriteJob, short),
		jobs.Register(q, g.runWriteSweepJob, short),
		jobs.Register(q, g.runPipelineJob, long),
		jobs.Register(q, g.runIdentityJob, g.identityKind()),
	)
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return q, closeFn, nil
}

// jobTimeout bounds one attempt of a long job: jobs.timeout, else an
// hour.
func (g *Gateway) jobTimeout() time.Duration {
	if t := time.Duration(g.cfg.Jobs.Timeout); t > 0 {
		return t
	}
	return time.Hour
}

// OpenQueue builds a job queue (not started, not migrated) on a store:
// River on the PostgreSQL store's pool, or on a second handle on the SQLite
// store's file. The returned func releases that handle after the queue
// has stopped.
func OpenQueue(ctx context.Context, st any, opts jobs.Options) (*jobs.Queue, func() error, error) {
	switch s := st.(type) {
	case pooled:
		q, err := jobs.NewPostgres(s.Pool(), opts)
		return q, func() error { return nil }, err
	case jobDBOpener:
		db, err := s.OpenJobDB(ctx)
		if err != nil {
			return nil, nil, err
		}
		q, err := jobs.NewSQLite(db, opts)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		return q, db.Close, nil
	}
	return nil, nil, fmt.Errorf("the store (%T) has no job queue", st)
}

func (g *Gateway) runSyncJob(ctx context.Context, j SyncJob) error {
	c, ok := g.Connection(j.Connection)
	if !ok {
		return jobs.Permanent(fmt.Errorf("no connection %q in this process's configuration", j.Connection))
	}
	_, err := g.sync(ctx, c, j.Cycle)
	return err
}

func (g *Gateway) runBulkExportJob(ctx context.Context, j BulkExportJob) error {
	c, ok := g.Connection(j.Connection)
	if !ok {
		return jobs.Permanent(fmt.Errorf("no connection %q in this process's configuration", j.Connection))
	}
	sum, err := g.BulkExport(ctx, c, bulk.Request{}, BulkExportOptions{})
	if err == nil && !sum.Complete {
		// Recorded in the connection state; the next scheduled export asks
		// again for what is missing. Not a job failure: a retry now would
		// meet the same server state.
		g.log.Warn("scheduled bulk export incomplete", "connection", c.Name, "types", len(sum.Incomplete))
	}
	return err
}

func (g *Gateway) runRefreshJob(ctx context.Context, j RefreshJob) error {
	err := g.refreshByEvent(ctx, j.Connection, fhir.Identifier{System: j.System, Value: j.Value})
	if err == nil {
		g.kickIdentity()
	}
	return err
}

func (g *Gateway) runHL7ConvertJob(ctx context.Context, j HL7ConvertJob) error {
	n, err := g.hl7Converter(j.Connection).ProcessPending(ctx)
	if n > 0 {
		g.kickIdentity() // the messages' patients were stored
	}
	return err
}

// hl7Converter returns the conversion handler of an HL7 connection, with
// the feed options its listener was started with (else the
// configuration's) and this process's event bus.
func (g *Gateway) hl7Converter(conn string) *hl7store.Handler {
	g.jobs.mu.Lock()
	defer g.jobs.mu.Unlock()
	if h := g.jobs.hl7[conn]; h != nil {
		return h
	}
	o := MLLPOptionsFromConfig(g.cfg.HL7)
	g.mu.Lock()
	if lo, ok := g.hl7opts[conn]; ok {
		o = lo
	}
	bus := g.bus
	g.mu.Unlock()
	h := hl7store.New(g.store, hl7store.Options{Connection: conn, Bus: bus, Logger: g.log, Deferred: true,
		Convert: o.Feed, KeepUnsupported: o.KeepUnsupported})
	if g.jobs.hl7 == nil {
		g.jobs.hl7 = map[string]*hl7store.Handler{}
	}
	g.jobs.hl7[conn] = h
	return h
}

// schedule adds the periodic jobs of the configuration: each connection's
// sync every sync_every (and at start with syncOnStart), its bulk export
// every bulk_every. Only the elected leader among the processes on the
// store enqueues them, and uniqueness keeps a slow run from being stacked.
func (g *Gateway) schedule(ctx context.Context, q *jobs.Queue, syncOnStart bool) error {
	if err := g.scheduleSIEM(q); err != nil {
		return err
	}
	if err := g.scheduleAuthz(q); err != nil {
		return err
	}
	if err := g.scheduleCDS(q); err != nil {
		return err
	}
	if err := g.scheduleWrites(q); err != nil {
		return err
	}
	if err := g.schedulePipeline(q); err != nil {
		return err
	}
	if err := g.scheduleIdentity(q); err != nil {
		return err
	}
	every := time.Duration(g.cfg.SyncEvery)
	for _, c := range g.Connections() {
		if c.Auth != nil && c.Auth.Type == config.AuthLaunch {
			continue // synced per patient when users launch
		}
		name := c.Name
		switch {
		case every > 0:
			if err := q.AddPeriodic(jobs.Periodic{ID: "sync:" + name, Every: every, RunOnStart: syncOnStart,
				Args: func() jobs.Args {
					if g.doneWithin(name, every/2, func(st ConnectionState) time.Time { return st.LastSync }) {
						return nil
					}
					return SyncJob{Connection: name, Cycle: time.Now().UTC()}
				}}); err != nil {
				return err
			}
		case syncOnStart:
			if _, err := q.Enqueue(ctx, SyncJob{Connection: name, Cycle: time.Now().UTC()}); err != nil {
				return err
			}
		}
		if be := time.Duration(c.BulkEvery); be > 0 {
			if err := q.AddPeriodic(jobs.Periodic{ID: "bulk:" + name, Every: be, RunOnStart: true,
				Args: func() jobs.Args {
					if g.doneWithin(name, be/2, lastBulkExport) {
						return nil
					}
					return BulkExportJob{Connection: name}
				}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// doneWithin reports whether the connection's state says the work that
// last picks out finished less than d ago: a leader elected after another
// died (RunOnStart) must not start a cycle the old leader's jobs just
// finished.
func (g *Gateway) doneWithin(conn string, d time.Duration, last func(ConnectionState) time.Time) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, ok, err := LoadConnectionState(ctx, g.store, conn)
	if err != nil || !ok {
		return false
	}
	at := last(st)
	return !at.IsZero() && time.Since(at) < d
}

// lastBulkExport is when the connection's last system-level bulk export
// ended.
func lastBulkExport(st ConnectionState) time.Time {
	if b := st.BulkExports["system"]; b != nil {
		return b.At
	}
	return time.Time{}
}

// kicker enqueues a job when kicked (and every interval, when one is
// set), making sure a job is waiting, not only running: a running job may
// have looked at the data for the last time already. A burst of kicks
// while a job waits is one job.
type kicker struct {
	ch chan struct{}
}

// kickerOptions describe what a kicker enqueues.
type kickerOptions struct {
	what  string    // for the log: "HL7 conversion"
	args  jobs.Args // the job, unique while it waits or runs
	every time.Duration
	poll  time.Duration // how often to ask again while a job runs
}

func (g *Gateway) startKicker(ctx context.Context, q *jobs.Queue, o kickerOptions) *kicker {
	k := &kicker{ch: make(chan struct{}, 1)}
	go func() {
		var tick <-chan time.Time
		if o.every > 0 {
			t := time.NewTicker(o.every)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-k.ch:
			case <-tick:
			}
			for {
				res, err := q.Enqueue(ctx, o.args)
				if err != nil {
					if ctx.Err() == nil {
						g.log.Warn("scheduling "+o.what, "error", err)
					}
					break
				}
				if !res.Duplicate || res.State != jobs.Running {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(o.poll):
				}
			}
			select { // coalesce a burst of kicks
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return k
}

// startHL7Kicker enqueues a conversion job for conn when kicked (a
// listener kicks after every message it logs), and every
// hl7SafetyInterval.
func (g *Gateway) startHL7Kicker(ctx context.Context, q *jobs.Queue, conn string) *kicker {
	return g.startKicker(ctx, q, kickerOptions{what: "HL7 conversion of " + conn, args: HL7ConvertJob{Connection: conn},
		every: hl7SafetyInterval, poll: 50 * time.Millisecond})
}

// kick asks for a job; it never blocks.
func (k *kicker) kick() {
	select {
	case k.ch <- struct{}{}:
	default:
	}
}
