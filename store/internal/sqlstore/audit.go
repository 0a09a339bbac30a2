package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"ehrgate/store"
)

// The audit trail (table audit_events; store.AuditLog). AppendAudit holds
// the trail's lock (Dialect.Lock; SQLite's write transactions exclude each
// other already) from before it reads the newest entry until it commits,
// so appends from every process chain one after the other; seq is the
// primary key, so even without the lock two entries could never share a
// place. Both schemas refuse UPDATE and DELETE on the table with triggers;
// the hash chain is what shows tampering by someone who drops them.
// recorded is a Dialect.Instant value.

// auditLockKey is the lock AppendAudit holds.
const auditLockKey = "audit_events"

const auditColumns = `seq, recorded, type, subtype, action, outcome, agent, connection, patient, event, prev_hash, hash`

// The two statements of every append (prepared once: WriteQueries).
const (
	qAuditNewest = `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`
	qAuditInsert = `INSERT INTO audit_events (` + auditColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`
)

// auditVerifyPage is how many entries VerifyAudit reads at once.
const auditVerifyPage = 1000

// AppendAudit implements store.AuditLog.
func (db *DB) AppendAudit(ctx context.Context, es ...store.AuditEntry) ([]store.AuditEntry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	in := make([]store.AuditEntry, len(es))
	for i, e := range es {
		if len(e.Event) == 0 {
			return nil, errors.New("appending audit events: empty event")
		}
		e.Recorded = e.Recorded.UTC().Truncate(time.Microsecond)
		in[i] = e
	}
	var out []store.AuditEntry
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		out = out[:0] // fn may be retried
		if err := db.Dialect.lock(ctx, tx, auditLockKey); err != nil {
			return err
		}
		var seq int64
		var prev []byte
		err := db.queryRow(ctx, tx, qAuditNewest).Scan(&seq, &prev)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			seq, prev = 0, store.AuditZeroHash
		case err != nil:
			return fmt.Errorf("reading the newest audit event: %w", err)
		}
		for _, e := range in {
			seq++
			e.Seq, e.PrevHash = seq, prev
			e.Hash = store.AuditHash(prev, e)
			if _, err := db.exec(ctx, tx, qAuditInsert,
				e.Seq, db.Dialect.instant(e.Recorded), e.Type, e.Subtype, e.Action, e.Outcome, e.Agent,
				e.Connection, e.Patient, e.Event, e.PrevHash, e.Hash); err != nil {
				return err
			}
			prev = e.Hash
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("appending audit events: %w", err)
	}
	return out, nil
}

// QueryAudit implements store.AuditLog.
func (db *DB) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	add("seq>?", q.After)
	for _, f := range []struct {
		col, v string
	}{{"connection", q.Connection}, {"patient", q.Patient}, {"agent", q.Agent}, {"type", q.Type}, {"subtype", q.Subtype}} {
		if f.v != "" {
			add(f.col+"=?", f.v)
		}
	}
	if !q.Since.IsZero() {
		add("recorded>=?", db.Dialect.instant(q.Since))
	}
	if !q.Until.IsZero() {
		add("recorded<?", db.Dialect.instant(q.Until))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	rows, err := db.query(ctx, db.Read, `SELECT `+auditColumns+` FROM audit_events WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("querying audit events: %w", err)
	}
	out, err := scanAll(rows, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("querying audit events: %w", err)
	}
	return out, nil
}

func scanAudit(r *sql.Rows) (store.AuditEntry, error) {
	var e store.AuditEntry
	err := r.Scan(&e.Seq, instantDest{&e.Recorded}, &e.Type, &e.Subtype, &e.Action, &e.Outcome, &e.Agent,
		&e.Connection, &e.Patient, &e.Event, &e.PrevHash, &e.Hash)
	return e, err
}

// VerifyAudit implements store.AuditLog, reading the trail a page at a time.
func (db *DB) VerifyAudit(ctx context.Context) (store.AuditVerification, error) {
	v := store.AuditVerification{}
	prev := store.AuditZeroHash
	for {
		rows, err := db.query(ctx, db.Read, `SELECT `+auditColumns+` FROM audit_events WHERE seq>? ORDER BY seq LIMIT ?`,
			v.Last, auditVerifyPage)
		if err != nil {
			return v, fmt.Errorf("verifying the audit trail: %w", err)
		}
		page, err := scanAll(rows, scanAudit)
		if err != nil {
			return v, fmt.Errorf("verifying the audit trail: %w", err)
		}
		for _, e := range page {
			want := v.Last + 1
			switch {
			case e.Seq != want:
				v.Broken, v.Reason = want, fmt.Sprintf("entry %d is missing (the next stored is %d)", want, e.Seq)
			case !bytes.Equal(e.PrevHash, prev):
				v.Broken, v.Reason = e.Seq, "its previous hash does not match the entry before it"
			case !bytes.Equal(e.Hash, store.AuditHash(prev, e)):
				v.Broken, v.Reason = e.Seq, "its content does not match its hash"
			}
			if v.Broken != 0 {
				return v, nil
			}
			v.Entries++
			v.Last, v.Head, prev = e.Seq, e.Hash, e.Hash
		}
		if len(page) < auditVerifyPage {
			return v, nil
		}
	}
}

var _ store.AuditLog = (*DB)(nil)
