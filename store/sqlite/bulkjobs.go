package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Pending Bulk Data export jobs (table bulk_pending, migration 00007): what
// ingest.Export needs to resume polling a job after the process was killed.
// The method set is ingest.PendingExports; it uses plain types so that this
// package does not import ingest.

// PendingExport returns the export job kicked off and not finished for
// connection and scope: the request fingerprint, the status URL and when it
// was kicked off. statusURL is "" when there is none.
func (s *Store) PendingExport(ctx context.Context, connection, scope string) (fingerprint, statusURL string, kickedOff time.Time, err error) {
	var at string
	err = s.r.QueryRowContext(ctx, `SELECT fingerprint, status_url, kicked_off FROM bulk_pending WHERE connection=? AND scope=?`,
		connection, scope).Scan(&fingerprint, &statusURL, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", time.Time{}, nil
	}
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("reading pending export of %s %s: %w", connection, scope, err)
	}
	return fingerprint, statusURL, parseTime(at), nil
}

// SetPendingExport records the export job kicked off for connection and
// scope, replacing any other.
func (s *Store) SetPendingExport(ctx context.Context, connection, scope, fingerprint, statusURL string, kickedOff time.Time) error {
	if scope == "" || statusURL == "" {
		return errors.New("storing pending export: scope and status URL are required")
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO bulk_pending (connection, scope, fingerprint, status_url, kicked_off)
			VALUES (?,?,?,?,?)
			ON CONFLICT (connection, scope) DO UPDATE SET fingerprint=excluded.fingerprint,
			status_url=excluded.status_url, kicked_off=excluded.kicked_off`,
			connection, scope, fingerprint, statusURL, formatTime(kickedOff))
		return err
	})
	if err != nil {
		return fmt.Errorf("storing pending export of %s %s: %w", connection, scope, err)
	}
	return nil
}

// ClearPendingExport forgets the pending export job of connection and
// scope; clearing none is not an error.
func (s *Store) ClearPendingExport(ctx context.Context, connection, scope string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM bulk_pending WHERE connection=? AND scope=?`, connection, scope)
		return err
	})
	if err != nil {
		return fmt.Errorf("clearing pending export of %s %s: %w", connection, scope, err)
	}
	return nil
}
