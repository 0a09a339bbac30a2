package sqlstore

import (
	"context"
	"fmt"

	"ehrgate/store"
)

const defaultScanLimit = 1000

// ScanCurrentPage implements store.PagedScanner with keyset paging over the
// resources table's primary key.
func (db *DB) ScanCurrentPage(ctx context.Context, q store.ScanQuery) ([]store.Record, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultScanLimit
	}
	sel := selectRecord
	if q.RawOnly {
		sel = selectRawRecord
	}
	query := sel + ` WHERE (c.connection, c.type, c.id) > (?, ?, ?)`
	args := []any{q.After.Connection, q.After.Type, q.After.ID}
	if q.Connection != "" {
		query += ` AND c.connection = ?`
		args = append(args, q.Connection)
	}
	if q.Type != "" {
		query += ` AND c.type = ?`
		args = append(args, q.Type)
	}
	query += ` ORDER BY c.connection, c.type, c.id LIMIT ?`
	args = append(args, limit)
	recs, err := db.queryRecords(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("scanning current records: %w", err)
	}
	return recs, nil
}

// RewriteNormalized implements store.NormalizedRewriter.
func (db *DB) RewriteNormalized(ctx context.Context, updates []store.NormalizedUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	pack := db.Dialect.PackNormalized
	if pack == nil {
		pack = func(b []byte) []byte { return b }
	}
	return db.Write(ctx, func(ctx context.Context, tx Querier) error {
		for _, u := range updates {
			k := u.Key
			n, err := rowsAffected(db.exec(ctx, tx, `UPDATE resource_versions SET normalized = ?
				WHERE connection = ? AND type = ? AND id = ? AND version_id = ?`,
				nullBytes(pack(u.Normalized)), k.Connection, k.Type, k.ID, k.VersionID))
			if err != nil {
				return fmt.Errorf("rewriting normalized %s/%s: %w", k.Type, k.ID, err)
			}
			if n == 0 {
				return fmt.Errorf("rewriting normalized %s/%s version %s on %s: %w", k.Type, k.ID, k.VersionID, k.Connection, store.ErrNotFound)
			}
		}
		return nil
	})
}

// ScanCurrent implements store.CurrentScanner.
func (db *DB) ScanCurrent(ctx context.Context, fn func(store.Record) error) error {
	rows, err := db.query(ctx, db.Read, selectRecord+` ORDER BY c.connection, c.type, c.id`)
	if err != nil {
		return fmt.Errorf("scanning resources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := db.Dialect.scanRecord(rows)
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
