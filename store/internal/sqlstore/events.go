package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// The durable event log (table events; store.EventLog). AppendEvents holds
// the log's lock (Dialect.Lock; SQLite's write transactions exclude each
// other already) from before it reads the newest position until it
// commits, so positions are handed out in commit order by every process:
// a sequence from the database would let a later-numbered event commit
// first, and a reader past it would never see the earlier one.

const eventsLockKey = "events"

// AppendEvents implements store.EventLog.
func (db *DB) AppendEvents(ctx context.Context, recorded time.Time, bodies ...[]byte) ([]int64, error) {
	if len(bodies) == 0 {
		return nil, nil
	}
	evs := make([]store.StoredEvent, len(bodies))
	for i, b := range bodies {
		evs[i] = store.StoredEvent{Recorded: recorded, Body: b}
	}
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		return db.appendEventsTx(ctx, tx, evs)
	})
	if err != nil {
		return nil, fmt.Errorf("appending events: %w", err)
	}
	seqs := make([]int64, len(evs))
	for i, e := range evs {
		seqs[i] = e.Seq
	}
	return seqs, nil
}

// appendEventsTx appends evs to the log in tx, which it locks until
// commit, and sets each one's Seq. Transactions that write other tables
// too (the HL7 log) call it last, so that the log's lock is always the
// last one taken and held for the shortest time.
func (db *DB) appendEventsTx(ctx context.Context, tx Querier, evs []store.StoredEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if err := db.Dialect.lock(ctx, tx, eventsLockKey); err != nil {
		return err
	}
	var seq int64
	if err := db.queryRow(ctx, tx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return fmt.Errorf("reading the newest event: %w", err)
	}
	for i := range evs {
		if len(evs[i].Body) == 0 {
			return errors.New("empty event")
		}
		seq++
		if _, err := db.exec(ctx, tx, `INSERT INTO events (seq, recorded, body) VALUES (?, ?, ?)`,
			seq, db.Dialect.instant(evs[i].Recorded.UTC()), evs[i].Body); err != nil {
			return fmt.Errorf("appending event: %w", err)
		}
		evs[i].Seq = seq
	}
	return nil
}

// EventsSince implements store.EventLog.
func (db *DB) EventsSince(ctx context.Context, after int64, limit int) ([]store.StoredEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := db.query(ctx, db.Read, `SELECT seq, recorded, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return scanAll(rows, func(r *sql.Rows) (store.StoredEvent, error) {
		var e store.StoredEvent
		err := r.Scan(&e.Seq, instantDest{&e.Recorded}, &e.Body)
		return e, err
	})
}

// TrimEvents implements store.EventLog.
func (db *DB) TrimEvents(ctx context.Context, before time.Time) (int, error) {
	var n int64
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		res, err := db.exec(ctx, tx, `DELETE FROM events WHERE recorded < ?`, db.Dialect.instant(before.UTC()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("trimming events: %w", err)
	}
	return int(n), nil
}

// OldestEvent implements store.EventLog.
func (db *DB) OldestEvent(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.queryRow(ctx, db.Read, `SELECT COALESCE(MIN(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the oldest event: %w", err)
	}
	return seq, nil
}

// NewestEvent implements store.EventLog.
func (db *DB) NewestEvent(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.queryRow(ctx, db.Read, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("reading the newest event: %w", err)
	}
	return seq, nil
}
