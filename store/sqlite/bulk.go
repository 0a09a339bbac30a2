package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"ehrgate/store"
)

// WriteBatch implements store.BatchWriter: records, quarantined lines,
// deletions and the checkpoint of one bulk batch in one transaction.
//
// Records are upserted with the same semantics as PutResources (identical
// bytes change nothing; a new version or new bytes under an old versionId
// are kept beside the earlier ones) but through a faster path: the version
// row is inserted first and the version lookup runs only when that insert
// hits an existing row, which a first ingest never does.
func (s *Store) WriteBatch(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	var res store.BatchResult
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("starting batch: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op

	if len(b.Records) > 0 {
		res.Changes, err = putFast(ctx, tx, b.Records)
		if err != nil {
			return store.BatchResult{}, err
		}
	}
	if len(b.Quarantine) > 0 {
		q, err := tx.PrepareContext(ctx, `INSERT INTO quarantine (connection, type, resource_id, source, reason, raw, received_at)
			VALUES (?,?,?,?,?,?,?)`)
		if err != nil {
			return store.BatchResult{}, fmt.Errorf("preparing quarantine: %w", err)
		}
		defer q.Close()
		for _, it := range b.Quarantine {
			raw := it.Raw
			if raw == nil {
				raw = []byte{}
			}
			if it.ReceivedAt.IsZero() {
				it.ReceivedAt = time.Now()
			}
			if _, err := q.ExecContext(ctx, it.Connection, it.Type, it.ResourceID, it.Source, it.Reason, raw,
				formatTime(it.ReceivedAt)); err != nil {
				return store.BatchResult{}, fmt.Errorf("quarantining input: %w", err)
			}
		}
	}
	for _, d := range b.Deletes {
		n, err := applyDelete(ctx, tx, d)
		if err != nil {
			return store.BatchResult{}, err
		}
		res.Deleted += n
	}
	if cp := b.Checkpoint; cp != nil {
		if cp.Connection == "" || cp.Job == "" || cp.File == "" {
			return store.BatchResult{}, errors.New("checkpoint: connection, job and file are required")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO bulk_checkpoints (connection, job, file, offset, line, done, updated_at)
			VALUES (?,?,?,?,?,?,?)
			ON CONFLICT (connection, job, file) DO UPDATE SET offset=excluded.offset, line=excluded.line,
			done=excluded.done, updated_at=excluded.updated_at`,
			cp.Connection, cp.Job, cp.File, cp.Offset, cp.Line, cp.Done, formatTime(time.Now())); err != nil {
			return store.BatchResult{}, fmt.Errorf("storing checkpoint: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return store.BatchResult{}, fmt.Errorf("committing batch: %w", err)
	}
	return res, nil
}

// putFast is the bulk upsert behind WriteBatch.
func putFast(ctx context.Context, tx *sql.Tx, recs []store.Record) ([]store.Change, error) {
	cur, err := tx.PrepareContext(ctx, `SELECT version_id, hash FROM resources WHERE connection=? AND type=? AND id=?`)
	if err != nil {
		return nil, fmt.Errorf("preparing lookup: %w", err)
	}
	defer cur.Close()
	verHash, err := tx.PrepareContext(ctx, `SELECT hash FROM resource_versions WHERE connection=? AND type=? AND id=? AND version_id=?`)
	if err != nil {
		return nil, fmt.Errorf("preparing version lookup: %w", err)
	}
	defer verHash.Close()
	insVer, err := tx.PrepareContext(ctx, `INSERT INTO resource_versions
		(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (connection, type, id, version_id) DO NOTHING`)
	if err != nil {
		return nil, fmt.Errorf("preparing insert: %w", err)
	}
	defer insVer.Close()
	upCur, err := tx.PrepareContext(ctx, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id)
		VALUES (?,?,?,?,?,?)
		ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id, hash=excluded.hash, patient_id=excluded.patient_id`)
	if err != nil {
		return nil, fmt.Errorf("preparing current upsert: %w", err)
	}
	defer upCur.Close()
	upPat, err := tx.PrepareContext(ctx, `INSERT INTO patients (connection, id, search, birth_date) VALUES (?,?,?,?)
		ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date`)
	if err != nil {
		return nil, fmt.Errorf("preparing patient upsert: %w", err)
	}
	defer upPat.Close()

	changes := make([]store.Change, len(recs))
	for i := range recs {
		rec := &recs[i]
		if rec.Connection == "" || rec.Type == "" || rec.ID == "" {
			return nil, fmt.Errorf("record %d: connection, type and id are required", i)
		}
		sum := sha256.Sum256(rec.Raw)
		hash := sum[:]
		version := bulkVersion(rec.VersionID, hash)

		var curVersion string
		var curHash []byte
		err := cur.QueryRowContext(ctx, rec.Connection, rec.Type, rec.ID).Scan(&curVersion, &curHash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			changes[i] = store.New
		case err != nil:
			return nil, fmt.Errorf("looking up %s/%s: %w", rec.Type, rec.ID, err)
		case bytes.Equal(curHash, hash):
			changes[i] = store.Unchanged
			continue
		default:
			changes[i] = store.Updated
		}
		lu, fa := formatTime(rec.LastUpdated), formatTime(rec.FetchedAt)
		r, err := insVer.ExecContext(ctx, rec.Connection, rec.Type, rec.ID, version, rec.PatientID, hash,
			rec.Raw, nullBytes(rec.Normalized), lu, fa, rec.Source)
		if err != nil {
			return nil, fmt.Errorf("storing %s/%s: %w", rec.Type, rec.ID, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			// The version row exists: same bytes (a resource coming back
			// after a tombstone) or a server that changed a resource without
			// bumping versionId, whose bytes are kept under a suffixed version.
			var oldHash []byte
			if err := verHash.QueryRowContext(ctx, rec.Connection, rec.Type, rec.ID, version).Scan(&oldHash); err != nil {
				return nil, fmt.Errorf("looking up version of %s/%s: %w", rec.Type, rec.ID, err)
			}
			if !bytes.Equal(oldHash, hash) {
				version += "~" + hex.EncodeToString(hash[:6])
				if _, err := insVer.ExecContext(ctx, rec.Connection, rec.Type, rec.ID, version, rec.PatientID, hash,
					rec.Raw, nullBytes(rec.Normalized), lu, fa, rec.Source); err != nil {
					return nil, fmt.Errorf("storing %s/%s: %w", rec.Type, rec.ID, err)
				}
			}
		}
		if _, err := upCur.ExecContext(ctx, rec.Connection, rec.Type, rec.ID, version, hash, rec.PatientID); err != nil {
			return nil, fmt.Errorf("updating current %s/%s: %w", rec.Type, rec.ID, err)
		}
		if rec.Patient != nil {
			if _, err := upPat.ExecContext(ctx, rec.Connection, rec.ID, bulkSearchText(rec.Patient), rec.Patient.BirthDate); err != nil {
				return nil, fmt.Errorf("indexing patient %s: %w", rec.ID, err)
			}
		}
	}
	return changes, nil
}

// bulkVersion is the version key a record is stored under: its
// meta.versionId, or a content-hash key when the server sent none. It must
// match what PutResources uses.
func bulkVersion(versionID string, hash []byte) string {
	if versionID != "" {
		return versionID
	}
	return "h:" + hex.EncodeToString(hash[:8])
}

// bulkSearchText is the patient search haystack; it must match what
// PutResources stores.
func bulkSearchText(k *store.PatientKeys) string {
	parts := make([]string, 0, len(k.Names)+len(k.MRNs))
	for _, n := range k.Names {
		parts = append(parts, strings.ToLower(n))
	}
	for _, m := range k.MRNs {
		parts = append(parts, strings.ToLower(m))
	}
	return "\x1f" + strings.Join(parts, "\x1f") + "\x1f"
}

// applyDelete tombstones one resource: it stops being current (its row in
// resources and its patient search keys go) and every stored version stays.
// It reports 1 when a current resource was removed.
func applyDelete(ctx context.Context, tx *sql.Tx, d store.Tombstone) (int, error) {
	if d.Connection == "" || d.Type == "" || d.ID == "" {
		return 0, errors.New("tombstone: connection, type and id are required")
	}
	var version string
	err := tx.QueryRowContext(ctx, `DELETE FROM resources WHERE connection=? AND type=? AND id=? RETURNING version_id`,
		d.Connection, d.Type, d.ID).Scan(&version)
	removed := 1
	if errors.Is(err, sql.ErrNoRows) {
		removed = 0
	} else if err != nil {
		return 0, fmt.Errorf("deleting %s/%s: %w", d.Type, d.ID, err)
	}
	if d.Type == "Patient" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM patients WHERE connection=? AND id=?`, d.Connection, d.ID); err != nil {
			return 0, fmt.Errorf("deleting patient keys %s: %w", d.ID, err)
		}
	}
	at := d.DeletedAt
	if at.IsZero() {
		at = time.Now()
	}
	if removed == 0 {
		// Already deleted (or never stored): keep the first tombstone.
		_, err = tx.ExecContext(ctx, `INSERT INTO tombstones (connection, type, id, version_id, deleted_at, source)
			VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING`, d.Connection, d.Type, d.ID, "", formatTime(at), d.Source)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO tombstones (connection, type, id, version_id, deleted_at, source)
			VALUES (?,?,?,?,?,?) ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id,
			deleted_at=excluded.deleted_at, source=excluded.source`, d.Connection, d.Type, d.ID, version, formatTime(at), d.Source)
	}
	if err != nil {
		return 0, fmt.Errorf("storing tombstone %s/%s: %w", d.Type, d.ID, err)
	}
	return removed, nil
}

// Checkpoints implements store.CheckpointReader.
func (s *Store) Checkpoints(ctx context.Context, connection, job string) (map[string]store.Checkpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT file, offset, line, done FROM bulk_checkpoints WHERE connection=? AND job=?`,
		connection, job)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	defer rows.Close()
	out := map[string]store.Checkpoint{}
	for rows.Next() {
		cp := store.Checkpoint{Connection: connection, Job: job}
		if err := rows.Scan(&cp.File, &cp.Offset, &cp.Line, &cp.Done); err != nil {
			return nil, fmt.Errorf("reading checkpoints: %w", err)
		}
		out[cp.File] = cp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading checkpoints: %w", err)
	}
	return out, nil
}

// LastExport implements store.ExportState.
func (s *Store) LastExport(ctx context.Context, connection, scope string) (time.Time, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT transaction_time FROM bulk_exports WHERE connection=? AND scope=?`,
		connection, scope).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading last export: %w", err)
	}
	return parseTime(v), nil
}

