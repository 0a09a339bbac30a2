// Package postgres is ehrgate's PostgreSQL store, for deployments where one
// machine is not enough: several gateway processes share one database, and
// the data lives where the organisation already backs up and monitors.
//
// It implements the same store roles as the embedded SQLite store, most of
// them through the same code (store/internal/sqlstore, over database/sql
// with pgx's stdlib driver), and runs the same conformance suites
// (store/storetest) against a real PostgreSQL server in tests. Bulk ingest
// (WriteBatch) is its own: COPY into a staging table and one set-based
// merge per batch.
//
// Lifecycle: Open connects, applies pending migrations (versioned,
// embedded, run by goose) and returns a ready Store; Close releases the
// pool. Write transactions run concurrently (READ COMMITTED); writers of
// one resource are serialised by its row in resources, token updates by a
// transaction-scoped advisory lock, and a transaction that still ends in a
// deadlock or serialization failure is retried.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"ehrgate/store"
	"ehrgate/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use by many goroutines and many processes. The roles come
// from the embedded sqlstore.DB, except those this package defines.
type Store struct {
	sqlstore.DB
	pool *pgxpool.Pool
	db   *sql.DB // database/sql over pool
}

// dialect is PostgreSQL's side of the shared queries.
var dialect = &sqlstore.Dialect{
	Numbered:  true,
	Strpos:    "strpos",
	False:     "FALSE",
	ForUpdate: " FOR UPDATE",
	Time: func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UTC()
	},
	Lock: func(ctx context.Context, q sqlstore.Querier, key string) error {
		_, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key)
		return err
	},
}

// Open connects to the database named by dsn (a libpq keyword/value string
// or a postgres:// URL) and migrates it to the latest schema.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := sqlstore.Migrate(ctx, db, goose.DialectPostgres, migrations); err != nil {
		db.Close()
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, db: db}
	s.DB = sqlstore.DB{Dialect: dialect, Read: db, Write: s.write}
	return s, nil
}

// Close releases the connection pool.
func (s *Store) Close() error {
	err := s.db.Close()
	s.pool.Close()
	return err
}

// maxAttempts bounds how often a write transaction runs when PostgreSQL
// aborts it for a deadlock or a serialization failure.
const maxAttempts = 4

// write runs fn in a transaction and commits it, retrying it whole after
// a deadlock or serialization failure.
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx sqlstore.Querier) error) error {
	return retry(ctx, func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("starting transaction: %w", err)
		}
		if err := fn(ctx, tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("committing: %w", err)
		}
		return nil
	})
}

// retry runs attempt until it succeeds, fails for another reason than a
// transient conflict, or maxAttempts ran.
func retry(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || n == maxAttempts || !transient(err) || ctx.Err() != nil {
			return err
		}
	}
}

// transient reports whether err is PostgreSQL aborting a transaction that
// may succeed when run again: deadlock_detected or serialization_failure.
func transient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// Interface guards.
var (
	_ store.Store              = (*Store)(nil)
	_ store.TokenStore         = (*Store)(nil)
	_ store.PagedScanner       = (*Store)(nil)
	_ store.NormalizedRewriter = (*Store)(nil)
	_ store.BulkStore          = (*Store)(nil)
	_ store.TombstoneReader    = (*Store)(nil)
	_ store.CurrentScanner     = (*Store)(nil)
	_ store.HL7Log             = (*Store)(nil)
)
