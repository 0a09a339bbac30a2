package sqlite

import (
	"context"
	"time"
)

// Query-planner statistics. Without them SQLite's planner guesses, and on
// the joins of current records with their versions it guesses wrong: a
// patient's Observations were read by scanning every Observation of the
// connection in id order (77 ms on a 10,000-patient store) instead of
// through resources_by_patient (0.6 ms), because a sort looked costlier
// than the scan. ANALYZE fixes the choice; with analysis_limit it samples
// each index instead of reading it whole, so it takes milliseconds.
// https://sqlite.org/lang_analyze.html, https://sqlite.org/pragma.html#pragma_optimize
//
// The store refreshes them at open (PRAGMA optimize=0x10002: analyze what
// needs it, even tables never analyzed), after a bulk ingest, and every
// optimizeEvery while open, so a store that starts empty and fills up
// while serving gets statistics without a restart.
const (
	optimizeEvery = 10 * time.Minute
	optimizeSQL   = `PRAGMA analysis_limit=400; PRAGMA optimize=0x10002`
)

// optimize refreshes the planner's statistics on the writer connection;
// failures only cost speed, so they are not errors.
func (s *Store) optimize(ctx context.Context) {
	_, _ = s.w.ExecContext(ctx, optimizeSQL)
}

// startOptimizer refreshes the statistics every optimizeEvery until the
// store closes.
func (s *Store) startOptimizer() {
	s.stopOptimize = every(optimizeEvery, func() { s.optimize(context.Background()) })
}

func (s *Store) stopOptimizer() {
	if s.stopOptimize != nil {
		s.stopOptimize()
		s.stopOptimize = nil
	}
}

// every runs fn every d in a goroutine of its own until the returned stop
// is called; stop returns once fn is no longer running.
func every(d time.Duration, fn func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
