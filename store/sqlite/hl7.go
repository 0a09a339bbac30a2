package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// The HL7 v2 message log. PutHL7 and CompleteHL7 go through the group
// commit (writer.go): many listener connections storing at once share one
// transaction and one fsync, each message under its own savepoint, which is
// what lets the MLLP listener acknowledge only after commit and still take
// thousands of messages a second.

const insertHL7 = `INSERT INTO hl7_messages
	(connection, sending_app, sending_facility, control_id, content_hash, reused, message_type, raw, received_at, processed, error)
	VALUES (?,?,?,?,?,?,?,?,?,?,?)
	ON CONFLICT (sending_app, sending_facility, control_id, content_hash) DO NOTHING`

// sameIdentity counts the logged messages with a message's identity and
// says whether one of them has its content (or no recorded content).
const sameIdentity = `SELECT count(*), coalesce(max(content_hash = ? OR length(content_hash) = 0), 0)
	FROM hl7_messages WHERE sending_app=? AND sending_facility=? AND control_id=?`

// PutHL7 implements store.HL7Log.
func (s *Store) PutHL7(ctx context.Context, m store.HL7Message, recs []store.Record) (int64, error) {
	if m.Connection == "" {
		return 0, errors.New("storing HL7 message: connection is required")
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = time.Now()
	}
	raw := m.Raw
	if raw == nil {
		raw = []byte{}
	}
	if !m.Processed {
		recs = nil
	}
	for i := range recs {
		if recs[i].Connection == "" || recs[i].Type == "" || recs[i].ID == "" {
			return 0, fmt.Errorf("storing HL7 message %s: record %d: connection, type and id are required", m.ControlID, i)
		}
	}
	hash := store.HL7ContentHash(m)
	var seq int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// The writer is the only one (and the group commit serialises
		// transactions), so this check and the insert are atomic.
		var same, dup int
		if err := tx.QueryRowContext(ctx, sameIdentity, hash, m.SendingApp, m.SendingFacility, m.ControlID).Scan(&same, &dup); err != nil {
			return err
		}
		if dup != 0 {
			return store.ErrDuplicateMessage
		}
		res, err := tx.ExecContext(ctx, insertHL7, m.Connection, m.SendingApp, m.SendingFacility, m.ControlID,
			hash, boolInt(same > 0), m.MessageType, raw, formatTime(m.ReceivedAt), boolInt(m.Processed), m.Error)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrDuplicateMessage
		}
		if seq, err = res.LastInsertId(); err != nil {
			return err
		}
		if len(recs) > 0 {
			if _, err := s.putResources(ctx, tx, recs); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrDuplicateMessage) {
		return 0, fmt.Errorf("storing HL7 message %s: %w", m.ControlID, err)
	}
	if err != nil {
		return 0, fmt.Errorf("storing HL7 message %s: %w", m.ControlID, err)
	}
	return seq, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PendingHL7 implements store.HL7Log.
func (s *Store) PendingHL7(ctx context.Context, connection string, after int64, limit int) ([]store.HL7Message, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, connection, sending_app, sending_facility, control_id, message_type,
		raw, received_at, processed, error, content_hash, reused FROM hl7_messages
		WHERE processed=0 AND error='' AND seq>? AND (?='' OR connection=?) ORDER BY seq LIMIT ?`,
		after, connection, connection, limit)
	if err != nil {
		return nil, fmt.Errorf("listing pending HL7 messages: %w", err)
	}
	defer rows.Close()
	var out []store.HL7Message
	for rows.Next() {
		var m store.HL7Message
		var at string
		var processed, reused int
		if err := rows.Scan(&m.Seq, &m.Connection, &m.SendingApp, &m.SendingFacility, &m.ControlID, &m.MessageType,
			&m.Raw, &at, &processed, &m.Error, &m.ContentHash, &reused); err != nil {
			return nil, fmt.Errorf("listing pending HL7 messages: %w", err)
		}
		m.ReceivedAt = parseTime(at)
		m.Processed = processed != 0
		m.ReusedControlID = reused != 0
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing pending HL7 messages: %w", err)
	}
	return out, nil
}

// CompleteHL7 implements store.HL7Log. One call is one transaction (one
// commit for a whole page of converted messages).
func (s *Store) CompleteHL7(ctx context.Context, done []store.HL7Completion) error {
	if len(done) == 0 {
		return nil
	}
	for _, d := range done {
		for i := range d.Records {
			if r := &d.Records[i]; r.Connection == "" || r.Type == "" || r.ID == "" {
				return fmt.Errorf("completing HL7 message %d: record %d: connection, type and id are required", d.Seq, i)
			}
		}
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, d := range done {
			var res sql.Result
			var err error
			if d.Error != "" {
				res, err = tx.ExecContext(ctx, `UPDATE hl7_messages SET error=? WHERE seq=?`, d.Error, d.Seq)
			} else {
				res, err = tx.ExecContext(ctx, `UPDATE hl7_messages SET processed=1, error='' WHERE seq=?`, d.Seq)
			}
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return fmt.Errorf("message %d: %w", d.Seq, store.ErrNotFound)
			}
			if d.Error == "" && len(d.Records) > 0 {
				if _, err := s.putResources(ctx, tx, d.Records); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("completing HL7 messages: %w", err)
	}
	return nil
}

// HL7Counts implements store.HL7Log.
func (s *Store) HL7Counts(ctx context.Context, connection string) (store.HL7Counts, error) {
	var c store.HL7Counts
	err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(processed),0), coalesce(sum(error<>''),0), coalesce(sum(reused),0)
		FROM hl7_messages WHERE (?='' OR connection=?)`, connection, connection).Scan(&c.Messages, &c.Processed, &c.Failed, &c.Reused)
	if err != nil {
		return c, fmt.Errorf("counting HL7 messages: %w", err)
	}
	return c, nil
}

var _ store.HL7Log = (*Store)(nil)
