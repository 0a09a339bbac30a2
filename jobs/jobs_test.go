package jobs_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"ehrgate/internal/pgtest"
	"ehrgate/jobs"
	"ehrgate/store"
	"ehrgate/store/postgres"
	"ehrgate/store/sqlite"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	code := m.Run()
	pgtest.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// process is what one gateway process holds: a store and a job queue on
// it.
type process struct {
	q     *jobs.Queue
	docs  store.Documents
	close func() error
}

// backend is one store implementation the suite runs against.
type backend struct {
	name string
	// newStore creates an empty, migrated store and returns its location.
	newStore func(t *testing.T) string
	// open opens the store at loc and a queue on it, as a process would.
	open func(ctx context.Context, loc string, opts jobs.Options) (process, error)
}

var backends = []backend{
	{
		name: "sqlite",
		newStore: func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), sqlite.FileName)
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			s.Close()
			return path
		},
		open: func(ctx context.Context, path string, opts jobs.Options) (process, error) {
			s, err := sqlite.Open(ctx, path)
			if err != nil {
				return process{}, err
			}
			db, err := s.OpenJobDB(ctx)
			if err != nil {
				s.Close()
				return process{}, err
			}
			q, err := jobs.NewSQLite(db, opts)
			if err != nil {
				db.Close()
				s.Close()
				return process{}, err
			}
			return process{q: q, docs: s, close: func() error { return errors.Join(db.Close(), s.Close()) }}, nil
		},
	},
	{
		name: "postgres",
		newStore: func(t *testing.T) string {
			dsn := pgtest.NewDatabase(t) + " pool_max_conns=20"
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			s.Close()
			return dsn
		},
		open: func(ctx context.Context, dsn string, opts jobs.Options) (process, error) {
			s, err := postgres.Open(ctx, dsn)
			if err != nil {
				return process{}, err
			}
			q, err := jobs.NewPostgres(s.Pool(), opts)
			if err != nil {
				s.Close()
				return process{}, err
			}
			return process{q: q, docs: s, close: s.Close}, nil
		},
	},
}

func backendNamed(name string) (backend, bool) {
	for _, b := range backends {
		if b.name == name {
			return b, true
		}
	}
	return backend{}, false
}

// testLogger keeps River's warnings and errors.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// testOptions are quick: tests must not wait for production intervals.
func testOptions(id string) jobs.Options {
	return jobs.Options{
		ID:           id,
		Logger:       testLogger,
		PollInterval: 50 * time.Millisecond,
		Backoff:      func(int) time.Duration { return 50 * time.Millisecond },
	}
}

// openProcess opens a process on the store at loc, migrated, with
// register's kinds; it is stopped and closed when t ends.
func openProcess(t *testing.T, b backend, loc string, opts jobs.Options, register func(q *jobs.Queue)) process {
	t.Helper()
	ctx := context.Background()
	p, err := b.open(ctx, loc, opts)
	if err != nil {
		t.Fatalf("opening %s: %v", b.name, err)
	}
	t.Cleanup(func() {
		// Jobs still blocked are cancelled after a short wait.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := p.q.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if err := p.close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	if err := p.q.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if register != nil {
		register(p.q)
	}
	return p
}

func start(t *testing.T, q *jobs.Queue) {
	t.Helper()
	if err := q.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// syncArgs stand for a connection's sync: one per connection and scope at
// a time; Note is not part of the identity.
type syncArgs struct {
	Connection string `json:"connection" river:"unique"`
	Scope      string `json:"scope" river:"unique"`
	Note       string `json:"note,omitempty"`
}

func (syncArgs) Kind() string { return "test_sync" }

func mustRegister[T jobs.Args](t *testing.T, q *jobs.Queue, fn func(context.Context, T) error, opts jobs.KindOptions) {
	t.Helper()
	if err := jobs.Register(q, fn, opts); err != nil {
		t.Fatalf("Register: %v", err)
	}
}

func enqueue(t *testing.T, q *jobs.Queue, args jobs.Args) jobs.Enqueued {
	t.Helper()
	e, err := q.Enqueue(context.Background(), args)
	if err != nil {
		t.Fatalf("Enqueue(%+v): %v", args, err)
	}
	return e
}

// waitState waits until job id is in state want and returns it.
func waitState(t *testing.T, q *jobs.Queue, id int64, want jobs.State, timeout time.Duration) jobs.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var j jobs.Job
	for {
		var err error
		j, err = q.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get(%d): %v", id, err)
		}
		if j.State == want {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d is %s after %s, want %s (attempt %d, errors %+v)", id, j.State, timeout, want, j.Attempt, j.Errors)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestQueue(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend)
	}{
		{"EnqueueAndRun", testEnqueueAndRun},
		{"Uniqueness", testUniqueness},
		{"RetryWithBackoff", testRetryWithBackoff},
		{"DiscardAndPermanent", testDiscardAndPermanent},
		{"Status", testStatus},
		{"Schema", testSchema},
		{"StopCancelsAtDeadline", testStopCancelsAtDeadline},
		{"ConcurrentWithStoreWrites", testConcurrentWithStoreWrites},
		{"PeriodicRunsOnceAcrossProcesses", testPeriodicOnce},
		{"KilledWorkerJobRescued", testKilledWorker},
		{"Errors", testErrors},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, b)
				})
			}
		})
	}
}