// SetLastExport implements store.ExportState.
func (s *Store) SetLastExport(ctx context.Context, connection, scope string, t time.Time) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO bulk_exports (connection, scope, transaction_time) VALUES (?,?,?)
		ON CONFLICT (connection, scope) DO UPDATE SET transaction_time=excluded.transaction_time`,
		connection, scope, formatTime(t)); err != nil {
		return fmt.Errorf("storing last export: %w", err)
	}
	return nil
}

// Tombstone implements store.TombstoneReader.
func (s *Store) Tombstone(ctx context.Context, connection, typ, id string) (store.Tombstone, error) {
	t := store.Tombstone{Connection: connection, Type: typ, ID: id}
	var at string
	err := s.r.QueryRowContext(ctx, `SELECT t.deleted_at, t.source FROM tombstones t
		WHERE t.connection=? AND t.type=? AND t.id=?
		AND NOT EXISTS (SELECT 1 FROM resources c WHERE c.connection=t.connection AND c.type=t.type AND c.id=t.id)`,
		connection, typ, id).Scan(&at, &t.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Tombstone{}, fmt.Errorf("tombstone of %s/%s on %s: %w", typ, id, connection, store.ErrNotFound)
	}
	if err != nil {
		return store.Tombstone{}, fmt.Errorf("reading tombstone: %w", err)
	}
	t.DeletedAt = parseTime(at)
	return t, nil
}

// ScanCurrent implements store.CurrentScanner.
func (s *Store) ScanCurrent(ctx context.Context, fn func(store.Record) error) error {
	rows, err := s.r.QueryContext(ctx, selectRecord+` ORDER BY c.connection, c.type, c.id`)
	if err != nil {
		return fmt.Errorf("scanning resources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("scanning resources: %w", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scanning resources: %w", err)
	}
	return nil
}

var (
	_ store.BulkStore       = (*Store)(nil)
	_ store.TombstoneReader = (*Store)(nil)
	_ store.CurrentScanner  = (*Store)(nil)
)
