// Package sqlstore is what ehrgate's SQL store backends (store/sqlite and
// store/postgres) have in common: the store roles implemented once over
// database/sql and a schema both backends create (same tables, columns and
// keys; each backend's own column types), with the differences between the
// two databases gathered in a Dialect.
//
// A backend embeds a DB, which gives it the role methods (store.Reader,
// store.Writer, store.TokenStore, ...), and adds what is its own: opening
// and migrating the database, the write transaction (SQLite's group commit,
// PostgreSQL's retried transactions) and any faster path it has for a role
// (PostgreSQL's WriteBatch copies into a staging table). Methods a backend
// defines itself take precedence over the embedded ones.
//
// Queries are written once with "?" placeholders; a Dialect with Numbered
// set rewrites them to "$1", "$2", ... (so no query may contain a "?" that
// is not a placeholder).
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"ehrgate/store"
)

// Querier runs statements: *sql.DB, *sql.Tx and *sql.Conn are Queriers, and
// so is what Stmts.In returns.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Dialect is what differs between the SQL databases behind the shared
// queries. Its func fields are called from many goroutines at once.
type Dialect struct {
	// Numbered placeholders ($1, $2, ...) instead of "?".
	Numbered bool
	// Strpos names the function that returns the 1-based position of its
	// second argument in its first, 0 when absent (instr, strpos).
	Strpos string
	// False is the literal a boolean column holds for false (0, FALSE),
	// for conditions a partial index must recognise.
	False string
	// ForUpdate is appended to the lookup of a resource's current version
	// that a write transaction is about to change: " FOR UPDATE" where
	// write transactions run concurrently, "" where they exclude each
	// other already.
	ForUpdate string
	// Time encodes a time for a timestamp column; the zero time must
	// encode as the column's "none" (NULL, or "" where the column is
	// NOT NULL text).
	Time func(time.Time) any
	// Bodies returns a record's raw and normalized bytes in storage form
	// (nil: as they are). Raw must not come back nil.
	Bodies func(rec *store.Record) (raw, normalized []byte)
	// PackNormalized returns normalized bytes in storage form (nil: as
	// they are).
	PackNormalized func([]byte) []byte
	// Unpack returns the plain bytes of a stored body (nil: as stored).
	Unpack func([]byte) ([]byte, error)
	// Instant encodes a time for a column that is compared in time order
	// (SQLite: Unix nanoseconds; nil: the time in UTC, for timestamp
	// columns).
	Instant func(time.Time) any
	// Lock makes the calling write transaction wait until no other holds
	// key, and holds it until it ends (nil where write transactions
	// exclude each other already).
	Lock func(ctx context.Context, q Querier, key string) error
	// HourOf returns an SQL expression of the hour (UTC) of timestamp
	// column col as text "2006-01-02T15" (HL7 feed statistics).
	HourOf func(col string) string

	bound sync.Map // query -> query with numbered placeholders
}

// Bind returns query with the dialect's placeholders.
func (d *Dialect) Bind(query string) string {
	if !d.Numbered {
		return query
	}
	if b, ok := d.bound.Load(query); ok {
		return b.(string)
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	d.bound.Store(query, b.String())
	return b.String()
}

func (d *Dialect) bodies(rec *store.Record) (raw, normalized []byte) {
	if d.Bodies != nil {
		raw, normalized = d.Bodies(rec)
	} else {
		raw, normalized = rec.Raw, rec.Normalized
	}
	return NonNil(raw), normalized
}

func (d *Dialect) unpack(b []byte) ([]byte, error) {
	if d.Unpack == nil {
		return b, nil
	}
	return d.Unpack(b)
}

func (d *Dialect) lock(ctx context.Context, q Querier, key string) error {
	if d.Lock == nil {
		return nil
	}
	if err := d.Lock(ctx, q, key); err != nil {
		return fmt.Errorf("locking %s: %w", key, err)
	}
	return nil
}

// DB implements the store roles over one database in one dialect.
type DB struct {
	Dialect *Dialect
	// Read runs reads outside write transactions.
	Read Querier
	// Write runs fn in a write transaction and commits it, returning fn's
	// error as it is (errors.Is must see through it) and writing nothing
	// when fn fails. A backend may retry fn.
	Write func(ctx context.Context, fn func(ctx context.Context, tx Querier) error) error
}

// exec runs a statement bound to the dialect.
func (db *DB) exec(ctx context.Context, q Querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, db.Dialect.Bind(query), args...)
}

func (db *DB) query(ctx context.Context, q Querier, query string, args ...any) (*sql.Rows, error) {
	return q.QueryContext(ctx, db.Dialect.Bind(query), args...)
}

func (db *DB) queryRow(ctx context.Context, q Querier, query string, args ...any) *sql.Row {
	return q.QueryRowContext(ctx, db.Dialect.Bind(query), args...)
}

// scanAll reads every row of rows with scan, then closes rows.
func scanAll[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// TimeDest is a scan destination for a timestamp column of either backend:
// RFC 3339 text ("" is the zero time) or a time, NULL being the zero time.
// Times come back in UTC.
func TimeDest(t *time.Time) sql.Scanner { return timeDest{t} }

type timeDest struct{ t *time.Time }

func (d timeDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case time.Time:
		*d.t = v.UTC()
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("scanning a time from %T", src)
	}
	return nil
}

func (d timeDest) parse(s string) error {
	if s == "" {
		*d.t = time.Time{}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scanning a time: %w", err)
	}
	*d.t = t.UTC()
	return nil
}

// NonNil returns b, or an empty slice for nil (for NOT NULL blob columns).
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// nullBytes returns b as an argument that is NULL when b is nil.
func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// rowsAffected returns the count of res.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
