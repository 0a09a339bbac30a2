// Package postgres is ehrgate's PostgreSQL store, for deployments where one
// machine is not enough: several gateway processes share one database, and
// the data lives where the organisation already backs up and monitors.
//
// It implements the same store roles as the embedded SQLite store and runs
// the same conformance suite (store/storetest) against a real PostgreSQL
// server in tests. Lifecycle: Open connects, applies pending migrations
// (versioned, embedded, run by goose) and returns a ready Store; Close
// releases the pool.
package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"ehrgate/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use by many goroutines and many processes.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn (a libpq keyword/value string
// or a postgres:// URL) and migrates it to the latest schema.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if err := migrate(ctx, db); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	return nil
}

// Close releases the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// PutResources implements store.Writer: one transaction per call; concurrent
// writers of the same resource are serialised by row locks, so each change
// is reported exactly once.
func (s *Store) PutResources(ctx context.Context, recs []store.Record) ([]store.Change, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	for i := range recs {
		if recs[i].Connection == "" || recs[i].Type == "" || recs[i].ID == "" {
			return nil, fmt.Errorf("record %d: connection, type and id are required", i)
		}
	}
	changes := make([]store.Change, len(recs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for i := range recs {
			c, err := putResource(ctx, tx, &recs[i])
			if err != nil {
				return err
			}
			changes[i] = c
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}

func putResource(ctx context.Context, tx pgx.Tx, rec *store.Record) (store.Change, error) {
	hash := rec.RawHash()
	version := store.StoredVersion(rec.VersionID, hash)
	change := store.New
	tag, err := tx.Exec(ctx, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id)
		VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING`, rec.Connection, rec.Type, rec.ID, version, hash, rec.PatientID)
	if err != nil {
		return 0, fmt.Errorf("storing %s/%s: %w", rec.Type, rec.ID, err)
	}
	if tag.RowsAffected() == 0 {
		var curHash []byte
		err := tx.QueryRow(ctx, `SELECT hash FROM resources WHERE connection=$1 AND type=$2 AND id=$3 FOR UPDATE`,
			rec.Connection, rec.Type, rec.ID).Scan(&curHash)
		if err != nil {
			return 0, fmt.Errorf("looking up %s/%s: %w", rec.Type, rec.ID, err)
		}
		if bytes.Equal(curHash, hash) {
			return store.Unchanged, nil
		}
		change = store.Updated
		var oldHash []byte
		err = tx.QueryRow(ctx, `SELECT hash FROM resource_versions WHERE connection=$1 AND type=$2 AND id=$3 AND version_id=$4`,
			rec.Connection, rec.Type, rec.ID, version).Scan(&oldHash)
		switch {
		case err == nil && !bytes.Equal(oldHash, hash):
			version = store.DisambiguatedVersion(version, hash)
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return 0, fmt.Errorf("looking up version of %s/%s: %w", rec.Type, rec.ID, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE resources SET version_id=$4, hash=$5, patient_id=$6
			WHERE connection=$1 AND type=$2 AND id=$3`, rec.Connection, rec.Type, rec.ID, version, hash, rec.PatientID); err != nil {
			return 0, fmt.Errorf("updating current %s/%s: %w", rec.Type, rec.ID, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO resource_versions
		(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING`,
		rec.Connection, rec.Type, rec.ID, version, rec.PatientID, hash, rec.Raw, rec.Normalized,
		nullTime(rec.LastUpdated), rec.FetchedAt.UTC(), rec.Source); err != nil {
		return 0, fmt.Errorf("storing version of %s/%s: %w", rec.Type, rec.ID, err)
	}
	if rec.Patient != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO patients (connection, id, search, birth_date) VALUES ($1,$2,$3,$4)
			ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date`,
			rec.Connection, rec.ID, rec.Patient.SearchText(), rec.Patient.BirthDate); err != nil {
			return 0, fmt.Errorf("indexing patient %s: %w", rec.ID, err)
		}
	}
	return change, nil
}

// Quarantine implements store.Writer.
func (s *Store) Quarantine(ctx context.Context, item store.QuarantineItem) error {
	if item.ReceivedAt.IsZero() {
		item.ReceivedAt = time.Now()
	}
	raw := item.Raw
	if raw == nil {
		raw = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO quarantine (connection, type, resource_id, source, reason, raw, received_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`, item.Connection, item.Type, item.ResourceID, item.Source, item.Reason, raw, item.ReceivedAt.UTC())
	if err != nil {
		return fmt.Errorf("quarantining input: %w", err)
	}
	return nil
}

// PutFetchStates implements store.Writer.
func (s *Store) PutFetchStates(ctx context.Context, states []store.FetchState) error {
	if len(states) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, fs := range states {
		batch.Queue(`INSERT INTO fetch_state (connection, patient_id, type, availability, count, fetched_at, detail)
			VALUES ($1,$2,$3,$4,$5,$6,$7)
			ON CONFLICT (connection, patient_id, type) DO UPDATE SET availability=excluded.availability,
			count=excluded.count, fetched_at=excluded.fetched_at, detail=excluded.detail`,
			fs.Connection, fs.PatientID, fs.Type, string(fs.Availability), fs.Count, fs.FetchedAt.UTC(), fs.Detail)
	}
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("storing fetch state: %w", err)
	}
	return nil
}

const selectRecord = `SELECT v.connection, v.type, v.id, v.version_id, v.patient_id, v.raw, v.normalized,
	v.last_updated, v.fetched_at, v.source
	FROM resources c JOIN resource_versions v
	ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id`

func scanRecord(row pgx.Row) (store.Record, error) {
	var rec store.Record
	var lastUpdated *time.Time
	if err := row.Scan(&rec.Connection, &rec.Type, &rec.ID, &rec.VersionID, &rec.PatientID, &rec.Raw, &rec.Normalized,
		&lastUpdated, &rec.FetchedAt, &rec.Source); err != nil {
		return store.Record{}, err
	}
	if lastUpdated != nil {
		rec.LastUpdated = lastUpdated.UTC()
	}
	rec.FetchedAt = rec.FetchedAt.UTC()
	return rec, nil
}

// Get implements store.Reader.
func (s *Store) Get(ctx context.Context, connection, typ, id string) (store.Record, error) {
	rec, err := scanRecord(s.pool.QueryRow(ctx, selectRecord+` WHERE c.connection=$1 AND c.type=$2 AND c.id=$3`, connection, typ, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, fmt.Errorf("%s/%s on %s: %w", typ, id, connection, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("reading %s/%s: %w", typ, id, err)
	}
	return rec, nil
}

func (s *Store) queryRecords(ctx context.Context, query string, args ...any) ([]store.Record, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// ListByPatient implements store.Reader. Records come ordered by id.
func (s *Store) ListByPatient(ctx context.Context, connection, patientID, typ string) ([]store.Record, error) {
	recs, err := s.queryRecords(ctx, selectRecord+` WHERE c.connection=$1 AND c.patient_id=$2 AND c.type=$3 ORDER BY c.id`,
		connection, patientID, typ)
	if err != nil {
		return nil, fmt.Errorf("listing %s of a patient: %w", typ, err)
	}
	return recs, nil
}

// SearchPatients implements store.Reader.
func (s *Store) SearchPatients(ctx context.Context, q store.PatientQuery) ([]store.Record, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	where := []string{"TRUE"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.Connection != "" {
		where = append(where, "p.connection="+arg(q.Connection))
	}
	for _, word := range store.SearchWords(q.Text) {
		where = append(where, "strpos(p.search, "+arg(word)+") > 0")
	}
	if q.BirthDate != "" {
		where = append(where, "p.birth_date="+arg(q.BirthDate))
	}
	query := `SELECT v.connection, v.type, v.id, v.version_id, v.patient_id, v.raw, v.normalized,
		v.last_updated, v.fetched_at, v.source
		FROM patients p
		JOIN resources c ON c.connection=p.connection AND c.type='Patient' AND c.id=p.id
		JOIN resource_versions v ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY p.search LIMIT ` + arg(limit)
	recs, err := s.queryRecords(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("searching patients: %w", err)
	}
	return recs, nil
}

// FetchStates implements store.Reader.
func (s *Store) FetchStates(ctx context.Context, connection, patientID string) ([]store.FetchState, error) {
	rows, err := s.pool.Query(ctx, `SELECT connection, patient_id, type, availability, count, fetched_at, detail
		FROM fetch_state WHERE connection=$1 AND patient_id=$2 ORDER BY type`, connection, patientID)
	if err != nil {
		return nil, fmt.Errorf("reading fetch state: %w", err)
	}
	defer rows.Close()
	var out []store.FetchState
	for rows.Next() {
		var fs store.FetchState
		var avail string
		if err := rows.Scan(&fs.Connection, &fs.PatientID, &fs.Type, &avail, &fs.Count, &fs.FetchedAt, &fs.Detail); err != nil {
			return nil, fmt.Errorf("reading fetch state: %w", err)
		}
		fs.Availability = store.Availability(avail)
		fs.FetchedAt = fs.FetchedAt.UTC()
		out = append(out, fs)
	}
	return out, rows.Err()
}

// Stats implements store.Statter.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	rows, err := s.pool.Query(ctx, `SELECT connection, type, count(*) FROM resources GROUP BY connection, type ORDER BY connection, type`)
	if err != nil {
		return st, fmt.Errorf("counting resources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tc store.TypeCount
		if err := rows.Scan(&tc.Connection, &tc.Type, &tc.Count); err != nil {
			return st, fmt.Errorf("counting resources: %w", err)
		}
		st.Resources = append(st.Resources, tc)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("counting resources: %w", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM resource_versions`).Scan(&st.Versions); err != nil {
		return st, fmt.Errorf("counting versions: %w", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&st.Quarantined); err != nil {
		return st, fmt.Errorf("counting quarantine: %w", err)
	}
	last, err := s.pool.Query(ctx, `SELECT connection, max(fetched_at) FROM fetch_state GROUP BY connection`)
	if err != nil {
		return st, fmt.Errorf("reading freshness: %w", err)
	}
	defer last.Close()
	for last.Next() {
		var conn string
		var at time.Time
		if err := last.Scan(&conn, &at); err != nil {
			return st, fmt.Errorf("reading freshness: %w", err)
		}
		if st.LastFetched == nil {
			st.LastFetched = map[string]time.Time{}
		}
		st.LastFetched[conn] = at.UTC()
	}
	return st, last.Err()
}

// Quarantined implements store.QuarantineReader.
func (s *Store) Quarantined(ctx context.Context, connection string, limit int) ([]store.QuarantineItem, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT connection, type, resource_id, source, reason, raw, received_at
		FROM quarantine WHERE ($1='' OR connection=$1) ORDER BY seq DESC LIMIT $2`, connection, limit)
	if err != nil {
		return nil, fmt.Errorf("listing quarantine: %w", err)
	}
	defer rows.Close()
	var out []store.QuarantineItem
	for rows.Next() {
		var it store.QuarantineItem
		if err := rows.Scan(&it.Connection, &it.Type, &it.ResourceID, &it.Source, &it.Reason, &it.Raw, &it.ReceivedAt); err != nil {
			return nil, fmt.Errorf("listing quarantine: %w", err)
		}
		it.ReceivedAt = it.ReceivedAt.UTC()
		out = append(out, it)
	}
	return out, rows.Err()
}

var _ store.Store = (*Store)(nil)
