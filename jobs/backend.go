package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// NewPostgres returns a queue on the PostgreSQL database behind pool, the
// store's own pool (store/postgres Store.Pool). River's tables go in the
// schema the pool's search_path selects, beside ehrgate's. Workers wake
// up on LISTEN/NOTIFY, which holds one of the pool's connections while
// the queue runs; size the pool for the store's use plus the queue's
// (a few connections, and one per concurrently finishing job at most).
func NewPostgres(pool *pgxpool.Pool, opts Options) (*Queue, error) {
	if pool == nil {
		return nil, errors.New("job queue: no PostgreSQL pool")
	}
	d := riverpgxv5.New(pool)
	return newQueue(backend{
		name:      "PostgreSQL",
		newClient: func(cfg *river.Config) (client, error) { return river.NewClient(d, cfg) },
		migrate: func(ctx context.Context, logger *slog.Logger) error {
			m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: logger})
			if err != nil {
				return err
			}
			// Replicas starting together migrate one after the other: a
			// session lock on a connection of its own, since each version
			// runs in its own transaction (PostgreSQL cannot use an enum
			// value added in the same transaction, and River's versions
			// do).
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return fmt.Errorf("locking: %w", err)
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
				return fmt.Errorf("locking: %w", err)
			}
			defer func() {
				// A lock left by a failed unlock goes with the connection.
				if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey); err != nil {
					conn.Conn().Close(context.WithoutCancel(ctx))
				}
			}()
			_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
			return err
		},
		versions: func(ctx context.Context, logger *slog.Logger) (int, int, error) {
			return versions(ctx, d, logger)
		},
		hasTables: func(ctx context.Context) (bool, error) {
			var ok bool
			err := pool.QueryRow(ctx, `SELECT to_regclass('river_job') IS NOT NULL`).Scan(&ok)
			return ok, err
		},
		counts: func(ctx context.Context) (map[State]int, error) {
			rows, err := pool.Query(ctx, countsQuery)
			if err != nil {
				return nil, err
			}
			out := map[State]int{}
			var state string
			var n int
			_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
				out[State(state)] = n
				return nil
			})
			return out, err
		},
	}, opts)
}

// NewSQLite returns a queue in the SQLite database db, which must be a
// handle of its own on the store's file (store/sqlite Store.OpenJobDB),
// not the store's writer: River runs its own transactions. db must be in
// WAL mode with a busy timeout and begin its transactions IMMEDIATE
// (`_txlock=immediate` with modernc.org/sqlite), so that River's writers
// and the store's wait for each other instead of failing; NewSQLite limits
// it to one open connection, as River's SQLite driver asks. Without
// LISTEN/NOTIFY, workers learn of new jobs from a table River polls every
// 50 ms.
func NewSQLite(db *sql.DB, opts Options) (*Queue, error) {
	if db == nil {
		return nil, errors.New("job queue: no SQLite database")
	}
	db.SetMaxOpenConns(1)
	d := riversqlite.New(db)
	return newQueue(backend{
		name:      "SQLite",
		newClient: func(cfg *river.Config) (client, error) { return river.NewClient(d, cfg) },
		migrate: func(ctx context.Context, logger *slog.Logger) error {
			m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: logger})
			if err != nil {
				return err
			}
			// One IMMEDIATE transaction: processes migrating at once wait
			// for each other's write lock.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
			if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
				return err
			}
			return tx.Commit()
		},
		versions: func(ctx context.Context, logger *slog.Logger) (int, int, error) {
			return versions(ctx, d, logger)
		},
		hasTables: func(ctx context.Context) (bool, error) {
			var n int
			err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'river_job'`).Scan(&n)
			return n > 0, err
		},
		counts: func(ctx context.Context) (map[State]int, error) {
			rows, err := db.QueryContext(ctx, countsQuery)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			out := map[State]int{}
			for rows.Next() {
				var state string
				var n int
				if err := rows.Scan(&state, &n); err != nil {
					return nil, err
				}
				out[State(state)] = n
			}
			return out, rows.Err()
		},
	}, opts)
}

// migrateLockKey is the PostgreSQL advisory lock Migrate holds: "ehrgjobs"
// in ASCII, apart from the store's own keys.
const migrateLockKey int64 = 0x6568_7267_6a6f_6273

// versions returns the applied and the latest River migration versions.
func versions[TTx any](ctx context.Context, d riverdriver.Driver[TTx], logger *slog.Logger) (applied, latest int, err error) {
	m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: logger})
	if err != nil {
		return 0, 0, err
	}
	all := m.AllVersions()
	if len(all) > 0 {
		latest = all[len(all)-1].Version
	}
	have, err := m.ExistingVersions(ctx)
	if err != nil {
		return 0, latest, err
	}
	if len(have) > 0 {
		applied = have[len(have)-1].Version
	}
	return applied, latest, nil
}

// Interface guards.
var (
	_ client = (*river.Client[pgx.Tx])(nil)
	_ client = (*river.Client[*sql.Tx])(nil)
)
