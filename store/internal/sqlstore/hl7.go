package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// The HL7 v2 message log (table hl7_messages). Seq must grow in commit
// order (readers page through the log with Seq > after), and a message's
// duplicate check reads the other messages of its identity: PutHL7 holds
// the log's lock (Dialect.Lock; where write transactions exclude each other
// that is already so) from before it reads until it commits. A lock per
// identity would let listeners on several replicas log concurrently, but a
// message could then commit after one with a higher Seq, and a reader that
// had paged past it would convert a sender's later message (a discharge)
// before its earlier one (the admission): one lock keeps conversion in
// each sender's order. (Measured on PostgreSQL: ~1,400 messages/s logged.)

// hl7LockKey is the lock PutHL7 holds.
const hl7LockKey = "hl7_messages"

// PutHL7 implements store.HL7Log.
func (db *DB) PutHL7(ctx context.Context, m store.HL7Message, recs []store.Record) (int64, error) {
	if m.Connection == "" {
		return 0, errors.New("storing HL7 message: connection is required")
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = time.Now()
	}
	if !m.Processed {
		recs, m.Events = nil, nil
	}
	if err := validateRecords(recs); err != nil {
		return 0, fmt.Errorf("storing HL7 message %s: %w", m.ControlID, err)
	}
	hash := store.HL7ContentHash(m)
	var processedAt time.Time // converted inline: at reception
	if m.Processed {
		processedAt = m.ReceivedAt
	}
	var seq int64
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		if err := db.Dialect.lock(ctx, tx, hl7LockKey); err != nil {
			return err
		}
		// The messages of this identity, and whether one has this content
		// (or no recorded content: logged before content hashes existed).
		var same, dup int
		if err := db.queryRow(ctx, tx, `SELECT count(*),
			coalesce(sum(CASE WHEN content_hash = ? OR length(content_hash) = 0 THEN 1 ELSE 0 END), 0)
			FROM hl7_messages WHERE sending_app=? AND sending_facility=? AND control_id=?`,
			hash, m.SendingApp, m.SendingFacility, m.ControlID).Scan(&same, &dup); err != nil {
			return err
		}
		if dup != 0 {
			return store.ErrDuplicateMessage
		}
		err := db.queryRow(ctx, tx, `INSERT INTO hl7_messages (connection, sending_app, sending_facility, control_id,
			content_hash, reused, message_type, raw, received_at, processed, error, ack, processed_at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (sending_app, sending_facility, control_id, content_hash) DO NOTHING
			RETURNING seq`,
			m.Connection, m.SendingApp, m.SendingFacility, m.ControlID, hash, same > 0, m.MessageType, NonNil(m.Raw),
			db.Dialect.Time(m.ReceivedAt), m.Processed, m.Error, m.Ack, db.Dialect.Time(processedAt)).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrDuplicateMessage
		}
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			if _, err := db.PutResourcesTx(ctx, tx, recs); err != nil {
				return err
			}
		}
		return db.appendEventsTx(ctx, tx, m.Events)
	})
	if err != nil {
		return 0, fmt.Errorf("storing HL7 message %s: %w", m.ControlID, err)
	}
	return seq, nil
}

// PendingHL7 implements store.HL7Log.
func (db *DB) PendingHL7(ctx context.Context, connection string, after int64, limit int) ([]store.HL7Message, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.query(ctx, db.Read, `SELECT seq, connection, sending_app, sending_facility, control_id, message_type,
		raw, received_at, processed, error, content_hash, reused, ack FROM hl7_messages
		WHERE processed = `+db.Dialect.False+` AND error = '' AND seq > ? AND (?='' OR connection=?) ORDER BY seq LIMIT ?`,
		after, connection, connection, limit)
	if err != nil {
		return nil, fmt.Errorf("listing pending HL7 messages: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.HL7Message, error) {
		var m store.HL7Message
		err := r.Scan(&m.Seq, &m.Connection, &m.SendingApp, &m.SendingFacility, &m.ControlID, &m.MessageType,
			&m.Raw, TimeDest(&m.ReceivedAt), &m.Processed, &m.Error, &m.ContentHash, &m.ReusedControlID, &m.Ack)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing pending HL7 messages: %w", err)
	}
	return out, nil
}

// CompleteHL7 implements store.HL7Log in one write transaction (one commit
// for a whole page of converted messages).
func (db *DB) CompleteHL7(ctx context.Context, done []store.HL7Completion) error {
	if len(done) == 0 {
		return nil
	}
	for _, d := range done {
		if err := validateRecords(d.Records); err != nil {
			return fmt.Errorf("completing HL7 message %d: %w", d.Seq, err)
		}
	}
	var evs []store.StoredEvent // appended last: the event log's lock is the last taken
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		evs = evs[:0] // fn may be retried
		for _, d := range done {
			var n int64
			var err error
			if d.Error != "" {
				n, err = rowsAffected(db.exec(ctx, tx, `UPDATE hl7_messages SET error=? WHERE seq=?`, d.Error, d.Seq))
			} else {
				n, err = rowsAffected(db.exec(ctx, tx, `UPDATE hl7_messages SET processed=?, error='', processed_at=? WHERE seq=?`,
					true, db.Dialect.Time(time.Now()), d.Seq))
			}
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("message %d: %w", d.Seq, store.ErrNotFound)
			}
			if d.Error == "" && len(d.Records) > 0 {
				if _, err := db.PutResourcesTx(ctx, tx, d.Records); err != nil {
					return err
				}
			}
			if d.Error == "" {
				evs = append(evs, d.Events...)
			}
		}
		return db.appendEventsTx(ctx, tx, evs)
	})
	if err != nil {
		return fmt.Errorf("completing HL7 messages: %w", err)
	}
	i := 0 // hand the positions back to each completion's events
	for _, d := range done {
		if d.Error == "" {
			for j := range d.Events {
				d.Events[j].Seq = evs[i].Seq
				i++
			}
		}
	}
	return nil
}

// HL7Counts implements store.HL7Log.
func (db *DB) HL7Counts(ctx context.Context, connection string) (store.HL7Counts, error) {
	var c store.HL7Counts
	err := db.queryRow(ctx, db.Read, `SELECT count(*),
		coalesce(sum(CASE WHEN processed THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN error <> '' THEN 1 ELSE 0 END), 0),
		coalesce(sum(CASE WHEN reused THEN 1 ELSE 0 END), 0)
		FROM hl7_messages WHERE (?='' OR connection=?)`, connection, connection).Scan(&c.Messages, &c.Processed, &c.Failed, &c.Reused)
	if err != nil {
		return c, fmt.Errorf("counting HL7 messages: %w", err)
	}
	return c, nil
}
