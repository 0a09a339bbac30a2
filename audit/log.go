package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"ehrgate/store"
)

// Log is the Recorder that writes to the store's audit trail.
//
// Concurrent Records share commits: while one batch is being appended, the
// events recorded meanwhile queue, and the first of them appends them all
// in the next transaction (at most MaxBatch at once). Each Record still
// returns only once its own event is stored, or with the error that kept
// its batch out. So a store whose commits are slow (PostgreSQL waiting for
// the disk, under the trail's lock) records many accesses per commit
// instead of one.
type Log struct {
	trail  store.AuditLog
	source Source
	now    func() time.Time

	// MaxBatch bounds how many events one transaction appends (set before
	// the first Record).
	MaxBatch int
	// Timeout bounds one batch's append. A batch carries other requests'
	// events, so it runs without the cancellation of the request that
	// happens to append it, until Timeout.
	Timeout time.Duration

	mu        sync.Mutex
	pending   []*call
	appending bool
}

// call is one Record waiting for its batch.
type call struct {
	ent  store.AuditEntry
	err  error
	done chan struct{} // closed when ent is stored or failed
	lead chan struct{} // closed when this call is to append the next batch
}

// NewLog returns a Recorder appending to trail as observed by src. now is
// the clock for events without a Recorded time (nil: time.Now).
func NewLog(trail store.AuditLog, src Source, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{trail: trail, source: src, now: now, MaxBatch: 256, Timeout: 30 * time.Second}
}

// Record implements Recorder: it validates e, encodes it and appends it to
// the trail, returning only once the store has it. An error (an invalid
// event, a store failure or timeout, a cancelled ctx before queueing) means
// e was not recorded: the caller refuses the access. Once queued, Record
// waits for its batch even if ctx ends (at most Timeout).
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.Recorded.IsZero() {
		e.Recorded = l.now()
	}
	ent, err := e.Entry(l.source)
	if err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	c := &call{ent: ent, done: make(chan struct{}), lead: make(chan struct{})}
	l.mu.Lock()
	l.pending = append(l.pending, c)
	lead := !l.appending
	l.appending = true
	l.mu.Unlock()
	if !lead {
		select {
		case <-c.done:
			return c.err
		case <-c.lead:
		}
	}
	l.appendBatch(ctx)
	<-c.done // the batch appended began with c
	return c.err
}

// appendBatch appends the oldest pending calls (the caller's first) in one
// transaction, then hands the next batch to the oldest call still pending.
func (l *Log) appendBatch(ctx context.Context) {
	limit := l.MaxBatch
	if limit <= 0 {
		limit = 1
	}
	l.mu.Lock()
	n := min(len(l.pending), limit)
	batch := l.pending[:n:n]
	l.pending = l.pending[n:]
	l.mu.Unlock()

	ents := make([]store.AuditEntry, len(batch))
	for i, c := range batch {
		ents[i] = c.ent
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout())
	_, err := l.trail.AppendAudit(actx, ents...)
	cancel()
	if err != nil {
		err = fmt.Errorf("recording audit event: %w", err)
	}
	for _, c := range batch {
		c.err = err
		close(c.done)
	}

	l.mu.Lock()
	if len(l.pending) > 0 {
		close(l.pending[0].lead)
	} else {
		l.appending = false
	}
	l.mu.Unlock()
}

func (l *Log) timeout() time.Duration {
	if l.Timeout <= 0 {
		return 30 * time.Second
	}
	return l.Timeout
}

var _ Recorder = (*Log)(nil)
