// Package jobs is ehrgate's durable job queue: syncs, refreshes, bulk
// exports, HL7 conversion and (later) write-back run as jobs kept in the
// store, so that work survives a restart and several gateway replicas on
// one PostgreSQL database share it. It is a thin layer over River
// (github.com/riverqueue/river), which keeps its own tables (river_job,
// river_leader, river_queue, ...) beside ehrgate's in the same database:
// PostgreSQL through pgx (NewPostgres), SQLite through database/sql with a
// second handle on the store's file (NewSQLite).
//
// # Lifecycle
//
// Build a Queue with NewPostgres or NewSQLite, apply River's schema with
// Migrate (idempotent; safe to run from several replicas at once), Register
// a handler for every job kind the process knows, add periodic jobs with
// AddPeriodic, then Start. Enqueue, List, Counts, Get and Cancel work
// before Start too, so a command that only enqueues or only reports (for
// example `ehrgate status`) never starts workers. Stop waits for running
// jobs, then cancels those still running when its context ends.
//
// A job moves through River's states: available (waiting for a worker),
// running (one worker holds it), then completed; or, when its handler
// fails, retryable (waiting for its backoff) and available again, until
// its attempts are used up and it is discarded. A handler may give up at
// once with Permanent (the job is cancelled). Scheduled and pending jobs
// wait for their time or for an explicit release.
//
// # Guarantees
//
// Delivery is at least once. A job runs on one worker at a time, but it
// can run more than once: when a handler fails it is retried (with
// exponential backoff by default, at most MaxAttempts times); when the
// process working it dies (kill -9, lost machine), the job stays running
// until its lease ends (Options.RescueAfter after the attempt began, or
// the kind's Timeout when that is longer; Job.LeaseEnds), then River's
// rescuer, run every 30 s by the elected leader among the live processes
// (a dead leader is replaced within about 15 s), makes it retryable and
// another process runs it again; a job rescued after its last attempt is
// discarded instead. A lease is not renewed while the job runs: the
// attempt's context is cancelled at its timeout, before the lease ends,
// so a kind's Timeout must cover its longest run, and a handler that
// ignores the cancellation may see its job run again beside it. A handler can also have done its work when the
// process dies before the completion is recorded. Handlers must therefore
// be idempotent: a sync that is run twice must leave the store as one run
// would (ehrgate's stores are keyed by resource, so re-fetching is
// harmless).
//
// Uniqueness: Enqueue inserts a job only if no job of the same kind with
// the same unique arguments is available, pending, scheduled, running or
// retryable; otherwise it returns the existing job with Duplicate set. The
// unique arguments are the fields tagged `river:"unique"` (for a sync, the
// connection and the scope), or all the arguments when no field is tagged.
// Completed, discarded and cancelled jobs do not count, so the next
// Enqueue after a job finishes inserts a new one. A duplicate of a running
// job is dropped, not queued behind it: a caller that must run again after
// the current run (new data arrived meanwhile) enqueues again when the
// running job has finished.
//
// Periodic jobs (AddPeriodic) are enqueued only by the leader, so "sync
// every interval" runs once per interval across all replicas, and their
// inserts go through the same uniqueness, so a slow run is not stacked up.
//
// Arguments and attempt errors are stored in the clear and shown by
// `ehrgate status`: put identifiers (connection, scope, batch id) in them,
// never patient data, tokens or message bodies.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Args are a job's arguments. Kind names the job's kind (for example
// "sync"); it must be a constant and work on the zero value, so implement
// it with a value receiver on a struct type. The arguments are stored as
// JSON (encoding/json); tag the fields that identify a job for uniqueness
// with `river:"unique"`.
//
// Args is River's JobArgs under another name, so River's optional
// interfaces on arguments apply too.
type Args interface {
	Kind() string
}

