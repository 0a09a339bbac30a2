package audit

import (
	"context"
	"fmt"
	"time"

	"ehrgate/store"
)

// Log is the Recorder that writes to the store's audit trail.
type Log struct {
	trail  store.AuditLog
	source Source
	now    func() time.Time
}

// NewLog returns a Recorder appending to trail as observed by src. now is
// the clock for events without a Recorded time (nil: time.Now).
func NewLog(trail store.AuditLog, src Source, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{trail: trail, source: src, now: now}
}

// Record implements Recorder: it validates e, encodes it and appends it to
// the trail, returning only once the store has it. An error (an invalid
// event, a store failure, a cancelled ctx) means nothing was recorded: the
// caller refuses the access.
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.Recorded.IsZero() {
		e.Recorded = l.now()
	}
	ent, err := e.Entry(l.source)
	if err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	if _, err := l.trail.AppendAudit(ctx, ent); err != nil {
		return fmt.Errorf("recording audit event: %w", err)
	}
	return nil
}

var _ Recorder = (*Log)(nil)
