package postgres

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
// pending_launch_count. Write transactions here run concurrently, so a
// PutLaunch takes a transaction-scoped advisory lock before it counts and
// inserts (the limits then hold exactly across processes; launches are
// rare enough, and the transaction short enough, for one lock), and a
// TakeLaunch is one DELETE ... RETURNING, which only one transaction can
// complete for a row. Each PutLaunch reads at most PerAddress index
// entries and the counter row (plus the expired rows it purges when the
// total bound is reached), however many launches are pending.

const launchColumns = `launch_key, connection, client_addr, kek_id, wrapped_key, ciphertext, created_at, expires_at`

// launchLockKey is the advisory lock PutLaunch holds.
const launchLockKey = "pending_launches"

// PutLaunch implements store.PendingLaunches.
func (s *Store) PutLaunch(ctx context.Context, p store.PendingLaunch, lim store.LaunchLimits) error {
	if p.Key == "" || p.ClientAddr == "" || p.ExpiresAt.IsZero() {
		return errors.New("storing pending launch: key, client address and expiry are required")
	}
	if err := s.putLaunch(ctx, p, lim); err != nil {
		return fmt.Errorf("storing pending launch: %w", err)
	}
	return nil
}

func (s *Store) putLaunch(ctx context.Context, p store.PendingLaunch, lim store.LaunchLimits) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("starting transaction: %w", err)
	}
	defer tx.Rollback()
	now := p.CreatedAt.UTC()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, launchLockKey); err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	if lim.PerAddress > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pending_launches WHERE client_addr=$1 AND expires_at>$2`,
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
	res, err := tx.ExecContext(ctx, `INSERT INTO pending_launches (`+launchColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (launch_key) DO NOTHING`,
		p.Key, p.Connection, p.ClientAddr, p.Sealed.KEKID, nonNilBytes(p.Sealed.WrappedKey), nonNilBytes(p.Sealed.Ciphertext),
		now, p.ExpiresAt.UTC())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrDuplicateKey
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// totalBelow returns ErrTooManyLaunches unless fewer than total launches
// are live at now. It reads the row count the triggers keep and, only when
// that is at the bound, purges what expired and reads it again: no call
// counts the launches themselves.
func totalBelow(ctx context.Context, tx *sql.Tx, now time.Time, total int) error {
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
	if _, err := tx.ExecContext(ctx, `DELETE FROM pending_launches WHERE expires_at<=$1`, now); err != nil {
		return fmt.Errorf("purging expired launches: %w", err)
	}
	if n, err = count(); err != nil || n < total {
		return err
	}
	return store.ErrTooManyLaunches
}

// TakeLaunch implements store.PendingLaunches.
func (s *Store) TakeLaunch(ctx context.Context, key string, now time.Time) (store.PendingLaunch, error) {
	var p store.PendingLaunch
	err := s.db.QueryRowContext(ctx, `DELETE FROM pending_launches WHERE launch_key=$1 RETURNING `+launchColumns, key).
		Scan(&p.Key, &p.Connection, &p.ClientAddr, &p.Sealed.KEKID, &p.Sealed.WrappedKey, &p.Sealed.Ciphertext, &p.CreatedAt, &p.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: %w", err)
	}
	p.CreatedAt, p.ExpiresAt = p.CreatedAt.UTC(), p.ExpiresAt.UTC()
	if !now.Before(p.ExpiresAt) {
		return store.PendingLaunch{}, fmt.Errorf("taking pending launch: expired: %w", store.ErrNotFound)
	}
	return p, nil
}

// CountLaunches implements store.PendingLaunches.
func (s *Store) CountLaunches(ctx context.Context, clientAddr string, now time.Time) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pending_launches WHERE client_addr=$1 AND expires_at>$2`,
		clientAddr, now.UTC()).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting pending launches: %w", err)
	}
	return n, nil
}

// PurgeLaunches implements store.PendingLaunches.
func (s *Store) PurgeLaunches(ctx context.Context, now time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM pending_launches WHERE expires_at<=$1`, now.UTC())
	if err != nil {
		return 0, fmt.Errorf("purging expired launches: %w", err)
	}
	n, err := res.RowsAffected()
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