func testEnqueueAndRun(t *testing.T, b backend) {
	got := make(chan syncArgs, 1)
	var current jobs.Current
	p := openProcess(t, b, b.newStore(t), testOptions("a"), func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a syncArgs) error {
			current, _ = jobs.CurrentJob(ctx)
			got <- a
			return nil
		}, jobs.KindOptions{})
	})
	start(t, p.q)
	want := syncArgs{Connection: "epic", Scope: "patients", Note: "first"}
	e := enqueue(t, p.q, want)
	if e.Duplicate || e.ID == 0 {
		t.Fatalf("Enqueue = %+v, want a new job", e)
	}
	select {
	case a := <-got:
		if a != want {
			t.Errorf("handler got %+v, want %+v", a, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("handler did not run")
	}
	j := waitState(t, p.q, e.ID, jobs.Completed, 10*time.Second)
	if current.ID != e.ID || current.Kind != "test_sync" || current.Attempt != 1 || current.MaxAttempts != jobs.DefaultMaxAttempts {
		t.Errorf("CurrentJob = %+v, want job %d, attempt 1 of %d", current, e.ID, jobs.DefaultMaxAttempts)
	}
	if j.Attempt != 1 || !slices.Equal(j.AttemptedBy, []string{"a"}) || len(j.Errors) != 0 || j.FinalizedAt.IsZero() {
		t.Errorf("completed job = %+v, want one attempt by a, no errors, finalized", j)
	}
	if want := `test_sync {"connection":"epic","note":"first","scope":"patients"}`; j.Summary() != want {
		t.Errorf("Summary() = %q, want %q", j.Summary(), want)
	}
}

func testUniqueness(t *testing.T, b backend) {
	entered := make(chan syncArgs, 10)
	release := make(chan struct{})
	p := openProcess(t, b, b.newStore(t), testOptions("a"), func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a syncArgs) error {
			entered <- a
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, jobs.KindOptions{})
	})
	q := p.q
	// Waiting (available): a second job for the connection and scope is a
	// duplicate even with other non-unique arguments.
	first := enqueue(t, q, syncArgs{Connection: "c1", Scope: "all", Note: "x"})
	if first.Duplicate || first.State != jobs.Available {
		t.Fatalf("first Enqueue = %+v, want a new available job", first)
	}
	dup := enqueue(t, q, syncArgs{Connection: "c1", Scope: "all", Note: "y"})
	if !dup.Duplicate || dup.ID != first.ID {
		t.Errorf("Enqueue of the same connection and scope = %+v, want a duplicate of %d", dup, first.ID)
	}
	for _, a := range []syncArgs{{Connection: "c1", Scope: "other"}, {Connection: "c2", Scope: "all"}} {
		if e := enqueue(t, q, a); e.Duplicate {
			t.Errorf("Enqueue(%+v) = %+v, want a new job", a, e)
		}
	}
	// Running: still a duplicate.
	start(t, q)
	deadline := time.After(20 * time.Second)
	for running := 0; running < 3; running++ {
		select {
		case <-entered:
		case <-deadline:
			t.Fatalf("%d of 3 jobs started", running)
		}
	}
	waitState(t, q, first.ID, jobs.Running, 5*time.Second)
	if e := enqueue(t, q, syncArgs{Connection: "c1", Scope: "all"}); !e.Duplicate || e.ID != first.ID || e.State != jobs.Running {
		t.Errorf("Enqueue while running = %+v, want a duplicate of running job %d", e, first.ID)
	}
	close(release)
	waitState(t, q, first.ID, jobs.Completed, 10*time.Second)
	// Finished: a new job.
	again := enqueue(t, q, syncArgs{Connection: "c1", Scope: "all"})
	if again.Duplicate || again.ID == first.ID {
		t.Errorf("Enqueue after completion = %+v, want a new job", again)
	}
	waitState(t, q, again.ID, jobs.Completed, 10*time.Second)
}

