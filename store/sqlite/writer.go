package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Group commit.
//
// SQLite allows one writer at a time and a commit is the expensive part of a
// small write. Writers therefore hand their work to one goroutine that runs
// everything queued at that moment in a single transaction, each piece under
// its own SAVEPOINT: a failing piece is rolled back alone and its caller gets
// the error, the others commit together. A caller's work is durable (as
// durable as the journal settings make any commit) when write returns nil.

// maxGroup bounds how many queued writes share one transaction.
const maxGroup = 128

type writeReq struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// startWriter starts the group-commit goroutine.
func (s *Store) startWriter() {
	s.writes = make(chan writeReq)
	s.writerDone = make(chan struct{})
	go func() {
		defer close(s.writerDone)
		for req := range s.writes {
			batch := []writeReq{req}
		drain:
			for len(batch) < maxGroup {
				select {
				case r, ok := <-s.writes:
					if !ok {
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			s.runGroup(batch)
		}
	}()
}

// write runs fn inside a transaction shared with other concurrent writers
// and returns once that transaction has committed (or fn failed).
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	req := writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return errors.New("sqlite: store is closed")
	}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued the write is always answered: waiting for the answer (not
	// the context) keeps "returned nil" equal to "committed".
	return <-req.done
}

func (s *Store) runGroup(batch []writeReq) {
	fail := func(err error) {
		for _, r := range batch {
			r.done <- err
		}
	}
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		fail(fmt.Errorf("starting write: %w", err))
		return
	}
	results := make([]error, len(batch))
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := tx.Exec("SAVEPOINT w"); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		if err := r.fn(r.ctx, tx); err != nil {
			results[i] = err
			if _, rerr := tx.Exec("ROLLBACK TO w"); rerr != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("rolling back a failed write: %w", rerr))
				return
			}
		}
		if _, err := tx.Exec("RELEASE w"); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("releasing savepoint: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("committing write: %w", err))
		return
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// stopWriter drains and stops the group-commit goroutine.
func (s *Store) stopWriter() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	close(s.writes)
	s.closeMu.Unlock()
	<-s.writerDone
}