// Options configure a Queue. The zero value is usable.
type Options struct {
	// ID names this process among the queue's clients; it is recorded in
	// each attempt (Job.AttemptedBy) and used for leader election, so it
	// must differ between processes sharing a store. Empty: a random ID.
	ID string
	// Logger receives River's log. Nil: slog.Default().
	Logger *slog.Logger
	// Workers is how many jobs of one queue this process runs at once.
	// Zero: 10.
	Workers int
	// Queues sets the number of workers of named queues (see KindOptions.Queue);
	// a queue a kind uses but this map does not name gets Workers.
	Queues map[string]int
	// MaxAttempts is how often a job runs before it is discarded, unless
	// its kind says otherwise. Zero: 10.
	MaxAttempts int
	// Backoff gives the wait before the next attempt after attempt number
	// attempt (1 for the first) failed. Nil: River's default, attempt^4
	// seconds with some jitter (1 s, 16 s, 81 s, 4 min, 10 min, ...; with
	// 10 attempts the last begins about 4 h after the first).
	Backoff func(attempt int) time.Duration
	// JobTimeout bounds one attempt unless its kind says otherwise: the
	// handler's context is cancelled when it ends. Zero: 15 minutes.
	// There is no "no timeout": River never rescues a job without one.
	JobTimeout time.Duration
	// RescueAfter is the lease of a running job: how long after an attempt
	// began the job may be taken from a process that stopped working it
	// (died) and run again. It must be longer than JobTimeout. Zero:
	// JobTimeout plus 5 minutes (20 minutes by default).
	RescueAfter time.Duration
	// PollInterval is how often a worker looks for new jobs when it was not
	// told of any (PostgreSQL notifies at once; SQLite through a table
	// polled every 50 ms). Zero: 1 s.
	PollInterval time.Duration
}

// Defaults applied to zero Options fields.
const (
	DefaultWorkers     = 10
	DefaultMaxAttempts = 10
	DefaultJobTimeout  = 15 * time.Minute
	DefaultQueue       = river.QueueDefault
)

func (o Options) withDefaults() (Options, error) {
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.JobTimeout == 0 {
		o.JobTimeout = DefaultJobTimeout
	}
	if o.RescueAfter == 0 {
		o.RescueAfter = o.JobTimeout + 5*time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var errs []error
	if o.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers %d: must be positive", o.Workers))
	}
	for name, n := range o.Queues {
		if n < 1 {
			errs = append(errs, fmt.Errorf("queue %q: %d workers: must be positive", name, n))
		}
	}
	if o.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d: must be positive", o.MaxAttempts))
	}
	if o.JobTimeout < 0 {
		errs = append(errs, fmt.Errorf("job timeout %s: must be positive", o.JobTimeout))
	}
	if o.RescueAfter <= o.JobTimeout {
		errs = append(errs, fmt.Errorf("rescue after %s: must be longer than the job timeout %s", o.RescueAfter, o.JobTimeout))
	}
	if o.PollInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("poll interval %s: must be at least 1ms", o.PollInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("job queue options: %w", err)
	}
	return o, nil
}

// KindOptions configure one job kind at Register. The zero value takes
// the Queue's options.
type KindOptions struct {
	// Queue names the queue the kind's jobs wait in, so that kinds do not
	// take each other's workers (long syncs beside fast HL7 conversions).
	// Empty: DefaultQueue.
	Queue string
	// Timeout bounds one attempt (see Options.JobTimeout); zero takes
	// Options.JobTimeout. A kind whose Timeout is longer than
	// Options.RescueAfter keeps its jobs' lease for Timeout.
	Timeout time.Duration
	// MaxAttempts overrides Options.MaxAttempts.
	MaxAttempts int
}

// Errors callers branch on.
var (
	// ErrUnknownKind: the arguments' kind was not registered on this Queue.
	ErrUnknownKind = errors.New("job kind not registered")
	// ErrStarted: Register after Start.
	ErrStarted = errors.New("job queue already started")
	// ErrNotFound: no job has this ID (any more: finished jobs are deleted
	// after a retention period).
	ErrNotFound = errors.New("job not found")
	// ErrNoSchema: the store has no job tables; run Migrate.
	ErrNoSchema = errors.New("the store has no job queue tables (run migrate)")
)

// client is what Queue uses of a *river.Client, whatever its transaction
// type.
type client interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	PeriodicJobs() *river.PeriodicJobBundle
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Stopped() <-chan struct{}
}