func testRetryWithBackoff(t *testing.T, b backend) {
	const backoff = 300 * time.Millisecond
	var mu sync.Mutex
	var attempts []time.Time
	opts := testOptions("a")
	opts.Backoff = func(attempt int) time.Duration { return time.Duration(attempt) * backoff }
	p := openProcess(t, b, b.newStore(t), opts, func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a syncArgs) error {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, time.Now())
			if len(attempts) == 1 {
				return errors.New("EHR answered 503")
			}
			return nil
		}, jobs.KindOptions{})
	})
	start(t, p.q)
	e := enqueue(t, p.q, syncArgs{Connection: "c1", Scope: "all"})
	j := waitState(t, p.q, e.ID, jobs.Completed, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("handler ran %d times, want 2", len(attempts))
	}
	if gap := attempts[1].Sub(attempts[0]); gap < backoff {
		t.Errorf("second attempt %s after the first, want at least the backoff %s", gap, backoff)
	}
	if j.Attempt != 2 || len(j.Errors) != 1 || j.Errors[0].Attempt != 1 || j.Errors[0].Error != "EHR answered 503" {
		t.Errorf("job = attempt %d, errors %+v; want attempt 2 and the first attempt's error", j.Attempt, j.Errors)
	}
}

// failArgs always fail; permanentArgs give up at once.
type failArgs struct {
	N int `json:"n"`
}

func (failArgs) Kind() string { return "test_fail" }

type permanentArgs struct{}

func (permanentArgs) Kind() string { return "test_permanent" }

func testDiscardAndPermanent(t *testing.T, b backend) {
	var permanentRuns atomic.Int32
	p := openProcess(t, b, b.newStore(t), testOptions("a"), func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a failArgs) error {
			c, _ := jobs.CurrentJob(ctx)
			return fmt.Errorf("attempt %d failed", c.Attempt)
		}, jobs.KindOptions{MaxAttempts: 3})
		mustRegister(t, q, func(ctx context.Context, a permanentArgs) error {
			permanentRuns.Add(1)
			return jobs.Permanent(errors.New("connection deleted"))
		}, jobs.KindOptions{})
	})
	start(t, p.q)
	fail := enqueue(t, p.q, failArgs{N: 1})
	perm := enqueue(t, p.q, permanentArgs{})
	j := waitState(t, p.q, fail.ID, jobs.Discarded, 20*time.Second)
	var errs []string
	for _, e := range j.Errors {
		errs = append(errs, e.Error)
	}
	if want := []string{"attempt 1 failed", "attempt 2 failed", "attempt 3 failed"}; j.Attempt != 3 || j.MaxAttempts != 3 || !slices.Equal(errs, want) {
		t.Errorf("discarded job: attempt %d of %d, errors %q; want 3 of 3, %q", j.Attempt, j.MaxAttempts, errs, want)
	}
	j = waitState(t, p.q, perm.ID, jobs.Cancelled, 10*time.Second)
	if permanentRuns.Load() != 1 || !strings.Contains(j.LastError(), "connection deleted") {
		t.Errorf("permanent failure: ran %d times, last error %q; want once, with the error", permanentRuns.Load(), j.LastError())
	}
}

