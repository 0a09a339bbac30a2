package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// Documents (table documents; store.Documents). UpdateDocument holds the
// document's lock (Dialect.Lock) from before it reads until it commits, so
// concurrent updaters of one document, in any process, run one after the
// other.

// GetDocument implements store.Documents.
func (db *DB) GetDocument(ctx context.Context, kind, name string) (store.Document, error) {
	d := store.Document{Kind: kind, Name: name}
	err := db.queryRow(ctx, db.Read, `SELECT body, updated_at FROM documents WHERE kind=? AND name=?`, kind, name).
		Scan(&d.Body, instantDest{&d.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("reading %s %q: %w", kind, name, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("reading %s %q: %w", kind, name, err)
	}
	return d, nil
}

// UpdateDocument implements store.Documents.
func (db *DB) UpdateDocument(ctx context.Context, kind, name string, fn func(old []byte) ([]byte, error)) error {
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		if err := db.Dialect.lock(ctx, tx, "document:"+kind+"/"+name); err != nil {
			return err
		}
		var old []byte
		err := db.queryRow(ctx, tx, `SELECT body FROM documents WHERE kind=? AND name=?`, kind, name).Scan(&old)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		body, err := fn(old)
		if err != nil {
			return err
		}
		_, err = db.exec(ctx, tx, `INSERT INTO documents (kind, name, body, updated_at) VALUES (?,?,?,?)
			ON CONFLICT (kind, name) DO UPDATE SET body=excluded.body, updated_at=excluded.updated_at`,
			kind, name, NonNil(body), db.Dialect.instant(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("updating %s %q: %w", kind, name, err)
	}
	return nil
}

// ListDocuments implements store.Documents.
func (db *DB) ListDocuments(ctx context.Context, kind string) ([]string, error) {
	rows, err := db.query(ctx, db.Read, `SELECT name FROM documents WHERE kind=? ORDER BY name`, kind)
	if err != nil {
		return nil, fmt.Errorf("listing %s documents: %w", kind, err)
	}
	names, err := scanAll(rows, func(r *sql.Rows) (string, error) {
		var s string
		return s, r.Scan(&s)
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s documents: %w", kind, err)
	}
	return names, nil
}

// DeleteDocument implements store.Documents.
func (db *DB) DeleteDocument(ctx context.Context, kind, name string) (bool, error) {
	var n int64
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		var err error
		n, err = rowsAffected(db.exec(ctx, tx, `DELETE FROM documents WHERE kind=? AND name=?`, kind, name))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("deleting %s %q: %w", kind, name, err)
	}
	return n > 0, nil
}

var _ store.Documents = (*DB)(nil)
