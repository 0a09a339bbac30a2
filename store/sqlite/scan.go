package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"ehrgate/store"
)

const defaultScanLimit = 1000

// ScanCurrentPage implements store.PagedScanner with keyset paging over the
// resources table's primary key.
func (s *Store) ScanCurrentPage(ctx context.Context, q store.ScanQuery) ([]store.Record, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultScanLimit
	}
	query := selectRecord + ` WHERE (c.connection, c.type, c.id) > (?, ?, ?)`
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
	recs, err := s.queryRecords(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("scanning current records: %w", err)
	}
	return recs, nil
}

// RewriteNormalized implements store.NormalizedRewriter.
func (s *Store) RewriteNormalized(ctx context.Context, updates []store.NormalizedUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE resource_versions SET normalized = ?
			WHERE connection = ? AND type = ? AND id = ? AND version_id = ?`)
		if err != nil {
			return fmt.Errorf("preparing normalized rewrite: %w", err)
		}
		defer st.Close()
		for _, u := range updates {
			k := u.Key
			res, err := st.ExecContext(ctx, nullBytes(pack(u.Normalized, normalizedDictID)), k.Connection, k.Type, k.ID, k.VersionID)
			if err != nil {
				return fmt.Errorf("rewriting normalized %s/%s: %w", k.Type, k.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("rewriting normalized %s/%s: %w", k.Type, k.ID, err)
			} else if n == 0 {
				return fmt.Errorf("rewriting normalized %s/%s version %s on %s: %w", k.Type, k.ID, k.VersionID, k.Connection, store.ErrNotFound)
			}
		}
		return nil
	})
}

// Interface guards.
var (
	_ store.PagedScanner       = (*Store)(nil)
	_ store.NormalizedRewriter = (*Store)(nil)
)
