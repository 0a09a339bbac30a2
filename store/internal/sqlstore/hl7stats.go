package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"ehrgate/store"
)

// ackExpr is the ACK code a message was sent; messages logged before ACK
// codes were recorded count as AA, or AE when refused.
const ackExpr = `CASE WHEN ack <> '' THEN ack WHEN error LIKE 'refused%' THEN 'AE' ELSE 'AA' END`

// maxLags bounds the conversion delays HL7Feed returns.
const maxLags = 1000

// HL7Hourly implements store.HL7Stats.
func (db *DB) HL7Hourly(ctx context.Context, connection string, since time.Time) ([]store.HL7HourCount, error) {
	since = since.UTC().Truncate(time.Hour)
	hour := db.Dialect.HourOf("received_at")
	// SQLite compares RFC 3339 text, where a fraction sorts before "Z":
	// ask from a second earlier and drop what falls before since below.
	rows, err := db.query(ctx, db.Read, `SELECT `+hour+`, message_type, `+ackExpr+`, count(*),
		coalesce(sum(CASE WHEN error <> '' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN reused THEN 1 ELSE 0 END), 0)
		FROM hl7_messages WHERE connection = ? AND received_at >= ?
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, connection, db.Dialect.Time(since.Add(-time.Second)))
	if err != nil {
		return nil, fmt.Errorf("counting HL7 messages by hour: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.HL7HourCount, error) {
		var c store.HL7HourCount
		var h string
		if err := r.Scan(&h, &c.MessageType, &c.Ack, &c.Messages, &c.Failed, &c.Reused); err != nil {
			return c, err
		}
		t, err := time.Parse("2006-01-02T15", h)
		c.Hour = t
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("counting HL7 messages by hour: %w", err)
	}
	kept := out[:0]
	for _, c := range out {
		if !c.Hour.Before(since) {
			kept = append(kept, c)
		}
	}
	return kept, nil
}

// HL7Problems implements store.HL7Stats.
func (db *DB) HL7Problems(ctx context.Context, connection string, limit int) ([]store.HL7Problem, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.query(ctx, db.Read, `SELECT seq, control_id, message_type, `+ackExpr+`, received_at, error
		FROM hl7_messages WHERE connection = ? AND error <> '' ORDER BY seq DESC LIMIT ?`, connection, limit)
	if err != nil {
		return nil, fmt.Errorf("listing refused HL7 messages: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.HL7Problem, error) {
		var p store.HL7Problem
		err := r.Scan(&p.Seq, &p.ControlID, &p.MessageType, &p.Ack, TimeDest(&p.ReceivedAt), &p.Reason)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing refused HL7 messages: %w", err)
	}
	return out, nil
}

// HL7Reused implements store.HL7Stats.
func (db *DB) HL7Reused(ctx context.Context, connection string, since time.Time, limit int) ([]store.HL7Problem, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.query(ctx, db.Read, `SELECT seq, control_id, message_type, `+ackExpr+`, received_at, error
		FROM hl7_messages WHERE connection = ? AND received_at >= ? AND reused ORDER BY seq DESC LIMIT ?`,
		connection, db.Dialect.Time(since.UTC().Add(-time.Second)), limit)
	if err != nil {
		return nil, fmt.Errorf("listing reused HL7 control ids: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.HL7Problem, error) {
		var p store.HL7Problem
		err := r.Scan(&p.Seq, &p.ControlID, &p.MessageType, &p.Ack, TimeDest(&p.ReceivedAt), &p.Reason)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing reused HL7 control ids: %w", err)
	}
	kept := out[:0]
	for _, p := range out {
		if !p.ReceivedAt.Before(since) {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// HL7Feed implements store.HL7Stats.
func (db *DB) HL7Feed(ctx context.Context, connection string) (store.HL7Feed, error) {
	var f store.HL7Feed
	// Seq follows commit order, which follows reception closely enough:
	// the newest and oldest rows by seq use the primary key.
	err := db.queryRow(ctx, db.Read, `SELECT received_at FROM hl7_messages WHERE connection = ?
		ORDER BY seq DESC LIMIT 1`, connection).Scan(TimeDest(&f.LastMessage))
	if err != nil && err != sql.ErrNoRows {
		return f, fmt.Errorf("reading HL7 feed state: %w", err)
	}
	err = db.queryRow(ctx, db.Read, `SELECT received_at FROM hl7_messages
		WHERE processed = `+db.Dialect.False+` AND error = '' AND connection = ? ORDER BY seq LIMIT 1`,
		connection).Scan(TimeDest(&f.OldestPending))
	if err != nil && err != sql.ErrNoRows {
		return f, fmt.Errorf("reading HL7 feed state: %w", err)
	}
	if err := db.queryRow(ctx, db.Read, `SELECT count(*) FROM hl7_messages
		WHERE processed = `+db.Dialect.False+` AND error = '' AND connection = ?`, connection).Scan(&f.Pending); err != nil {
		return f, fmt.Errorf("reading HL7 feed state: %w", err)
	}
	rows, err := db.query(ctx, db.Read, `SELECT received_at, processed_at FROM hl7_messages
		WHERE connection = ? AND processed ORDER BY seq DESC LIMIT ?`, connection, maxLags)
	if err != nil {
		return f, fmt.Errorf("reading HL7 conversion delays: %w", err)
	}
	lags, err := scanAll(rows, func(r *sql.Rows) (time.Duration, error) {
		var recv, done time.Time
		if err := r.Scan(TimeDest(&recv), TimeDest(&done)); err != nil {
			return 0, err
		}
		if done.IsZero() || done.Before(recv) {
			return 0, nil // converted before delays were recorded, or inline
		}
		return done.Sub(recv), nil
	})
	if err != nil {
		return f, fmt.Errorf("reading HL7 conversion delays: %w", err)
	}
	f.Lags = lags
	return f, nil
}

// ReplayHL7 implements store.HL7Stats.
func (db *DB) ReplayHL7(ctx context.Context, connection string, seq int64) error {
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		n, err := rowsAffected(db.exec(ctx, tx, `UPDATE hl7_messages SET error = '', processed = ?
			WHERE seq = ? AND connection = ? AND error <> ''`, false, seq, connection))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replaying HL7 message %d: %w", seq, err)
	}
	return nil
}

var _ store.HL7Stats = (*DB)(nil)
