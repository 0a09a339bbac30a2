package sqlstore

import (
	"context"
	"database/sql"
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
	if q.Type != "" {
		return db.scanType(ctx, sel, q, limit)
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

// scanType pages through one type, connection by connection. A type
// filter beside the row-value range made SQLite read every key after the
// cursor and sort them for each page (300 ms a page, quadratic over an
// export of a 10,000-patient store); seeking within a connection
// (connection = ? AND type = ? AND id > ?) reads only the page, and the
// next connection is one more seek.
func (db *DB) scanType(ctx context.Context, sel string, q store.ScanQuery, limit int) ([]store.Record, error) {
	conn, after := q.After.Connection, q.After.ID
	pastConn := false // the cursor is past this type's rows of its connection
	switch {
	case q.After.Type < q.Type:
		after = "" // the cursor is before this type's rows of its connection
	case q.After.Type > q.Type:
		after, pastConn = "", true
	}
	if q.Connection != "" {
		switch {
		case conn < q.Connection:
			conn, after = q.Connection, ""
		case conn > q.Connection || pastConn:
			return nil, nil
		}
	} else if after == "" {
		// Start at the first connection at (or, past it, after) conn.
		next, ok, err := db.nextConnection(ctx, conn, !pastConn)
		if err != nil || !ok {
			return nil, err
		}
		conn = next
	}
	var out []store.Record
	for {
		recs, err := db.queryRecords(ctx, sel+` WHERE c.connection = ? AND c.type = ? AND c.id > ? ORDER BY c.id LIMIT ?`,
			conn, q.Type, after, limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("scanning current records: %w", err)
		}
		out = append(out, recs...)
		if len(out) >= limit || q.Connection != "" {
			return out, nil
		}
		next, ok, err := db.nextConnection(ctx, conn, false)
		if err != nil || !ok {
			return out, err
		}
		conn, after = next, ""
	}
}

// nextConnection returns the first connection holding resources after
// (or at, with inclusive) conn.
func (db *DB) nextConnection(ctx context.Context, conn string, inclusive bool) (string, bool, error) {
	op := ">"
	if inclusive {
		op = ">="
	}
	var next sql.NullString
	if err := db.queryRow(ctx, db.Read, `SELECT MIN(connection) FROM resources WHERE connection `+op+` ?`, conn).Scan(&next); err != nil {
		return "", false, fmt.Errorf("finding the next connection: %w", err)
	}
	return next.String, next.Valid, nil
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