// blockArgs block until their context ends.
// oneShotArgs have a single attempt.
type oneShotArgs struct{}

func (oneShotArgs) Kind() string { return "test_one_shot" }

type blockArgs struct {
	Connection string `json:"connection" river:"unique"`
}

func (blockArgs) Kind() string { return "test_block" }

func testStatus(t *testing.T, b backend) {
	ctx := context.Background()
	entered := make(chan struct{}, 1)
	opts := testOptions("a")
	opts.Backoff = func(int) time.Duration { return time.Hour }
	p := openProcess(t, b, b.newStore(t), opts, func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a blockArgs) error {
			entered <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}, jobs.KindOptions{Queue: "slow"})
		mustRegister(t, q, func(ctx context.Context, a failArgs) error {
			return fmt.Errorf("token endpoint refused (%d)", a.N)
		}, jobs.KindOptions{MaxAttempts: 2})
		mustRegister(t, q, func(ctx context.Context, a oneShotArgs) error {
			return errors.New("unsupported resource type")
		}, jobs.KindOptions{MaxAttempts: 1})
	})
	start(t, p.q)
	running := enqueue(t, p.q, blockArgs{Connection: "c1"})
	retryable := enqueue(t, p.q, failArgs{N: 1})
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("blocking job did not start")
	}
	waitState(t, p.q, retryable.ID, jobs.Retryable, 20*time.Second)
	discarded := enqueue(t, p.q, oneShotArgs{})
	waitState(t, p.q, discarded.ID, jobs.Discarded, 20*time.Second)
	got, err := p.q.List(ctx, jobs.Filter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	byID := map[int64]jobs.Job{}
	for _, j := range got {
		byID[j.ID] = j
	}
	if j := byID[running.ID]; j.State != jobs.Running || j.Queue != "slow" || !slices.Equal(j.AttemptedBy, []string{"a"}) || j.AttemptedAt.IsZero() {
		t.Errorf("List: running job = %+v, want running in queue slow, attempted by a", j)
	}
	if j := byID[retryable.ID]; j.State != jobs.Retryable || j.Attempt != 1 || j.LastError() != "token endpoint refused (1)" || !j.ScheduledAt.After(time.Now().Add(50*time.Minute)) {
		t.Errorf("List: retryable job = %+v, want retryable after attempt 1 with its error, next in an hour", j)
	}
	if j := byID[discarded.ID]; j.State != jobs.Discarded || j.Attempt != 1 || j.LastError() != "unsupported resource type" || j.FinalizedAt.IsZero() {
		t.Errorf("List: discarded job = %+v, want discarded after its only attempt, with its error", j)
	}
	if len(got) != 3 || got[0].ID < got[len(got)-1].ID {
		t.Errorf("List returned %d jobs, ids %d..%d; want all, newest first", len(got), got[0].ID, got[len(got)-1].ID)
	}
	only, err := p.q.List(ctx, jobs.Filter{States: []jobs.State{jobs.Running}, Kinds: []string{"test_block"}})
	if err != nil {
		t.Fatalf("List(running): %v", err)
	}
	if len(only) != 1 || only[0].ID != running.ID {
		t.Errorf("List(running test_block) = %d jobs, want job %d only", len(only), running.ID)
	}
	counts, err := p.q.Counts(ctx)
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	if want := map[jobs.State]int{jobs.Running: 1, jobs.Retryable: 1, jobs.Discarded: 1}; !maps.Equal(counts, want) {
		t.Errorf("Counts = %v, want %v", counts, want)
	}
}

