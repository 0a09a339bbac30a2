package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
