package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// Pending SMART launches (table pending_launches; store.PendingLaunches).
// The total bound reads the row count that triggers keep in
// pending_launch_count and purges expired rows only when that count is at
// the bound, so no put counts the table. PutLaunch holds the launches' lock
// (Dialect.Lock; SQLite's write transactions exclude each other already)
// from before it counts until it commits, so the limits hold exactly across
// processes; TakeLaunch is one DELETE ... RETURNING, which only one
// transaction completes for a row. Times are stored as Dialect.Instant
// values, which compare in time order.

// launchLockKey is the lock PutLaunch holds.
const launchLockKey = "pending_launches"

const launchColumns = `launch_key, connection, client_addr, kek_id, wrapped_key, ciphertext, created_at, expires_at`

func (d *Dialect) instant(t time.Time) any {
	if d.Instant != nil {
		return d.Instant(t)
	}
	return t.UTC()
}

// instantDest scans what Dialect.Instant stored: Unix nanoseconds or a time.
type instantDest struct{ t *time.Time }

func (d instantDest) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*d.t = time.Unix(0, v).UTC()
	case time.Time:
		*d.t = v.UTC()
	default:
		return fmt.Errorf("scanning an instant from %T", src)
	}
	return nil
}

// PutLaunch implements store.PendingLaunches.
func (db *DB) PutLaunch(ctx context.Context, p store.PendingLaunch, lim store.LaunchLimits) error {
	now := db.Dialect.instant(p.CreatedAt)
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		if err := db.Dialect.lock(ctx, tx, launchLockKey); err != nil {
			return err
		}
		if lim.PerAddress > 0 {
			var n int
			if err := db.queryRow(ctx, tx, `SELECT count(*) FROM pending_launches WHERE client_addr=? AND expires_at>?`,
				p.ClientAddr, now).Scan(&n); err != nil {
				return fmt.Errorf("counting launches from the address: %w", err)
			}
			if n >= lim.PerAddress {
				return store.ErrTooManyFromAddress
			}
		}
		if lim.Total > 0 {
			if err := db.launchesBelow(ctx, tx, now, lim.Total); err != nil {
				return err
			}
		}
		n, err := rowsAffected(db.exec(ctx, tx, `INSERT INTO pending_launches (`+launchColumns+`) VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT (launch_key) DO NOTHING`,
			p.Key, p.Connection, p.ClientAddr, p.Sealed.KEKID, NonNil(p.Sealed.WrappedKey), NonNil(p.Sealed.Ciphertext),
			now, db.Dialect.instant(p.ExpiresAt)))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrDuplicateKey
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing pending launch: %w", err)
	}
	return nil
}

// launchesBelow returns ErrTooManyLaunches unless fewer than total launches
// are live at now: it reads the kept row count and, only when that is at
// the bound, purges what expired and reads it again.
func (db *DB) launchesBelow(ctx context.Context, tx Querier, now any, total int) error {
	count := func() (int, error) {
		var n int
		if err := db.queryRow(ctx, tx, `SELECT n FROM pending_launch_count WHERE id=1`).Scan(&n); err != nil {
			return 0, fmt.Errorf("counting launches: %w", err)
		}
		return n, nil
	}
	n, err := count()
	if err != nil || n < total {
		return err
	}
	if _, err := db.exec(ctx, tx, `DELETE FROM pending_launches WHERE expires_at<=?`, now); err != nil {
		return fmt.Errorf("purging expired launches: %w", err)
	}
	if n, err = count(); err != nil || n < total {
		return err
	}
	return store.ErrTooManyLaunches
}

// TakeLaunch implements store.PendingLaunches with one DELETE ... RETURNING.
func (db *DB) TakeLaunch(ctx context.Context, key string, now time.Time) (store.PendingLaunch, error) {
	var p store.PendingLaunch
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		return db.queryRow(ctx, tx, `DELETE FROM pending_launches WHERE launch_key=? RETURNING `+launchColumns, key).
			Scan(&p.Key, &p.Connection, &p.ClientAddr, &p.Sealed.KEKID, &p.Sealed.WrappedKey, &p.Sealed.Ciphertext,
				instantDest{&p.CreatedAt}, instantDest{&p.ExpiresAt})
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", err)
	}
	if !now.Before(p.ExpiresAt) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: expired: %w", store.ErrNotFound)
	}
	return p, nil
}

// CountLaunches implements store.PendingLaunches.
func (db *DB) CountLaunches(ctx context.Context, clientAddr string, now time.Time) (int, error) {
	var n int
	if err := db.queryRow(ctx, db.Read, `SELECT count(*) FROM pending_launches WHERE client_addr=? AND expires_at>?`,
		clientAddr, db.Dialect.instant(now)).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting pending launches: %w", err)
	}
	return n, nil
}

// PurgeLaunches implements store.PendingLaunches.
func (db *DB) PurgeLaunches(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		var err error
		n, err = rowsAffected(db.exec(ctx, tx, `DELETE FROM pending_launches WHERE expires_at<=?`, db.Dialect.instant(now)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purging expired launches: %w", err)
	}
	return int(n), nil
}

// RewrapLaunches implements store.LaunchRewrapper.
func (db *DB) RewrapLaunches(ctx context.Context, fn func(key string, s store.Sealed) (store.Sealed, error)) (int, error) {
	n := 0
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		n = 0
		if err := db.Dialect.lock(ctx, tx, launchLockKey); err != nil {
			return err
		}
		type row struct {
			key string
			s   store.Sealed
		}
		rows, err := db.query(ctx, tx, `SELECT launch_key, kek_id, wrapped_key, ciphertext FROM pending_launches ORDER BY launch_key`)
		if err != nil {
			return err
		}
		list, err := scanAll(rows, func(r *sql.Rows) (row, error) {
			var x row
			return x, r.Scan(&x.key, &x.s.KEKID, &x.s.WrappedKey, &x.s.Ciphertext)
		})
		if err != nil {
			return err
		}
		for _, x := range list {
			next, err := fn(x.key, x.s)
			if err != nil {
				return fmt.Errorf("launch %.8s: %w", x.key, err)
			}
			if next.KEKID == x.s.KEKID {
				continue
			}
			if _, err := db.exec(ctx, tx, `UPDATE pending_launches SET kek_id=?, wrapped_key=?, ciphertext=? WHERE launch_key=?`,
				next.KEKID, NonNil(next.WrappedKey), NonNil(next.Ciphertext), x.key); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("re-wrapping pending launches: %w", err)
	}
	return n, nil
}

var (
	_ store.PendingLaunches = (*DB)(nil)
	_ store.LaunchRewrapper = (*DB)(nil)
)
