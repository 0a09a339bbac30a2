// Package sqlite is ehrgate's embedded store: a single SQLite database file
// (modernc.org/sqlite, pure Go, no cgo, no server) holding raw resources,
// their normalized forms, quarantine and fetch state.
//
// Lifecycle: Open creates the file if needed, applies every pending schema
// migration (versioned, embedded, run by goose) and returns a ready Store.
// Writes go through one connection (SQLite allows one writer at a time) in
// WAL mode so that readers such as the dashboard never block the sync.
// Close flushes and releases the file.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"ehrgate/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file Open creates inside a data directory.
const FileName = "ehrgate.db"

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	w     *sql.DB // single writer connection
	r     *sql.DB // pool of read connections
	stmts writeStmts
	// bulkStmts are WriteBatch's statements of the common shapes.
	bulkStmts sharedStmts

	writes     chan writeReq
	writerDone chan struct{}
	closeMu    sync.RWMutex
	closed     bool
}

// writeStmts are prepared once on the writer connection.
type writeStmts struct {
	cur, verHash, insVer, upCur, upPat, quarantine, fetchState *sql.Stmt
}

func (s *Store) prepare(ctx context.Context) error {
	prep := func(dst **sql.Stmt, q string) error {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing statement: %w", err)
		}
		*dst = st
		return nil
	}
	return errors.Join(
		prep(&s.stmts.cur, `SELECT version_id, hash FROM resources WHERE connection=? AND type=? AND id=?`),
		prep(&s.stmts.verHash, `SELECT hash FROM resource_versions WHERE connection=? AND type=? AND id=? AND version_id=?`),
		prep(&s.stmts.insVer, `INSERT INTO resource_versions
		(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (connection, type, id, version_id) DO NOTHING`),
		prep(&s.stmts.upCur, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id)
		VALUES (?,?,?,?,?,?)
		ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id, hash=excluded.hash, patient_id=excluded.patient_id`),
		prep(&s.stmts.upPat, `INSERT INTO patients (connection, id, search, birth_date) VALUES (?,?,?,?)
		ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date`),
		prep(&s.stmts.quarantine, `INSERT INTO quarantine (connection, type, resource_id, source, reason, raw, received_at)
		VALUES (?,?,?,?,?,?,?)`),
		prep(&s.stmts.fetchState, `INSERT INTO fetch_state (connection, patient_id, type, availability, count, fetched_at, detail)
		VALUES (?,?,?,?,?,?,?)
		ON CONFLICT (connection, patient_id, type) DO UPDATE SET availability=excluded.availability,
		count=excluded.count, fetched_at=excluded.fetched_at, detail=excluded.detail`),
	)
}

// OpenDir opens (creating if needed) the store in data directory dir.
func OpenDir(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	return Open(ctx, filepath.Join(dir, FileName))
}

// Open opens (creating if needed) the database file at path and migrates it
// to the latest schema.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + url.Values{
		"_pragma": {
			"journal_mode(WAL)",
			"synchronous(NORMAL)",
			"busy_timeout(10000)",
			"foreign_keys(ON)",
			"temp_store(MEMORY)",
		},
		"_txlock": {"immediate"},
	}.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{w: w, r: r, bulkStmts: sharedStmts{db: w}}
	if err := s.prepare(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	s.startWriter()
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating schema: %w", err)
	}
	return nil
}

// SchemaVersion returns the applied schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, sub)
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return p.GetDBVersion(ctx)
}

// Close releases the database.
func (s *Store) Close() error {
	s.stopWriter()
	s.bulkStmts.close()
	return errors.Join(s.r.Close(), s.w.Close())
}

const timeFormat = time.RFC3339Nano

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// PutResources implements store.Writer. All records are written in one
// transaction (shared with concurrent writers, see writer.go).
func (s *Store) PutResources(ctx context.Context, recs []store.Record) ([]store.Change, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	for i := range recs {
		if recs[i].Connection == "" || recs[i].Type == "" || recs[i].ID == "" {
			return nil, fmt.Errorf("record %d: connection, type and id are required", i)
		}
	}
	var changes []store.Change
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		changes, err = s.putResources(ctx, tx, recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}

func (s *Store) putResources(ctx context.Context, tx *sql.Tx, recs []store.Record) ([]store.Change, error) {
	cur := tx.StmtContext(ctx, s.stmts.cur)
	verHash := tx.StmtContext(ctx, s.stmts.verHash)
	insVer := tx.StmtContext(ctx, s.stmts.insVer)
	upCur := tx.StmtContext(ctx, s.stmts.upCur)
	upPat := tx.StmtContext(ctx, s.stmts.upPat)

	changes := make([]store.Change, len(recs))
	for i := range recs {
		rec := &recs[i]
		hash := rec.RawHash()
		version := store.StoredVersion(rec.VersionID, hash)

		var curVersion string
		var curHash []byte
		err := cur.QueryRowContext(ctx, rec.Connection, rec.Type, rec.ID).Scan(&curVersion, &curHash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			changes[i] = store.New
		case err != nil:
			return nil, fmt.Errorf("looking up %s/%s: %w", rec.Type, rec.ID, err)
		case bytes.Equal(curHash, hash):
			changes[i] = store.Unchanged
			continue
		default:
			changes[i] = store.Updated
		}
		// Same versionId but different bytes (servers that do not bump
		// versionId): keep both, so nothing received is ever overwritten.
		var oldHash []byte
		err = verHash.QueryRowContext(ctx, rec.Connection, rec.Type, rec.ID, version).Scan(&oldHash)
		if err == nil && !bytes.Equal(oldHash, hash) {
			version = store.DisambiguatedVersion(version, hash)
		} else if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("looking up version of %s/%s: %w", rec.Type, rec.ID, err)
		}
		raw, norm := storedBodies(rec)
		if _, err := insVer.ExecContext(ctx, rec.Connection, rec.Type, rec.ID, version, rec.PatientID, hash,
			raw, nullBytes(norm), formatTime(rec.LastUpdated), formatTime(rec.FetchedAt), rec.Source); err != nil {
			return nil, fmt.Errorf("storing %s/%s: %w", rec.Type, rec.ID, err)
		}
		if _, err := upCur.ExecContext(ctx, rec.Connection, rec.Type, rec.ID, version, hash, rec.PatientID); err != nil {
			return nil, fmt.Errorf("updating current %s/%s: %w", rec.Type, rec.ID, err)
		}
		if rec.Patient != nil {
			if _, err := upPat.ExecContext(ctx, rec.Connection, rec.ID, rec.Patient.SearchText(), rec.Patient.BirthDate); err != nil {
				return nil, fmt.Errorf("indexing patient %s: %w", rec.ID, err)
			}
		}
	}
	return changes, nil
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
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
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, s.stmts.quarantine).ExecContext(ctx, item.Connection, item.Type, item.ResourceID,
			item.Source, item.Reason, raw, formatTime(item.ReceivedAt))
		return err
	})
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
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		st := tx.StmtContext(ctx, s.stmts.fetchState)
		for _, fs := range states {
			if _, err := st.ExecContext(ctx, fs.Connection, fs.PatientID, fs.Type, string(fs.Availability), fs.Count,
				formatTime(fs.FetchedAt), fs.Detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing fetch state: %w", err)
	}
	return nil
}

const selectRecord = `SELECT v.connection, v.type, v.id, v.version_id, v.patient_id, v.raw, v.normalized,
	v.last_updated, v.fetched_at, v.source
	FROM resources c JOIN resource_versions v
	ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id`

type scanner interface{ Scan(dest ...any) error }

func scanRecord(sc scanner) (store.Record, error) {
	var rec store.Record
	var lastUpdated, fetchedAt string
	if err := sc.Scan(&rec.Connection, &rec.Type, &rec.ID, &rec.VersionID, &rec.PatientID, &rec.Raw, &rec.Normalized,
		&lastUpdated, &fetchedAt, &rec.Source); err != nil {
		return store.Record{}, err
	}
	rec.LastUpdated = parseTime(lastUpdated)
	rec.FetchedAt = parseTime(fetchedAt)
	var err error
	if rec.Raw, err = unpack(rec.Raw); err != nil {
		return store.Record{}, fmt.Errorf("%s/%s version %s raw: %w", rec.Type, rec.ID, rec.VersionID, err)
	}
	if rec.Normalized, err = unpack(rec.Normalized); err != nil {
		return store.Record{}, fmt.Errorf("%s/%s version %s normalized: %w", rec.Type, rec.ID, rec.VersionID, err)
	}
	return rec, nil
}

// Get implements store.Reader.
func (s *Store) Get(ctx context.Context, connection, typ, id string) (store.Record, error) {
	row := s.r.QueryRowContext(ctx, selectRecord+` WHERE c.connection=? AND c.type=? AND c.id=?`, connection, typ, id)
	rec, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, fmt.Errorf("%s/%s on %s: %w", typ, id, connection, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("reading %s/%s: %w", typ, id, err)
	}
	return rec, nil
}

func (s *Store) queryRecords(ctx context.Context, query string, args ...any) ([]store.Record, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
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
	recs, err := s.queryRecords(ctx, selectRecord+` WHERE c.connection=? AND c.patient_id=? AND c.type=? ORDER BY c.id`,
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
	where := []string{"1=1"}
	var args []any
	if q.Connection != "" {
		where = append(where, "p.connection=?")
		args = append(args, q.Connection)
	}
	for _, word := range store.SearchWords(q.Text) {
		where = append(where, "instr(p.search, ?) > 0")
		args = append(args, word)
	}
	if q.BirthDate != "" {
		where = append(where, "p.birth_date=?")
		args = append(args, q.BirthDate)
	}
	args = append(args, limit)
	query := `SELECT v.connection, v.type, v.id, v.version_id, v.patient_id, v.raw, v.normalized,
		v.last_updated, v.fetched_at, v.source
		FROM patients p
		JOIN resources c ON c.connection=p.connection AND c.type='Patient' AND c.id=p.id
		JOIN resource_versions v ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY p.search LIMIT ?`
	recs, err := s.queryRecords(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("searching patients: %w", err)
	}
	return recs, nil
}

// FetchStates implements store.Reader.
func (s *Store) FetchStates(ctx context.Context, connection, patientID string) ([]store.FetchState, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT connection, patient_id, type, availability, count, fetched_at, detail
		FROM fetch_state WHERE connection=? AND patient_id=? ORDER BY type`, connection, patientID)
	if err != nil {
		return nil, fmt.Errorf("reading fetch state: %w", err)
	}
	defer rows.Close()
	var out []store.FetchState
	for rows.Next() {
		var fs store.FetchState
		var avail, fetchedAt string
		if err := rows.Scan(&fs.Connection, &fs.PatientID, &fs.Type, &avail, &fs.Count, &fetchedAt, &fs.Detail); err != nil {
			return nil, fmt.Errorf("reading fetch state: %w", err)
		}
		fs.Availability = store.Availability(avail)
		fs.FetchedAt = parseTime(fetchedAt)
		out = append(out, fs)
	}
	return out, rows.Err()
}

