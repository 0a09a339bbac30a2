package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// State is where a job is in its lifecycle (River's job states).
type State string

// The job states. Available, Pending, Scheduled, Running and Retryable
// are active (they block a duplicate, see Enqueue); Completed, Cancelled
// and Discarded are final.
const (
	Available State = State(rivertype.JobStateAvailable) // waiting for a worker
	Pending   State = State(rivertype.JobStatePending)   // inserted on hold
	Scheduled State = State(rivertype.JobStateScheduled) // waiting for its time
	Running   State = State(rivertype.JobStateRunning)   // held by a worker (or by a dead one until rescued)
	Retryable State = State(rivertype.JobStateRetryable) // failed, waiting for its backoff
	Completed State = State(rivertype.JobStateCompleted)
	Cancelled State = State(rivertype.JobStateCancelled) // given up (Permanent, or Cancel)
	Discarded State = State(rivertype.JobStateDiscarded) // failed its last attempt
)

// States lists every state, active ones first.
var States = []State{Running, Retryable, Available, Scheduled, Pending, Discarded, Cancelled, Completed}

// Job is a job as `ehrgate status` shows it.
type Job struct {
	ID    int64
	Kind  string
	Queue string
	State State
	// Args are the job's arguments (a JSON object, compact, keys sorted).
	Args json.RawMessage
	// Attempt is the number of attempts begun (1 while the first runs).
	Attempt     int
	MaxAttempts int
	// AttemptedBy are the IDs of the processes that ran it, oldest first;
	// the last one holds a running job.
	AttemptedBy []string
	// Errors are the failed attempts' errors, oldest first.
	Errors      []AttemptError
	CreatedAt   time.Time
	ScheduledAt time.Time // when it may run (next attempt of a retryable job)
	AttemptedAt time.Time // zero until the first attempt
	FinalizedAt time.Time // zero until final
	// LeaseEnds is, for a running job, when it may be taken from its
	// process and run again (see Options.RescueAfter); zero when it is
	// not running. A running job whose lease has ended was most likely
	// interrupted (its process died) and waits for the leader's rescuer.
	LeaseEnds time.Time
}

// Interrupted reports whether j is running past its lease at now: its
// process most likely died.
func (j Job) Interrupted(now time.Time) bool {
	return j.State == Running && !j.LeaseEnds.IsZero() && now.After(j.LeaseEnds)
}

// AttemptError is one failed attempt.
type AttemptError struct {
	At      time.Time
	Attempt int
	Error   string
}

// summaryLen bounds Summary.
const summaryLen = 120

// Summary is the kind and the arguments on one line, shortened to about
// 120 characters.
func (j Job) Summary() string {
	s := j.Kind + " " + string(j.Args)
	if len(s) > summaryLen {
		s = s[:summaryLen] + "…"
	}
	return s
}

// LastError is the latest failed attempt's error, or "".
func (j Job) LastError() string {
	if len(j.Errors) == 0 {
		return ""
	}
	return j.Errors[len(j.Errors)-1].Error
}

func (q *Queue) jobFromRow(r *rivertype.JobRow) Job {
	j := Job{
		ID:          r.ID,
		Kind:        r.Kind,
		Queue:       r.Queue,
		State:       State(r.State),
		Args:        canonicalArgs(r.EncodedArgs),
		Attempt:     r.Attempt,
		MaxAttempts: r.MaxAttempts,
		AttemptedBy: r.AttemptedBy,
		CreatedAt:   r.CreatedAt,
		ScheduledAt: r.ScheduledAt,
	}
	if r.AttemptedAt != nil {
		j.AttemptedAt = *r.AttemptedAt
	}
	if r.FinalizedAt != nil {
		j.FinalizedAt = *r.FinalizedAt
	}
	for _, e := range r.Errors {
		j.Errors = append(j.Errors, AttemptError{At: e.At, Attempt: e.Attempt, Error: e.Error})
	}
	if j.State == Running && !j.AttemptedAt.IsZero() {
		j.LeaseEnds = j.AttemptedAt.Add(q.lease(r.Kind))
	}
	return j
}

