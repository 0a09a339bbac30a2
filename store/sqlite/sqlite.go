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
	"net/url"
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
var migrations embed.FS

// FileName is the database file Open creates inside a data directory.
const FileName = "ehrgate.db"

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use. Most roles are the code it shares with store/postgres
// (the embedded sqlstore.DB, run through the group commit); its own are
// the compressed bodies, the bulk record paths behind WriteBatch, BeginBulk
// and the pending launches.
type Store struct {
	sqlstore.DB
	w     *sql.DB         // single writer connection
	r     *sql.DB         // pool of read connections
	stmts *sqlstore.Stmts // the shared write statements, prepared on w
	// bulkStmts are WriteBatch's statements of the common shapes.
	bulkStmts sharedStmts

	writes     chan writeReq
	writerDone chan struct{}
	closeMu    sync.RWMutex
	closed     bool
}

// OpenDir opens (creating if needed) the store in data directory dir.
func OpenDir(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	return Open(ctx, filepath.Join(dir, FileName))
}

// Open opens (creating if needed) the database file at path and migrates it
// to the latest schema.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + url.Values{
		"_pragma": {
			"journal_mode(WAL)",
			"synchronous(NORMAL)",
			"busy_timeout(10000)",
			"foreign_keys(ON)",
			"temp_store(MEMORY)",
		},
		"_txlock": {"immediate"},
	}.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := sqlstore.Migrate(ctx, w, goose.DialectSQLite3, migrations); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	stmts, err := sqlstore.Prepare(ctx, w, dialect, sqlstore.WriteQueries(dialect)...)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s := &Store{w: w, r: r, stmts: stmts, bulkStmts: sharedStmts{db: w}}
	s.DB = sqlstore.DB{Dialect: dialect, Read: r, Write: s.writeShared}
	s.startWriter()
	return s, nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	return sqlstore.SchemaVersion(ctx, s.w, goose.DialectSQLite3, migrations)
}

// Close releases the database.
func (s *Store) Close() error {
	s.stopWriter()
	s.bulkStmts.close()
	return errors.Join(s.stmts.Close(), s.r.Close(), s.w.Close())
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

var _ store.Store = (*Store)(nil)
