package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ehrgate/identity"
	"ehrgate/jobs"
)

// IdentityJob matches the Patients stored since the last match (new and
// changed ones) into persons (identity.Service.Update): an incremental
// add with the last run's model, or a full run the first time and when
// the records have doubled since the model was fitted. One job for the
// whole store (matching is across connections): Scope is "all", so while
// one waits every further store of Patients is folded into it, and a store
// during a run enqueues one more behind it (kicker).
type IdentityJob struct {
	Scope string `json:"scope" river:"unique"`
}

// Kind implements jobs.Args.
func (IdentityJob) Kind() string { return "identity_match" }

// identityEvery is how often the leader enqueues a match job whatever this
// process stored: Patients written by another program on the store (an
// `ehrgate bulk import`, a `sync` from the command line) are matched
// within it. A job with nothing new reads the Patients and writes nothing.
const identityEvery = 15 * time.Minute

// identityPoll is how often a kick asks again while a match job runs (a
// full match of a million records takes about a minute).
const identityPoll = time.Second

func (g *Gateway) runIdentityJob(ctx context.Context, _ IdentityJob) error {
	recs, err := identity.LoadPatients(ctx, g.store)
	if err != nil {
		return err
	}
	up, err := (&identity.Service{Docs: g.store}).Update(ctx, recs, identity.Options{})
	if err != nil {
		return fmt.Errorf("matching stored patients: %w", err)
	}
	switch {
	case up.Full:
		g.log.Info("identity: full match run", "reason", up.Reason, "records", up.Run.Records, "persons", up.Run.Persons,
			"links", up.Run.Links, "seconds", up.Run.Seconds)
	case up.Add != nil && up.Add.New+up.Add.Changed+up.Add.Removed > 0:
		a := up.Add
		g.log.Info("identity: matched stored patients", "new", a.New, "changed", a.Changed, "moved", a.Moved,
			"removed", a.Removed, "joined", a.Joined, "created", a.Created, "review", a.Review)
	}
	return nil
}

// identityKind is how the match job's kind is registered: on the long
// queue (a full run of a million records takes a minute or more), with the
// configured job timeout.
func (g *Gateway) identityKind() jobs.KindOptions {
	return jobs.KindOptions{Queue: queueLong, Timeout: g.jobTimeout()}
}

// startIdentityKicker starts the kicker of match jobs (kickIdentity).
func (g *Gateway) startIdentityKicker(ctx context.Context, q *jobs.Queue) {
	k := g.startKicker(ctx, q, kickerOptions{what: "identity matching", args: IdentityJob{Scope: "all"}, poll: identityPoll})
	g.jobs.mu.Lock()
	g.jobs.identity = k
	g.jobs.mu.Unlock()
}

// kickIdentity asks for a match job after Patients were stored (a sync,
// a bulk export, HL7 conversion, a subscription notification, an
// event-driven refresh); it never blocks. Without a running queue (a
// command-line sync) it does nothing: the serving gateway's periodic job
// matches them.
func (g *Gateway) kickIdentity() {
	g.jobs.mu.Lock()
	k := g.jobs.identity
	g.jobs.mu.Unlock()
	if k != nil {
		k.kick()
	}
}

// scheduleIdentity adds the leader's periodic match job.
func (g *Gateway) scheduleIdentity(q *jobs.Queue) error {
	return q.AddPeriodic(jobs.Periodic{ID: "identity", Every: identityEvery, RunOnStart: true,
		Args: func() jobs.Args { return IdentityJob{Scope: "all"} }})
}

// RequestMatch asks for a match of the stored Patients from a process
// that may not be serving (`ehrgate bulk import`, `ehrgate sync`): in a
// serving gateway it kicks its match job; otherwise it enqueues an
// identity_match job on the store's queue, which the serving gateways
// run. A store whose job queue was never created (never served) needs
// nothing: the first gateway to serve it matches at start.
func (g *Gateway) RequestMatch(ctx context.Context) error {
	g.jobs.mu.Lock()
	k := g.jobs.identity
	g.jobs.mu.Unlock()
	if k != nil {
		k.kick()
		return nil
	}
	q, closeQ, err := OpenQueue(ctx, g.store, jobs.Options{Logger: g.log})
	if err != nil {
		return err
	}
	defer closeQ()
	if _, err := q.Counts(ctx); errors.Is(err, jobs.ErrNoSchema) {
		return nil
	}
	if err := jobs.Register(q, g.runIdentityJob, g.identityKind()); err != nil {
		return err
	}
	if _, err := q.Enqueue(ctx, IdentityJob{Scope: "all"}); err != nil {
		return fmt.Errorf("asking for a match of the stored patients: %w", err)
	}
	return nil
}
