package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Stmts are statements prepared once on a database and run in its
// transactions: for a driver that does not cache prepared statements
// itself (modernc.org/sqlite; pgx does), parsing a statement per record
// costs more than running it.
type Stmts struct {
	m map[string]*sql.Stmt // by query as the shared code writes it
}

// Prepare prepares queries (written with "?", bound to d) on db. With
// SQLite it must run outside any transaction: the writer pool has a single
// connection, which a transaction holds.
func Prepare(ctx context.Context, db *sql.DB, d *Dialect, queries ...string) (*Stmts, error) {
	s := &Stmts{m: make(map[string]*sql.Stmt, len(queries))}
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, d.Bind(q))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("preparing statement: %w", err)
		}
		s.m[d.Bind(q)] = st
	}
	return s, nil
}

// Close releases the statements.
func (s *Stmts) Close() error {
	var errs []error
	for _, st := range s.m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// In returns a Querier that runs the prepared statements within tx (each
// bound to tx once) and every other query on tx directly.
func (s *Stmts) In(tx *sql.Tx) Querier {
	return &txStmts{tx: tx, s: s}
}

type txStmts struct {
	tx    *sql.Tx
	s     *Stmts
	bound map[*sql.Stmt]*sql.Stmt
}

func (t *txStmts) stmt(ctx context.Context, query string) *sql.Stmt {
	st := t.s.m[query]
	if st == nil {
		return nil
	}
	if b := t.bound[st]; b != nil {
		return b
	}
	if t.bound == nil {
		t.bound = map[*sql.Stmt]*sql.Stmt{}
	}
	b := t.tx.StmtContext(ctx, st)
	t.bound[st] = b
	return b
}

func (t *txStmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *txStmts) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *txStmts) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// StmtCache is a Querier over a database that prepares each distinct
// query the first time it runs and reuses the statement after (database/sql
// prepares it again on each pooled connection as needed). For drivers
// that do not cache statements themselves (modernc.org/sqlite), it spares
// reads like Get a parse per call. At most maxCached queries are kept;
// others run unprepared.
type StmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

// maxCached bounds StmtCache (queries built with variable IN lists would
// otherwise grow it without bound).
const maxCached = 256

// NewStmtCache returns a StmtCache over db.
func NewStmtCache(db *sql.DB) *StmtCache {
	return &StmtCache{db: db, m: map[string]*sql.Stmt{}}
}

func (c *StmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	st, ok := c.m[query]
	full := len(c.m) >= maxCached
	c.mu.RUnlock()
	if ok || full {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil // run unprepared: the query reports its own error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[query]; ok {
		st.Close()
		return old
	}
	c.m[query] = st
	return st
}

// ExecContext implements Querier.
func (c *StmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.db.ExecContext(ctx, query, args...)
}

// QueryContext implements Querier.
func (c *StmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

// QueryRowContext implements Querier.
func (c *StmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// Close releases the statements.
func (c *StmtCache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = map[string]*sql.Stmt{}
	return errors.Join(errs...)
}
