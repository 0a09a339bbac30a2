package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LastExports implements store.ExportState (table bulk_since).
func (db *DB) LastExports(ctx context.Context, connection, scope string) (map[string]time.Time, error) {
	rows, err := db.query(ctx, db.Read, `SELECT type, transaction_time FROM bulk_since WHERE connection=? AND scope=?`,
		connection, scope)
	if err != nil {
		return nil, fmt.Errorf("reading last exports of %s %s: %w", connection, scope, err)
	}
	type since struct {
		typ string
		at  time.Time
	}
	list, err := scanAll(rows, func(r *sql.Rows) (since, error) {
		var s since
		err := r.Scan(&s.typ, TimeDest(&s.at))
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading last exports of %s %s: %w", connection, scope, err)
	}
	out := make(map[string]time.Time, len(list))
	for _, s := range list {
		out[s.typ] = s.at
	}
	return out, nil
}

// SetLastExport implements store.ExportState.
func (db *DB) SetLastExport(ctx context.Context, connection, scope string, t time.Time, types []string) error {
	if scope == "" || len(types) == 0 {
		return errors.New("storing last export: scope and types are required")
	}
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		for _, typ := range types {
			if _, err := db.exec(ctx, tx, `INSERT INTO bulk_since (connection, scope, type, transaction_time) VALUES (?,?,?,?)
				ON CONFLICT (connection, scope, type) DO UPDATE SET transaction_time=excluded.transaction_time`,
				connection, scope, typ, db.Dialect.Time(t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing last export of %s %s: %w", connection, scope, err)
	}
	return nil
}

// Pending Bulk Data export jobs (table bulk_pending): what ingest.Export
// needs to resume polling a job after the process was killed. The method
// set is ingest.PendingExports; it uses plain types so that the stores do
// not import ingest.

// PendingExport returns the export job kicked off and not finished for
// connection and scope: the request fingerprint, the status URL and when it
// was kicked off. statusURL is "" when there is none.
func (db *DB) PendingExport(ctx context.Context, connection, scope string) (fingerprint, statusURL string, kickedOff time.Time, err error) {
	err = db.queryRow(ctx, db.Read, `SELECT fingerprint, status_url, kicked_off FROM bulk_pending WHERE connection=? AND scope=?`,
		connection, scope).Scan(&fingerprint, &statusURL, TimeDest(&kickedOff))
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", time.Time{}, nil
	}
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("reading pending export of %s %s: %w", connection, scope, err)
	}
	return fingerprint, statusURL, kickedOff, nil
}

// SetPendingExport records the export job kicked off for connection and
// scope, replacing any other.
func (db *DB) SetPendingExport(ctx context.Context, connection, scope, fingerprint, statusURL string, kickedOff time.Time) error {
	if scope == "" || statusURL == "" {
		return errors.New("storing pending export: scope and status URL are required")
	}
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		_, err := db.exec(ctx, tx, `INSERT INTO bulk_pending (connection, scope, fingerprint, status_url, kicked_off)
			VALUES (?,?,?,?,?)
			ON CONFLICT (connection, scope) DO UPDATE SET fingerprint=excluded.fingerprint,
			status_url=excluded.status_url, kicked_off=excluded.kicked_off`,
			connection, scope, fingerprint, statusURL, db.Dialect.Time(kickedOff))
		return err
	})
	if err != nil {
		return fmt.Errorf("storing pending export of %s %s: %w", connection, scope, err)
	}
	return nil
}

// ClearPendingExport forgets the pending export job of connection and
// scope; clearing none is not an error.
func (db *DB) ClearPendingExport(ctx context.Context, connection, scope string) error {
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		_, err := db.exec(ctx, tx, `DELETE FROM bulk_pending WHERE connection=? AND scope=?`, connection, scope)
		return err
	})
	if err != nil {
		return fmt.Errorf("clearing pending export of %s %s: %w", connection, scope, err)
	}
	return nil
}