// lease is how long a running job of kind is left to its process before
// River's rescuer takes it, as this process's options say (the rescuing
// leader's are what count).
func (q *Queue) lease(kind string) time.Duration {
	q.mu.Lock()
	ko := q.kinds[kind]
	q.mu.Unlock()
	return max(q.opts.RescueAfter, ko.Timeout)
}

// canonicalArgs returns args compact, with the top-level keys sorted, so
// that they read the same from both backends (PostgreSQL's jsonb reorders
// keys and adds spaces).
func canonicalArgs(b []byte) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return json.RawMessage(b)
	}
	for k, v := range m {
		var buf bytes.Buffer
		if json.Compact(&buf, v) == nil {
			m[k] = buf.Bytes()
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(b)
	}
	return out
}

// Filter selects jobs for List. The zero value selects the latest jobs of
// every state and kind.
type Filter struct {
	States []State  // empty: all
	Kinds  []string // empty: all
	// Limit bounds the number of jobs. Zero: 100.
	Limit int
}

// List returns the jobs that f selects, newest first. It returns
// ErrNoSchema when the store was never migrated.
func (q *Queue) List(ctx context.Context, f Filter) ([]Job, error) {
	if err := q.checkSchema(ctx); err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	params := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(cmpOr(f.Limit, 100))
	if len(f.States) > 0 {
		states := make([]rivertype.JobState, len(f.States))
		for i, s := range f.States {
			states[i] = rivertype.JobState(s)
		}
		params = params.States(states...)
	}
	if len(f.Kinds) > 0 {
		params = params.Kinds(f.Kinds...)
	}
	res, err := q.admin.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	out := make([]Job, len(res.Jobs))
	for i, r := range res.Jobs {
		out[i] = q.jobFromRow(r)
	}
	return out, nil
}

// Counts returns the number of jobs in each state that has any. Finished
// jobs count until River deletes them (a day after they complete or are
// cancelled, a week after they are discarded).
func (q *Queue) Counts(ctx context.Context) (map[State]int, error) {
	if err := q.checkSchema(ctx); err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	c, err := q.b.counts(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting jobs: %w", err)
	}
	return c, nil
}

// countsQuery is the same in both dialects.
const countsQuery = `SELECT state, count(*) FROM river_job GROUP BY state`

// Get returns the job with the given ID, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id int64) (Job, error) {
	r, err := q.admin.JobGet(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return Job{}, fmt.Errorf("getting job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("getting job %d: %w", id, err)
	}
	return q.jobFromRow(r), nil
}

// Cancel cancels the job with the given ID: a waiting job will not run; a
// running job's context is cancelled (on every process) and its result
// is ignored. A final job stays as it is. It returns the job afterwards,
// or ErrNotFound.
func (q *Queue) Cancel(ctx context.Context, id int64) (Job, error) {
	r, err := q.admin.JobCancel(ctx, id)
	if errors.Is(err, rivertype.ErrNotFound) {
		return Job{}, fmt.Errorf("cancelling job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("cancelling job %d: %w", id, err)
	}
	return q.jobFromRow(r), nil
}

// checkSchema returns ErrNoSchema when River's tables are missing.
func (q *Queue) checkSchema(ctx context.Context) error {
	ok, err := q.b.hasTables(ctx)
	if err != nil {
		return fmt.Errorf("looking for the job tables: %w", err)
	}
	if !ok {
		return ErrNoSchema
	}
	return nil
}

// Migrate applies River's pending schema migrations to the store. It is
// idempotent, and replicas may run it at once: PostgreSQL serialises them
// with an advisory lock, SQLite with its write lock.
func (q *Queue) Migrate(ctx context.Context) error {
	if err := q.b.migrate(ctx, q.opts.Logger); err != nil {
		return fmt.Errorf("migrating the %s job queue: %w", q.b.name, err)
	}
	return nil
}

// SchemaVersion returns the River migration version applied to the store
// (0 when none) and the latest this binary knows.
func (q *Queue) SchemaVersion(ctx context.Context) (applied, latest int, err error) {
	applied, latest, err = q.b.versions(ctx, q.opts.Logger)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the %s job queue's schema version: %w", q.b.name, err)
	}
	return applied, latest, nil
}