func testSchema(t *testing.T, b backend) {
	ctx := context.Background()
	loc := b.newStore(t)
	p, err := b.open(ctx, loc, testOptions("a"))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer p.close()
	// A store that was never migrated: status says so, and creates nothing.
	if _, err := p.q.Counts(ctx); !errors.Is(err, jobs.ErrNoSchema) {
		t.Errorf("Counts before Migrate = %v, want ErrNoSchema", err)
	}
	if _, err := p.q.List(ctx, jobs.Filter{}); !errors.Is(err, jobs.ErrNoSchema) {
		t.Errorf("List before Migrate = %v, want ErrNoSchema", err)
	}
	applied, latest, err := p.q.SchemaVersion(ctx)
	if err != nil || applied != 0 || latest < 1 {
		t.Fatalf("SchemaVersion before Migrate = %d, %d, %v; want 0 of some", applied, latest, err)
	}
	// Replicas migrating at once, then again: idempotent.
	others := make([]process, 3)
	for i := range others {
		if others[i], err = b.open(ctx, loc, testOptions("m"+strconv.Itoa(i))); err != nil {
			t.Fatalf("open: %v", err)
		}
		defer others[i].close()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(others))
	for i, o := range others {
		wg.Go(func() { errs[i] = o.q.Migrate(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if err := p.q.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if applied, latest2, err := p.q.SchemaVersion(ctx); err != nil || applied != latest || latest2 != latest {
		t.Errorf("SchemaVersion after Migrate = %d, %d, %v; want %d, %d", applied, latest2, err, latest, latest)
	}
	counts, err := p.q.Counts(ctx)
	if err != nil || len(counts) != 0 {
		t.Errorf("Counts after Migrate = %v, %v; want none", counts, err)
	}
}

func testStopCancelsAtDeadline(t *testing.T, b backend) {
	entered := make(chan struct{}, 1)
	p := openProcess(t, b, b.newStore(t), testOptions("a"), func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a blockArgs) error {
			entered <- struct{}{}
			<-ctx.Done()
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}, jobs.KindOptions{})
	})
	start(t, p.q)
	e := enqueue(t, p.q, blockArgs{Connection: "c1"})
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("job did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := p.q.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("Stop took %s", d)
	}
	j, err := p.q.Get(context.Background(), e.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if j.State != jobs.Available || j.Attempt != 0 || len(j.Errors) != 0 {
		t.Errorf("job after a hard stop = %s, attempt %d, errors %+v; want available again, the interrupted attempt not counted", j.State, j.Attempt, j.Errors)
	}
	// Started again, it finishes the job.
	if err := p.q.Start(context.Background()); err != nil {
		t.Fatalf("Start again: %v", err)
	}
	<-entered
	if _, err := p.q.Cancel(context.Background(), e.ID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	waitState(t, p.q, e.ID, jobs.Cancelled, 10*time.Second)
}

// countArgs add one to a counter document in the store.
type countArgs struct {
	N int `json:"n" river:"unique"`
}

func (countArgs) Kind() string { return "test_count" }

func testConcurrentWithStoreWrites(t *testing.T, b backend) {
	const n = 60
	ctx := context.Background()
	loc := b.newStore(t)
	var runs atomic.Int32
	var procs []process
	for _, id := range []string{"a", "b"} {
		p := openProcess(t, b, loc, testOptions(id), nil)
		mustRegister(t, p.q, func(ctx context.Context, a countArgs) error {
			runs.Add(1)
			return p.docs.UpdateDocument(ctx, "jobs-test", "counter", func(old []byte) ([]byte, error) {
				v, _ := strconv.Atoi(string(old))
				return []byte(strconv.Itoa(v + 1)), nil
			})
		}, jobs.KindOptions{})
		procs = append(procs, p)
	}
	a, bp := procs[0], procs[1]
	start(t, a.q)
	start(t, bp.q)
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		q := a.q
		if i%2 == 1 {
			q = bp.q
		}
		wg.Go(func() {
			e, err := q.Enqueue(ctx, countArgs{N: i})
			if err != nil {
				t.Errorf("Enqueue: %v", err)
				return
			}
			ids[i] = e.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		waitState(t, a.q, id, jobs.Completed, 60*time.Second)
	}
	doc, err := a.docs.GetDocument(ctx, "jobs-test", "counter")
	if err != nil {
		t.Fatalf("GetDocument: %v", err)
	}
	if string(doc.Body) != strconv.Itoa(n) || runs.Load() != n {
		t.Errorf("counter = %s after %d runs, want %d", doc.Body, runs.Load(), n)
	}
}

// tickArgs are a periodic job; By names the process whose schedule
// enqueued it, so that two leaders would enqueue two jobs (uniqueness
// cannot hide them).
type tickArgs struct {
	By string `json:"by"`
}

func (tickArgs) Kind() string { return "test_tick" }

func testPeriodicOnce(t *testing.T, b backend) {
	ctx := context.Background()
	loc := b.newStore(t)
	var mu sync.Mutex
	var ran []string
	var procs []process
	for _, id := range []string{"a", "b"} {
		p := openProcess(t, b, loc, testOptions(id), func(q *jobs.Queue) {
			mustRegister(t, q, func(ctx context.Context, a tickArgs) error {
				mu.Lock()
				defer mu.Unlock()
				ran = append(ran, a.By)
				return nil
			}, jobs.KindOptions{})
			err := q.AddPeriodic(jobs.Periodic{
				ID:         "tick",
				Every:      time.Hour,
				RunOnStart: true,
				Args:       func() jobs.Args { return tickArgs{By: id} },
			})
			if err != nil {
				t.Fatalf("AddPeriodic: %v", err)
			}
		})
		procs = append(procs, p)
	}
	for _, p := range procs {
		start(t, p.q)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(ran)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the periodic job did not run")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // time for a second leader to show itself
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != 1 {
		t.Errorf("periodic job ran %d times (enqueued by %q), want once", len(ran), ran)
	}
	got, err := procs[0].q.List(ctx, jobs.Filter{Kinds: []string{"test_tick"}})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 1 {
		t.Errorf("%d tick jobs, want 1", len(got))
	}
	// A schedule can be removed while running.
	if !procs[0].q.RemovePeriodic("tick") || procs[0].q.RemovePeriodic("tick") {
		t.Error("RemovePeriodic: want true, then false")
	}
}

// crashArgs are worked first by a child process that is killed mid-job.
type crashArgs struct {
	Connection string `json:"connection" river:"unique"`
}

func (crashArgs) Kind() string { return "test_crash" }

// childEnv makes the test binary a worker process: its value is
// "backend|location".
const childEnv = "EHRGATE_JOBS_TEST_CHILD"

// runChild works test_crash jobs by never returning from them (printing
// "running ID" first), until it is killed.
func runChild(spec string) int {
	name, loc, _ := strings.Cut(spec, "|")
	b, ok := backendNamed(name)
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown backend", name)
		return 2
	}
	ctx := context.Background()
	p, err := b.open(ctx, loc, testOptions("child"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = jobs.Register(p.q, func(ctx context.Context, a crashArgs) error {
		c, _ := jobs.CurrentJob(ctx)
		fmt.Printf("running %d\n", c.ID)
		select {} // until killed
	}, jobs.KindOptions{})
	if err == nil {
		err = p.q.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	select {}
}

func testKilledWorker(t *testing.T, b backend) {
	if testing.Short() {
		t.Skip("waits for the dead process's leadership to expire (about 15 s)")
	}
	ctx := context.Background()
	loc := b.newStore(t)
	// The parent only enqueues until the child is dead.
	var runs atomic.Int32
	opts := testOptions("survivor")
	opts.JobTimeout = time.Second
	opts.RescueAfter = 2 * time.Second
	p := openProcess(t, b, loc, opts, func(q *jobs.Queue) {
		mustRegister(t, q, func(ctx context.Context, a crashArgs) error {
			runs.Add(1)
			return nil
		}, jobs.KindOptions{})
	})
	e := enqueue(t, p.q, crashArgs{Connection: "c1"})

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+b.name+"|"+loc)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatalf("starting the worker process: %v", err)
	}
	killed := false
	defer func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	}()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if l != "running "+strconv.FormatInt(e.ID, 10) {
			t.Fatalf("worker process said %q, want running %d", l, e.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker process did not take the job")
	}
	if j := waitState(t, p.q, e.ID, jobs.Running, 5*time.Second); !slices.Equal(j.AttemptedBy, []string{"child"}) {
		t.Fatalf("job attempted by %q, want the child", j.AttemptedBy)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing the worker process: %v", err)
	}
	child.Wait()
	killed = true

	// Status shows the job as running (interrupted: its worker is gone)
	// until its lease ends; then the survivor, once leader, rescues it and
	// runs it, once.
	j, err := p.q.Get(ctx, e.ID)
	if err != nil || j.State != jobs.Running {
		t.Fatalf("job after the kill = %+v, %v; want still running", j, err)
	}
	if want := j.AttemptedAt.Add(opts.RescueAfter); !j.LeaseEnds.Equal(want) {
		t.Errorf("LeaseEnds = %v, want %v (attempt + RescueAfter)", j.LeaseEnds, want)
	}
	time.Sleep(time.Until(j.LeaseEnds.Add(10 * time.Millisecond)))
	if j, err = p.q.Get(ctx, e.ID); err != nil || !j.Interrupted(time.Now()) {
		t.Errorf("job past its lease: Interrupted = false (%+v, %v), want true", j, err)
	}
	start(t, p.q)
	j = waitState(t, p.q, e.ID, jobs.Completed, 60*time.Second)
	if runs.Load() != 1 {
		t.Errorf("survivor ran the job %d times, want once", runs.Load())
	}
	if j.Attempt != 2 || !slices.Equal(j.AttemptedBy, []string{"child", "survivor"}) || len(j.Errors) != 1 {
		t.Errorf("rescued job: attempt %d by %q, errors %+v; want attempt 2 by child then survivor, one error (the rescue)", j.Attempt, j.AttemptedBy, j.Errors)
	}
	time.Sleep(500 * time.Millisecond)
	if runs.Load() != 1 {
		t.Errorf("survivor ran the job %d times, want once", runs.Load())
	}
}

func testErrors(t *testing.T, b backend) {
	ctx := context.Background()
	p := openProcess(t, b, b.newStore(t), testOptions("a"), nil)
	if err := p.q.Start(ctx); err == nil {
		t.Error("Start with no kind registered: no error")
	}
	if _, err := p.q.Enqueue(ctx, syncArgs{Connection: "c1"}); !errors.Is(err, jobs.ErrUnknownKind) {
		t.Errorf("Enqueue of an unregistered kind = %v, want ErrUnknownKind", err)
	}
	if err := p.q.AddPeriodic(jobs.Periodic{ID: "sync:c1", Every: time.Minute, Args: func() jobs.Args { return syncArgs{} }}); !errors.Is(err, jobs.ErrUnknownKind) {
		t.Errorf("AddPeriodic of an unregistered kind = %v, want ErrUnknownKind", err)
	}
	mustRegister(t, p.q, func(context.Context, syncArgs) error { return nil }, jobs.KindOptions{})
	for _, id := range []string{"", "-x", "a b", strings.Repeat("x", 128)} {
		if err := p.q.AddPeriodic(jobs.Periodic{ID: id, Every: time.Minute, Args: func() jobs.Args { return syncArgs{} }}); err == nil {
			t.Errorf("AddPeriodic(ID %q): no error", id)
		}
	}
	if err := jobs.Register(p.q, func(context.Context, syncArgs) error { return nil }, jobs.KindOptions{}); err == nil {
		t.Error("registering a kind twice: no error")
	}
	if _, err := p.q.Get(ctx, 987654); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("Get of a missing job = %v, want ErrNotFound", err)
	}
	start(t, p.q)
	if err := p.q.Start(ctx); !errors.Is(err, jobs.ErrStarted) {
		t.Errorf("Start twice = %v, want ErrStarted", err)
	}
	if err := jobs.Register(p.q, func(context.Context, blockArgs) error { return nil }, jobs.KindOptions{}); !errors.Is(err, jobs.ErrStarted) {
		t.Errorf("Register after Start = %v, want ErrStarted", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := []jobs.Options{
		{JobTimeout: time.Minute, RescueAfter: time.Minute},
		{MaxAttempts: -1},
		{Queues: map[string]int{"q": 0}},
		{JobTimeout: -1},
	}
	for _, o := range bad {
		if _, err := jobs.NewSQLite(db, o); err == nil {
			t.Errorf("NewSQLite(%+v): no error", o)
		}
	}
}