// backend is what differs between PostgreSQL and SQLite.
type backend struct {
	name      string
	newClient func(cfg *river.Config) (client, error)
	migrate   func(ctx context.Context, logger *slog.Logger) error
	versions  func(ctx context.Context, logger *slog.Logger) (applied, latest int, err error)
	hasTables func(ctx context.Context) (bool, error)
	counts    func(ctx context.Context) (map[State]int, error)
}

// Queue is a durable job queue on a store. It is safe for concurrent use.
type Queue struct {
	b    backend
	opts Options

	// admin inserts, lists and cancels; it runs no workers, so it needs no
	// Start and exists from New on.
	admin client

	mu       sync.Mutex
	workers  *river.Workers
	kinds    map[string]KindOptions
	periodic map[string]*river.PeriodicJob // by ID, until Start
	worker   client                        // built by the first Start
	stopped  <-chan struct{}               // the worker's, while started
}

// testOnly makes River skip the random delays it starts its maintenance
// services with; set by the package's tests.
var testOnly = false

func newQueue(b backend, opts Options) (*Queue, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	q := &Queue{b: b, opts: opts, workers: river.NewWorkers(), kinds: map[string]KindOptions{}, periodic: map[string]*river.PeriodicJob{}}
	q.admin, err = b.newClient(q.config())
	if err != nil {
		return nil, fmt.Errorf("creating %s job client: %w", b.name, err)
	}
	return q, nil
}

// config is the River configuration shared by the admin and the worker
// client; Start adds the workers, queues and periodic jobs.
func (q *Queue) config() *river.Config {
	cfg := &river.Config{
		ID:                   q.opts.ID,
		Logger:               q.opts.Logger,
		MaxAttempts:          q.opts.MaxAttempts,
		JobTimeout:           q.opts.JobTimeout,
		RescueStuckJobsAfter: q.opts.RescueAfter,
		FetchPollInterval:    q.opts.PollInterval,
		FetchCooldown:        min(q.opts.PollInterval, river.FetchCooldownDefault),
		TestOnly:             testOnly,
	}
	if q.opts.Backoff != nil {
		cfg.RetryPolicy = backoffPolicy(q.opts.Backoff)
	}
	return cfg
}

// backoffPolicy adapts Options.Backoff to River's retry policy.
type backoffPolicy func(attempt int) time.Duration

func (p backoffPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p(max(job.Attempt, 1)))
}

// Register makes q run fn for jobs of T's kind. Call it before Start, once
// per kind. Every process that enqueues a kind registers it (Enqueue takes
// the kind's queue and attempts from it), and every process that Starts
// registers every kind, with the same KindOptions: the elected leader
// rescues the jobs of dead processes and discards those of a kind it does
// not know. fn's context is cancelled when the attempt's
// timeout ends or the queue is stopped hard; a nil return completes the
// job, an error schedules a retry (or discards the job after its last
// attempt), Permanent(err) cancels it, a panic counts as an error.
func Register[T Args](q *Queue, fn func(ctx context.Context, args T) error, opts KindOptions) error {
	var zero T
	kind := zero.Kind()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.worker != nil {
		return fmt.Errorf("registering job kind %q: %w", kind, ErrStarted)
	}
	if _, ok := q.kinds[kind]; ok {
		return fmt.Errorf("registering job kind %q: already registered", kind)
	}
	if opts.Timeout < 0 || opts.MaxAttempts < 0 {
		return fmt.Errorf("registering job kind %q: negative timeout or attempts", kind)
	}
	if opts.Queue == "" {
		opts.Queue = DefaultQueue
	}
	if err := river.AddWorkerSafely(q.workers, &worker[T]{fn: fn, timeout: opts.Timeout}); err != nil {
		return fmt.Errorf("registering job kind %q: %w", kind, err)
	}
	q.kinds[kind] = opts
	return nil
}

// worker runs a registered handler as a River worker.
type worker[T Args] struct {
	river.WorkerDefaults[T]
	fn      func(ctx context.Context, args T) error
	timeout time.Duration
}

func (w *worker[T]) Timeout(*river.Job[T]) time.Duration { return w.timeout }

