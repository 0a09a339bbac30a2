package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// OpenJobDB opens a second handle on the store's database file for the
// job queue (package jobs, over River), which runs its own transactions
// and so cannot share the store's single writer connection. It has the
// store's pragmas (WAL, busy timeout, IMMEDIATE transactions), so the
// queue's writes and the store's wait for each other's lock instead of
// failing, and one connection, as River's SQLite driver asks. The caller
// closes it after the queue has stopped; closing the Store does not.
func (s *Store) OpenJobDB(ctx context.Context) (*sql.DB, error) {
	path := s.path
	db, err := sql.Open("sqlite", fileDSN(path))
	if err != nil {
		return nil, fmt.Errorf("opening the job database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the job database %s: %w", path, err)
	}
	return db, nil
}

// fileDSN is the modernc.org/sqlite DSN of the database file at path with
// the store's pragmas, for the store's own handles and the job queue's.
func fileDSN(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + url.Values{
		"_pragma": {
			"journal_mode(WAL)",
			"synchronous(NORMAL)",
			"busy_timeout(10000)",
			"foreign_keys(ON)",
			"temp_store(MEMORY)",
			// The background checkpointer does the work (checkpoint.go);
			// a committing connection only past 64 MiB of WAL.
			"wal_autocheckpoint(16384)",
		},
		"_txlock": {"immediate"},
	}.Encode()
}
