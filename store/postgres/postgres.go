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
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"ehrgate/store"
	"ehrgate/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are PostgreSQL's schema migrations; replicas that start at
// once take turns (advisory lock).
var migrations = sqlstore.Migrations{FS: migrationFiles, Dialect: goose.DialectPostgres, SessionLock: true, SQL: dialect}

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use by many goroutines and many processes. The roles come
// from the embedded sqlstore.DB, except those this package defines.
type Store struct {
	sqlstore.DB
	pool     *pgxpool.Pool
	db       *sql.DB // database/sql over pool
	location string  // the URL without its password
	// newKeys is whether most keys of the last bulk batch were not stored
	// yet (an initial import): the next batch then claims its keys before
	// looking any up (see putBatch).
	newKeys atomic.Bool
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
	HourOf: func(col string) string {
		return "to_char(" + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')`
	},
}

// Open connects to the database named by dsn (a libpq keyword/value string
// or a postgres:// URL) and migrates it to the latest schema.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return open(ctx, dsn, store.OpenOptions{})
}

func init() {
	store.Register("postgres", func(ctx context.Context, dsn string, o store.OpenOptions) (store.Backend, error) {
		return open(ctx, dsn, o)
	})
}

// minPoolConns is the least pool size unless the URL sets pool_max_conns.
const minPoolConns = 20

func open(ctx context.Context, dsn string, o store.OpenOptions) (*Store, error) {
	where := store.Redact(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", where, err)
	}
	if !strings.Contains(dsn, "pool_max_conns") && cfg.MaxConns < minPoolConns {
		// pgx sizes the pool by CPUs (4 here); the job queue holds one
		// connection for LISTEN and a sync's workers write concurrently.
		cfg.MaxConns = minPoolConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", where, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	s := &Store{pool: pool, db: db, location: where}
	s.DB = sqlstore.DB{Dialect: dialect, Read: db, Write: s.write}
	if o.MustExist {
		var exists bool
		if err := db.QueryRowContext(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
			s.Close()
			return nil, fmt.Errorf("checking for the schema at %s: %w", where, err)
		}
		if !exists {
			s.Close()
			return nil, fmt.Errorf("%s: %w (ehrgate migrate --store URL creates the schema)", where, store.ErrNoStore)
		}
	}
	if !o.NoMigrate {
		if err := migrations.Migrate(ctx, db); err != nil {
			s.Close()
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return s, nil
}

// Migrations implements store.Migrator.
func (s *Store) Migrations(ctx context.Context) ([]store.Migration, error) {
	return migrations.Status(ctx, s.db)
}

// Migrate implements store.Migrator.
func (s *Store) Migrate(ctx context.Context) error { return migrations.Migrate(ctx, s.db) }

// Location implements store.Migrator: the URL without its password.
func (s *Store) Location() string { return s.location }

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
	_ store.Backend = (*Store)(nil)
)