func (w *worker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	ctx = context.WithValue(ctx, currentKey{}, Current{
		ID: job.ID, Kind: job.Kind, Attempt: job.Attempt, MaxAttempts: job.MaxAttempts,
	})
	return w.fn(ctx, job.Args)
}

// Current describes the job a handler is running.
type Current struct {
	ID          int64
	Kind        string
	Attempt     int // 1 for the first attempt
	MaxAttempts int
}

type currentKey struct{}

// CurrentJob returns the job that ctx, a handler's context, belongs to.
func CurrentJob(ctx context.Context) (Current, bool) {
	c, ok := ctx.Value(currentKey{}).(Current)
	return c, ok
}

// Permanent wraps a handler's error to say that running the job again
// cannot help (the connection was deleted, the request is invalid): the
// job is cancelled with err recorded, whatever attempts it has left.
func Permanent(err error) error { return river.JobCancel(err) }

// Enqueued is the outcome of Enqueue.
type Enqueued struct {
	// ID is the new job's, or the existing one's when Duplicate.
	ID int64
	// Duplicate reports that a job of the same kind and unique arguments
	// was already waiting, running or retryable, and nothing was inserted.
	Duplicate bool
	// State is the job's state after Enqueue.
	State State
}

// uniqueStates are the states in which a job blocks another of the same
// kind and unique arguments: every state but the final ones.
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRunning,
	rivertype.JobStateRetryable,
	rivertype.JobStateScheduled,
}

// insertOpts are the options every insert of kind gets.
func (q *Queue) insertOpts(kind string) (*river.InsertOpts, error) {
	q.mu.Lock()
	ko, ok := q.kinds[kind]
	q.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%q: %w", kind, ErrUnknownKind)
	}
	return &river.InsertOpts{
		Queue:       ko.Queue,
		MaxAttempts: cmpOr(ko.MaxAttempts, q.opts.MaxAttempts),
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	}, nil
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// Enqueue inserts a job for args unless a job of the same kind and unique
// arguments is already waiting, running or retryable (see the package
// comment), in which case it reports that job as a Duplicate. The kind
// must be registered.
func (q *Queue) Enqueue(ctx context.Context, args Args) (Enqueued, error) {
	opts, err := q.insertOpts(args.Kind())
	if err != nil {
		return Enqueued{}, fmt.Errorf("enqueueing job: %w", err)
	}
	res, err := q.admin.Insert(ctx, args, opts)
	if err != nil {
		return Enqueued{}, fmt.Errorf("enqueueing %s job: %w", args.Kind(), err)
	}
	return Enqueued{ID: res.Job.ID, Duplicate: res.UniqueSkippedAsDuplicate, State: State(res.Job.State)}, nil
}

// Periodic is a job enqueued at a fixed interval by the elected leader
// among the processes sharing the store.
type Periodic struct {
	// ID names the schedule, unique within the Queue (for example
	// "sync:" + connection): 2 to 127 letters, digits and _-[]<>/.·:+,
	// not starting with a punctuation mark. RemovePeriodic takes it.
	ID string
	// Every is the interval.
	Every time.Duration
	// Args builds the arguments at each interval; its kind must be
	// registered. Returning nil skips this interval (the work was done
	// recently, for example by a leader that has since died).
	Args func() Args
	// RunOnStart also enqueues a job when the leader starts (a new leader
	// does not know when the previous one last enqueued; uniqueness keeps
	// this from doubling a job that is still waiting or running).
	RunOnStart bool
}

// periodicID is what River accepts as a periodic job's ID.
var periodicID = regexp.MustCompile(`\A[\w][\w\-\[\]<>\/.·:+]+\z`)