// Stats implements store.Statter.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	rows, err := s.r.QueryContext(ctx, `SELECT connection, type, count(*) FROM resources GROUP BY connection, type ORDER BY connection, type`)
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
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM resource_versions`).Scan(&st.Versions); err != nil {
		return st, fmt.Errorf("counting versions: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM quarantine`).Scan(&st.Quarantined); err != nil {
		return st, fmt.Errorf("counting quarantine: %w", err)
	}
	last, err := s.r.QueryContext(ctx, `SELECT connection, max(fetched_at) FROM fetch_state GROUP BY connection`)
	if err != nil {
		return st, fmt.Errorf("reading freshness: %w", err)
	}
	defer last.Close()
	for last.Next() {
		var conn, at string
		if err := last.Scan(&conn, &at); err != nil {
			return st, fmt.Errorf("reading freshness: %w", err)
		}
		if st.LastFetched == nil {
			st.LastFetched = map[string]time.Time{}
		}
		st.LastFetched[conn] = parseTime(at)
	}
	return st, last.Err()
}

// Quarantined implements store.QuarantineReader.
func (s *Store) Quarantined(ctx context.Context, connection string, limit int) ([]store.QuarantineItem, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT connection, type, resource_id, source, reason, raw, received_at
		FROM quarantine WHERE (?='' OR connection=?) ORDER BY seq DESC LIMIT ?`, connection, connection, limit)
	if err != nil {
		return nil, fmt.Errorf("listing quarantine: %w", err)
	}
	defer rows.Close()
	var out []store.QuarantineItem
	for rows.Next() {
		var it store.QuarantineItem
		var at string
		if err := rows.Scan(&it.Connection, &it.Type, &it.ResourceID, &it.Source, &it.Reason, &it.Raw, &at); err != nil {
			return nil, fmt.Errorf("listing quarantine: %w", err)
		}
		it.ReceivedAt = parseTime(at)
		out = append(out, it)
	}
	return out, rows.Err()
}

var _ store.Store = (*Store)(nil)
