package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// PutFunc stores records inside the write transaction tx with the
// semantics of PutResources: a backend's bulk path, or PutResourcesTx (the
// reference). recs name their resources (ValidateBatch checked).
type PutFunc func(ctx context.Context, tx Querier, recs []store.Record) ([]store.Change, error)

// ValidateBatch checks what WriteBatch requires before it writes anything.
func ValidateBatch(b store.Batch) error {
	if err := validateRecords(b.Records); err != nil {
		return err
	}
	for _, d := range b.Deletes {
		if d.Connection == "" || d.Type == "" || d.ID == "" {
			return errors.New("tombstone: connection, type and id are required")
		}
	}
	if cp := b.Checkpoint; cp != nil && (cp.Connection == "" || cp.Job == "" || cp.File == "") {
		return errors.New("checkpoint: connection, job and file are required")
	}
	return nil
}

// WriteBatchTx implements store.BatchWriter inside the write transaction
// tx, for a backend's WriteBatch: a valid batch's (ValidateBatch) records
// through put, then its quarantined lines, its deletions and its
// checkpoint.
func (db *DB) WriteBatchTx(ctx context.Context, tx Querier, b store.Batch, put PutFunc) (store.BatchResult, error) {
	var res store.BatchResult
	if len(b.Records) > 0 {
		var err error
		if res.Changes, err = put(ctx, tx, b.Records); err != nil {
			return store.BatchResult{}, err
		}
		if err := db.indexProvenance(ctx, tx, b.Records, res.Changes); err != nil {
			return store.BatchResult{}, err
		}
	}
	for _, it := range b.Quarantine {
		if err := db.quarantineTx(ctx, tx, it); err != nil {
			return store.BatchResult{}, err
		}
	}
	for _, d := range b.Deletes {
		n, err := db.deleteTx(ctx, tx, d)
		if err != nil {
			return store.BatchResult{}, err
		}
		res.Deleted += n
	}
	if cp := b.Checkpoint; cp != nil {
		if _, err := db.exec(ctx, tx, `INSERT INTO bulk_checkpoints (connection, job, file, "offset", line, done, updated_at)
			VALUES (?,?,?,?,?,?,?)
			ON CONFLICT (connection, job, file) DO UPDATE SET "offset"=excluded."offset", line=excluded.line,
			done=excluded.done, updated_at=excluded.updated_at`,
			cp.Connection, cp.Job, cp.File, cp.Offset, cp.Line, cp.Done, db.Dialect.Time(time.Now())); err != nil {
			return store.BatchResult{}, fmt.Errorf("storing checkpoint: %w", err)
		}
	}
	return res, nil
}

// deleteTx tombstones one resource: it stops being current (its row in
// resources and its patient search keys go) and every stored version
// stays. It reports 1 when a current resource was removed.
func (db *DB) deleteTx(ctx context.Context, tx Querier, d store.Tombstone) (int, error) {
	var version string
	err := db.queryRow(ctx, tx, `DELETE FROM resources WHERE connection=? AND type=? AND id=? RETURNING version_id`,
		d.Connection, d.Type, d.ID).Scan(&version)
	removed := 1
	if errors.Is(err, sql.ErrNoRows) {
		removed = 0
	} else if err != nil {
		return 0, fmt.Errorf("deleting %s/%s: %w", d.Type, d.ID, err)
	}
	if d.Type == "Provenance" {
		if err := db.unindexProvenance(ctx, tx, d.Connection, d.ID); err != nil {
			return 0, err
		}
	}
	if d.Type == "Patient" {
		if _, err := db.exec(ctx, tx, `DELETE FROM patients WHERE connection=? AND id=?`, d.Connection, d.ID); err != nil {
			return 0, fmt.Errorf("deleting patient keys %s: %w", d.ID, err)
		}
	}
	at := d.DeletedAt
	if at.IsZero() {
		at = time.Now()
	}
	if removed == 0 {
		// Already deleted (or never stored): keep the first tombstone.
		_, err = db.exec(ctx, tx, `INSERT INTO tombstones (connection, type, id, version_id, deleted_at, source)
			VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING`, d.Connection, d.Type, d.ID, "", db.Dialect.Time(at), d.Source)
	} else {
		_, err = db.exec(ctx, tx, `INSERT INTO tombstones (connection, type, id, version_id, deleted_at, source)
			VALUES (?,?,?,?,?,?) ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id,
			deleted_at=excluded.deleted_at, source=excluded.source`, d.Connection, d.Type, d.ID, version, db.Dialect.Time(at), d.Source)
	}
	if err != nil {
		return 0, fmt.Errorf("storing tombstone %s/%s: %w", d.Type, d.ID, err)
	}
	return removed, nil
}

// Checkpoints implements store.CheckpointReader.
func (db *DB) Checkpoints(ctx context.Context, connection, job string) (map[string]store.Checkpoint, error) {
	rows, err := db.query(ctx, db.Read, `SELECT file, "offset", line, done FROM bulk_checkpoints WHERE connection=? AND job=?`,
		connection, job)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	cps, err := scanAll(rows, func(r *sql.Rows) (store.Checkpoint, error) {
		cp := store.Checkpoint{Connection: connection, Job: job}
		err := r.Scan(&cp.File, &cp.Offset, &cp.Line, &cp.Done)
		return cp, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	out := make(map[string]store.Checkpoint, len(cps))
	for _, cp := range cps {
		out[cp.File] = cp
	}
	return out, nil
}

// Tombstone implements store.TombstoneReader.
func (db *DB) Tombstone(ctx context.Context, connection, typ, id string) (store.Tombstone, error) {
	t := store.Tombstone{Connection: connection, Type: typ, ID: id}
	err := db.queryRow(ctx, db.Read, `SELECT t.deleted_at, t.source FROM tombstones t
		WHERE t.connection=? AND t.type=? AND t.id=?
		AND NOT EXISTS (SELECT 1 FROM resources c WHERE c.connection=t.connection AND c.type=t.type AND c.id=t.id)`,
		connection, typ, id).Scan(TimeDest(&t.DeletedAt), &t.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Tombstone{}, fmt.Errorf("tombstone of %s/%s on %s: %w", typ, id, connection, store.ErrNotFound)
	}
	if err != nil {
		return store.Tombstone{}, fmt.Errorf("reading tombstone: %w", err)
	}
	return t, nil
}