// AddPeriodic schedules p. Before Start it takes effect at Start; after,
// at once.
func (q *Queue) AddPeriodic(p Periodic) error {
	if p.Every <= 0 || p.Args == nil {
		return fmt.Errorf("adding periodic job %q: Every and Args are required", p.ID)
	}
	if len(p.ID) >= 128 || !periodicID.MatchString(p.ID) {
		return fmt.Errorf("adding periodic job %q: invalid ID", p.ID)
	}
	kind := p.Args().Kind()
	if _, err := q.insertOpts(kind); err != nil {
		return fmt.Errorf("adding periodic job %q: %w", p.ID, err)
	}
	pj := river.NewPeriodicJob(river.PeriodicInterval(p.Every), func() (river.JobArgs, *river.InsertOpts) {
		args := p.Args()
		if args == nil {
			return nil, nil // River skips a nil job
		}
		opts, err := q.insertOpts(args.Kind())
		if err != nil {
			q.opts.Logger.Error("periodic job of an unregistered kind", "periodic", p.ID, "kind", args.Kind())
			return nil, nil // River skips a nil job
		}
		return args, opts
	}, &river.PeriodicJobOpts{ID: p.ID, RunOnStart: p.RunOnStart})
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.worker != nil {
		if _, err := q.worker.PeriodicJobs().AddSafely(pj); err != nil {
			return fmt.Errorf("adding periodic job %q: %w", p.ID, err)
		}
		return nil
	}
	if _, ok := q.periodic[p.ID]; ok {
		return fmt.Errorf("adding periodic job %q: ID already used", p.ID)
	}
	q.periodic[p.ID] = pj
	return nil
}

// RemovePeriodic removes the periodic job named id, reporting whether
// there was one. Jobs it already enqueued stay.
func (q *Queue) RemovePeriodic(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.worker != nil {
		return q.worker.PeriodicJobs().RemoveByID(id)
	}
	_, ok := q.periodic[id]
	delete(q.periodic, id)
	return ok
}

// Start starts working the registered kinds' queues in the background
// and takes part in electing the leader, which enqueues periodic jobs,
// moves retryable jobs back to available when their backoff ends, rescues
// the jobs of dead processes and deletes finished jobs after a retention
// period (a day; discarded jobs a week). Cancelling ctx stops the queue
// like Stop with no deadline.
func (q *Queue) Start(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.isRunning() {
		return fmt.Errorf("starting job queue: %w", ErrStarted)
	}
	if len(q.kinds) == 0 {
		return errors.New("starting job queue: no job kind registered")
	}
	if q.worker == nil {
		cfg := q.config()
		cfg.Workers = q.workers
		cfg.Queues = map[string]river.QueueConfig{}
		for _, ko := range q.kinds {
			cfg.Queues[ko.Queue] = river.QueueConfig{MaxWorkers: q.opts.Workers}
		}
		for name, n := range q.opts.Queues {
			cfg.Queues[name] = river.QueueConfig{MaxWorkers: n}
		}
		cfg.PeriodicJobs = slices.Collect(maps.Values(q.periodic))
		c, err := q.b.newClient(cfg)
		if err != nil {
			return fmt.Errorf("creating %s job worker: %w", q.b.name, err)
		}
		q.worker = c
		q.periodic = nil
	}
	if err := q.worker.Start(ctx); err != nil {
		return fmt.Errorf("starting job queue: %w", err)
	}
	q.stopped = q.worker.Stopped()
	return nil
}

// isRunning reports whether the worker was started and has not stopped
// (through Stop or the cancellation of Start's context). q.mu is held.
func (q *Queue) isRunning() bool {
	if q.stopped == nil {
		return false
	}
	select {
	case <-q.stopped:
		return false
	default:
		return true
	}
}

// Stop stops fetching jobs and waits for the running ones to return.
// When ctx ends first, it cancels the running jobs' contexts and waits
// for them a little longer; a job whose handler then returns its
// context's error (context.Canceled, wrapped or not) is made available
// again at once without counting the attempt, so another process (or
// this one, restarted) runs it. Stop on a queue that is not running does
// nothing.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.isRunning() {
		return nil
	}
	q.stopped = nil
	err := q.worker.Stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("stopping job queue: %w", err)
	}
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardStopWait)
	defer cancel()
	if err := q.worker.StopAndCancel(hard); err != nil {
		return fmt.Errorf("stopping job queue (cancelling running jobs): %w", err)
	}
	return nil
}

// hardStopWait is how long Stop waits for cancelled jobs to return.
const hardStopWait = 10 * time.Second
