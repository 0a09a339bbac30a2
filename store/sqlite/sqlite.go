// Package sqlite is ehrgate's embedded store: a single SQLite database file
// (modernc.org/sqlite, pure Go, no cgo, no server) holding raw resources,
// their normalized forms, quarantine and fetch state.
//
// Lifecycle: Open creates the file if needed, applies every pending schema
// migration (versioned, embedded, run by goose) and returns a ready Store.
// Writes go through one connection (SQLite allows one writer at a time) in
// WAL mode so that readers such as the dashboard never block the sync.
// Close flushes and releases the file.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"ehrgate/store"
	"ehrgate/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// FileName is the database file Open creates inside a data directory.
const FileName = "ehrgate.db"

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use. Most roles are the code it shares with store/postgres
// (the embedded sqlstore.DB, run through the group commit); its own are
// the compressed bodies, the bulk record paths behind WriteBatch, BeginBulk
// and the pending launches.
type Store struct {
	sqlstore.DB
	path  string              // database file
	w     *sql.DB             // single writer connection
	r     *sql.DB             // pool of read connections
	reads *sqlstore.StmtCache // the shared reads, prepared on r
	stmts *sqlstore.Stmts     // the shared write statements, prepared on w
	// bulkStmts are WriteBatch's statements of the common shapes.
	bulkStmts sharedStmts

	writes     chan writeReq
	writerDone chan struct{}
	// stopOptimize stops the statistics refresher, stopCheckpoint the WAL
	// checkpointer (checkpoint.go).
	stopOptimize, stopCheckpoint func()
	closeMu                      sync.RWMutex
	closed                       bool
}

// OpenDir opens (creating if needed) the store in data directory dir.
func OpenDir(ctx context.Context, dir string) (*Store, error) {
	return openDir(ctx, dir, store.OpenOptions{})
}

func openDir(ctx context.Context, dir string, o store.OpenOptions) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if o.MustExist {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: %w (sync, serve, demo and migrate create one)", dir, store.ErrNoStore)
			}
			return nil, fmt.Errorf("opening the store in %s: %w", dir, err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	s, err := open(ctx, path, o)
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", dir, err)
	}
	return s, nil
}

func init() {
	store.Register("sqlite", func(ctx context.Context, dir string, o store.OpenOptions) (store.Backend, error) {
		return openDir(ctx, dir, o)
	})
}

// Open opens (creating if needed) the database file at path and migrates it
// to the latest schema.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, store.OpenOptions{})
}

// migrations are SQLite's schema migrations.
var migrations = sqlstore.Migrations{FS: migrationFiles, Dialect: goose.DialectSQLite3, SQL: dialect}

func open(ctx context.Context, path string, o store.OpenOptions) (*Store, error) {
	// A new database file (and the WAL and shared-memory files SQLite
	// creates beside it with the same mode) is readable by its owner only.
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	dsn := fileDSN(path)
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if !o.NoMigrate {
		if err := migrations.Migrate(ctx, w); err != nil {
			w.Close()
			return nil, err
		}
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	// Keep every reader open: a connection closed for being idle past
	// database/sql's default of two loses its prepared statements and
	// SQLite's page cache, and re-opening costs more than a query.
	r.SetMaxIdleConns(4)
	s := &Store{path: path, w: w, r: r, reads: sqlstore.NewStmtCache(r), bulkStmts: sharedStmts{db: w}}
	s.DB = sqlstore.DB{Dialect: dialect, Read: s.reads, Write: s.writeShared}
	if o.NoMigrate {
		// The schema may be behind: only the migration methods are for use.
		return s, nil
	}
	stmts, err := sqlstore.Prepare(ctx, w, dialect, sqlstore.WriteQueries(dialect)...)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s.stmts = stmts
	if err := s.startCheckpointer(dsn); err != nil {
		stmts.Close()
		w.Close()
		r.Close()
		return nil, err
	}
	s.optimize(ctx)
	s.startWriter()
	s.startOptimizer()
	return s, nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	return migrations.SchemaVersion(ctx, s.w)
}

// Migrations implements store.Migrator.
func (s *Store) Migrations(ctx context.Context) ([]store.Migration, error) {
	return migrations.Status(ctx, s.w)
}

// Migrate implements store.Migrator. A store opened without migrating must
// be closed and opened again to be used.
func (s *Store) Migrate(ctx context.Context) error {
	return migrations.Migrate(ctx, s.w)
}

// Location implements store.Migrator.
func (s *Store) Location() string { return "sqlite:" + filepath.Dir(s.path) }

// Close releases the database.
func (s *Store) Close() error {
	if s.stmts == nil { // opened without migrating: nothing started
		return errors.Join(s.reads.Close(), s.r.Close(), s.w.Close())
	}
	s.stopOptimizer()
	s.stopWriter()
	s.stopCheckpointer()
	s.bulkStmts.close()
	return errors.Join(s.stmts.Close(), s.reads.Close(), s.r.Close(), s.w.Close())
}

const timeFormat = time.RFC3339Nano

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

// dialect is SQLite's side of the queries shared with store/postgres:
// times as RFC 3339 text, bodies compressed (pack.go), and write
// transactions that exclude each other (one writer connection, BEGIN
// IMMEDIATE), so nothing to lock.
var dialect = &sqlstore.Dialect{
	Strpos:         "instr",
	False:          "0",
	Time:           func(t time.Time) any { return formatTime(t) },
	Instant:        func(t time.Time) any { return t.UnixNano() },
	Bodies:         storedBodies,
	PackNormalized: func(b []byte) []byte { return pack(b, normalizedDictID) },
	Unpack:         unpack,
	// Times are stored as RFC 3339 text in UTC: the hour is a prefix.
	HourOf: func(col string) string { return "substr(" + col + ", 1, 13)" },
}

// writeShared is the shared roles' write transaction: the group commit,
// with the prepared statements.
func (s *Store) writeShared(ctx context.Context, fn func(ctx context.Context, tx sqlstore.Querier) error) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error { return fn(ctx, s.stmts.In(tx)) })
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

var _ store.Backend = (*Store)(nil)
