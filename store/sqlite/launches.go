package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"ehrgate/store"
)

// Pending SMART launches (store.PendingLaunches) live in the pending_launches
// table (migration 00010), whose row count triggers keep in
// pending_launch_count. Writes go through the group commit, whose
// transactions begin IMMEDIATE: a PutLaunch's counts and insert, and a
// TakeLaunch's DELETE ... RETURNING, exclude every other writer of the
// database, in this process or another, so limits hold exactly and a
// launch is taken once. Each PutLaunch reads at most PerAddress index
// entries and one counter row (plus the expired rows it purges when the
// total bound is reached), however many launches are pending.

const launchColumns = `launch_key, connection, client_addr, kek_id, wrapped_key, ciphertext, created_ns, expires_ns`

// PutLaunch implements store.PendingLaunches.
func (s *Store) PutLaunch(ctx context.Context, p store.PendingLaunch, lim store.LaunchLimits) error {
	if p.Key == "" || p.ClientAddr == "" || p.ExpiresAt.IsZero() {
		return errors.New("storing pending launch: key, client address and expiry are required")
	}
	now := p.CreatedAt.UnixNano()
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if lim.PerAddress > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pending_launches WHERE client_addr=? AND expires_ns>?`,
				p.ClientAddr, now).Scan(&n); err != nil {
				return fmt.Errorf("counting launches from the address: %w", err)
			}
			if n >= lim.PerAddress {
				return store.ErrTooManyFromAddress
			}
		}
		if lim.Total > 0 {
			if err := totalBelow(ctx, tx, now, lim.Total); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO pending_launches (`+launchColumns+`) VALUES (?,?,?,?,?,?,?,?)
			ON CONFLICT (launch_key) DO NOTHING`,
			p.Key, p.Connection, p.ClientAddr, p.Sealed.KEKID, nonNilBytes(p.Sealed.WrappedKey), nonNilBytes(p.Sealed.Ciphertext),
			now, p.ExpiresAt.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrDuplicateKey
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing pending launch: %w", err)
	}
	return nil
}

// totalBelow returns ErrTooManyLaunches unless fewer than total launches
// are live at now. It reads the row count the triggers keep and, only when
// that is at the bound, purges what expired and reads it again: no call
// counts the launches themselves.
func totalBelow(ctx context.Context, tx *sql.Tx, now int64, total int) error {
	count := func() (int, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT n FROM pending_launch_count WHERE id=1`).Scan(&n); err != nil {
			return 0, fmt.Errorf("counting launches: %w", err)
		}
		return n, nil
	}
	n, err := count()
	if err != nil || n < total {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending_launches WHERE expires_ns<=?`, now); err != nil {
		return fmt.Errorf("purging expired launches: %w", err)
	}
	if n, err = count(); err != nil || n < total {
		return err
	}
	return store.ErrTooManyLaunches
}

// TakeLaunch implements store.PendingLaunches with one DELETE ... RETURNING.
func (s *Store) TakeLaunch(ctx context.Context, key string, now time.Time) (store.PendingLaunch, error) {
	var p store.PendingLaunch
	var created, expires int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `DELETE FROM pending_launches WHERE launch_key=? RETURNING `+launchColumns, key).
			Scan(&p.Key, &p.Connection, &p.ClientAddr, &p.Sealed.KEKID, &p.Sealed.WrappedKey, &p.Sealed.Ciphertext, &created, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", err)
	}
	p.CreatedAt, p.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	if !now.Before(p.ExpiresAt) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: expired: %w", store.ErrNotFound)
	}
	return p, nil
}

// CountLaunches implements store.PendingLaunches.
func (s *Store) CountLaunches(ctx context.Context, clientAddr string, now time.Time) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM pending_launches WHERE client_addr=? AND expires_ns>?`,
		clientAddr, now.UnixNano()).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting pending launches: %w", err)
	}
	return n, nil
}

// PurgeLaunches implements store.PendingLaunches.
func (s *Store) PurgeLaunches(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM pending_launches WHERE expires_ns<=?`, now.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purging expired launches: %w", err)
	}
	return int(n), nil
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

var _ store.PendingLaunches = (*Store)(nil)
