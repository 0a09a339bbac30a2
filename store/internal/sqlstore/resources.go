package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"ehrgate/store"
)

// The statements PutResources, Quarantine and PutFetchStates run for every
// record or state: worth preparing once (see Stmts).
const (
	qCurrentHash = `SELECT hash FROM resources WHERE connection=? AND type=? AND id=?`
	qClaim       = `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES (?,?,?,?,?,?)
		ON CONFLICT (connection, type, id) DO NOTHING`
	qVersionHash   = `SELECT hash FROM resource_versions WHERE connection=? AND type=? AND id=? AND version_id=?`
	qInsertVersion = `INSERT INTO resource_versions
		(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
		VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (connection, type, id, version_id) DO NOTHING`
	qUpsertCurrent = `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES (?,?,?,?,?,?)
		ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id, hash=excluded.hash,
		patient_id=excluded.patient_id`
	qUpsertPatient = `INSERT INTO patients (connection, id, search, birth_date) VALUES (?,?,?,?)
		ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date`
	qQuarantine = `INSERT INTO quarantine (connection, type, resource_id, source, reason, raw, received_at)
		VALUES (?,?,?,?,?,?,?)`
	qFetchState = `INSERT INTO fetch_state (connection, patient_id, type, availability, count, fetched_at, detail)
		VALUES (?,?,?,?,?,?,?)
		ON CONFLICT (connection, patient_id, type) DO UPDATE SET availability=excluded.availability,
		count=excluded.count, fetched_at=excluded.fetched_at, detail=excluded.detail`
)

// WriteQueries are the statements of the per-record write paths, for a
// backend to prepare once (Prepare) with its dialect's ForUpdate.
func WriteQueries(d *Dialect) []string {
	return []string{qCurrentHash + d.ForUpdate, qClaim, qVersionHash, qInsertVersion, qUpsertCurrent, qUpsertPatient,
		qQuarantine, qFetchState, qAuditNewest, qAuditInsert}
}

// validateRecords checks that every record names its resource.
func validateRecords(recs []store.Record) error {
	for i := range recs {
		if recs[i].Connection == "" || recs[i].Type == "" || recs[i].ID == "" {
			return fmt.Errorf("record %d: connection, type and id are required", i)
		}
	}
	return nil
}

// PutResources implements store.Writer in one write transaction.
func (db *DB) PutResources(ctx context.Context, recs []store.Record) ([]store.Change, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if err := validateRecords(recs); err != nil {
		return nil, err
	}
	var changes []store.Change
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		var err error
		changes, err = db.PutResourcesTx(ctx, tx, recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}

// PutResourcesTx is PutResources inside the write transaction tx, for
// writes that store resources along with something else. recs must be
// valid: each names its resource.
func (db *DB) PutResourcesTx(ctx context.Context, tx Querier, recs []store.Record) ([]store.Change, error) {
	b := NewBatch(recs)
	var claimed map[ResourceKey]bool
	if db.Dialect.ForUpdate != "" && len(b.Keys) > 1 {
		var err error
		if claimed, err = db.lockAll(ctx, tx, b); err != nil {
			return nil, err
		}
	}
	changes := make([]store.Change, len(recs))
	for i := range recs {
		k := b.Key(i)
		c, err := db.putResource(ctx, tx, &recs[i], b.Hashes[i], b.Versions[i], claimed[k])
		if err != nil {
			return nil, err
		}
		delete(claimed, k)
		changes[i] = c
	}
	if err := db.indexProvenance(ctx, tx, recs, changes); err != nil {
		return nil, err
	}
	return changes, nil
}

// lockChunk is how many resources one statement of lockAll locks.
const lockChunk = 500

// lockAll takes the locks of a call's resources before any record is
// written, in key order, so that concurrent writers of overlapping sets of
// resources (in whatever order their records come) do not deadlock: it
// claims the resources not stored (their current pointer named after their
// first record, see putResource) and locks the others. It returns the
// claimed ones.
func (db *DB) lockAll(ctx context.Context, tx Querier, b *Batch) (map[ResourceKey]bool, error) {
	first := make(map[ResourceKey]int, len(b.Keys))
	for i := len(b.Recs) - 1; i >= 0; i-- {
		first[b.Key(i)] = i
	}
	keys := append([]ResourceKey(nil), b.Keys...)
	SortKeys(keys)
	claimed := map[ResourceKey]bool{}
	for part := range slices.Chunk(keys, lockChunk) {
		args := make([]any, 0, 6*len(part))
		for _, k := range part {
			i := first[k]
			args = append(args, k.Connection, k.Type, k.ID, b.Versions[i], b.Hashes[i], b.Recs[i].PatientID)
		}
		rows, err := db.query(ctx, tx, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id) VALUES `+
			valueRows(len(part), 6)+` ON CONFLICT (connection, type, id) DO NOTHING RETURNING connection, type, id`, args...)
		if err == nil {
			var got []ResourceKey
			got, err = scanAll(rows, func(r *sql.Rows) (ResourceKey, error) {
				var k ResourceKey
				err := r.Scan(&k.Connection, &k.Type, &k.ID)
				return k, err
			})
			for _, k := range got {
				claimed[k] = true
			}
		}
		if err != nil {
			return nil, fmt.Errorf("storing new resources: %w", err)
		}
	}
	var stored []ResourceKey
	for _, k := range keys {
		if !claimed[k] {
			stored = append(stored, k)
		}
	}
	for part := range slices.Chunk(stored, lockChunk) {
		args := make([]any, 0, 3*len(part))
		for _, k := range part {
			args = append(args, k.Connection, k.Type, k.ID)
		}
		rows, err := db.query(ctx, tx, `SELECT id FROM resources WHERE (connection, type, id) IN (`+valueRows(len(part), 3)+`)
			ORDER BY connection, type, id`+db.Dialect.ForUpdate, args...)
		if err == nil {
			err = rows.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("locking resources: %w", err)
		}
	}
	return claimed, nil
}

// valueRows returns n rows of width placeholders: "(?,?),(?,?)".
func valueRows(n, width int) string {
	row := "(" + strings.Repeat("?,", width-1) + "?)"
	return strings.Repeat(row+",", n-1) + row
}

// putResource upserts one record (hash and version are its RawHash and
// StoredVersion). It is the reference for every faster path (Plan): a
// record whose bytes are current changes nothing; otherwise its version is
// stored beside the earlier ones (under a suffixed version key when the
// server sent other bytes under a versionId already stored, so nothing
// received is ever overwritten) and becomes current.
//
// Concurrent writers of one resource are serialised by its row in
// resources: the lookup locks it (Dialect.ForUpdate), and a resource not
// stored yet is claimed by inserting that row (named after this record),
// which makes a concurrent claim wait for this transaction and then find
// the row. claimed says the caller claimed it already (lockAll).
func (db *DB) putResource(ctx context.Context, tx Querier, rec *store.Record, hash []byte, version string, claimed bool) (store.Change, error) {
	d := db.Dialect
	lookup := func() ([]byte, error) {
		var cur []byte
		err := db.queryRow(ctx, tx, qCurrentHash+d.ForUpdate, rec.Connection, rec.Type, rec.ID).Scan(&cur)
		return cur, err
	}
	change := store.New
	if !claimed {
		change = store.Updated
		cur, err := lookup()
		if errors.Is(err, sql.ErrNoRows) {
			n, cerr := rowsAffected(db.exec(ctx, tx, qClaim, rec.Connection, rec.Type, rec.ID, version, hash, rec.PatientID))
			switch {
			case cerr != nil:
				return 0, fmt.Errorf("storing current %s/%s: %w", rec.Type, rec.ID, cerr)
			case n == 1:
				change, claimed, err = store.New, true, nil
			default:
				cur, err = lookup() // a concurrent writer stored it first
			}
		}
		if err != nil {
			return 0, fmt.Errorf("looking up %s/%s: %w", rec.Type, rec.ID, err)
		}
		if !claimed && bytes.Equal(cur, hash) {
			return store.Unchanged, nil
		}
	}
	var old []byte
	switch err := db.queryRow(ctx, tx, qVersionHash, rec.Connection, rec.Type, rec.ID, version).Scan(&old); {
	case err == nil && !bytes.Equal(old, hash):
		version = store.DisambiguatedVersion(version, hash)
		claimed = false // the claimed row names the plain version
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("looking up version of %s/%s: %w", rec.Type, rec.ID, err)
	}
	raw, norm := d.bodies(rec)
	if _, err := db.exec(ctx, tx, qInsertVersion, rec.Connection, rec.Type, rec.ID, version, rec.PatientID, hash,
		raw, nullBytes(norm), d.Time(rec.LastUpdated), d.Time(rec.FetchedAt), rec.Source); err != nil {
		return 0, fmt.Errorf("storing %s/%s: %w", rec.Type, rec.ID, err)
	}
	if !claimed {
		if _, err := db.exec(ctx, tx, qUpsertCurrent, rec.Connection, rec.Type, rec.ID, version, hash, rec.PatientID); err != nil {
			return 0, fmt.Errorf("updating current %s/%s: %w", rec.Type, rec.ID, err)
		}
	}
	if rec.Patient != nil {
		if _, err := db.exec(ctx, tx, qUpsertPatient, rec.Connection, rec.ID, rec.Patient.SearchText(), rec.Patient.BirthDate); err != nil {
			return 0, fmt.Errorf("indexing patient %s: %w", rec.ID, err)
		}
	}
	return change, nil
}

// Quarantine implements store.Writer.
func (db *DB) Quarantine(ctx context.Context, item store.QuarantineItem) error {
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		return db.quarantineTx(ctx, tx, item)
	})
	if err != nil {
		return fmt.Errorf("quarantining input: %w", err)
	}
	return nil
}

// quarantineTx stores item inside the write transaction tx.
func (db *DB) quarantineTx(ctx context.Context, tx Querier, item store.QuarantineItem) error {
	if item.ReceivedAt.IsZero() {
		item.ReceivedAt = time.Now()
	}
	if _, err := db.exec(ctx, tx, qQuarantine, item.Connection, item.Type, item.ResourceID, item.Source, item.Reason,
		NonNil(item.Raw), db.Dialect.Time(item.ReceivedAt)); err != nil {
		return fmt.Errorf("quarantining input: %w", err)
	}
	return nil
}

// PutFetchStates implements store.Writer.
func (db *DB) PutFetchStates(ctx context.Context, states []store.FetchState) error {
	if len(states) == 0 {
		return nil
	}
	err := db.Write(ctx, func(ctx context.Context, tx Querier) error {
		for _, fs := range states {
			if _, err := db.exec(ctx, tx, qFetchState, fs.Connection, fs.PatientID, fs.Type, string(fs.Availability),
				fs.Count, db.Dialect.Time(fs.FetchedAt), fs.Detail); err != nil {
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

// selectRecord selects current records (c: resources, v: their versions)
// in the column order scanRecord reads.
const selectRecord = `SELECT v.connection, v.type, v.id, v.version_id, v.patient_id, v.raw, v.normalized,
	v.last_updated, v.fetched_at, v.source
	FROM resources c JOIN resource_versions v
	ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id`

// selectRawRecord is selectRecord without the normalized form (NULL in
// its place).
const selectRawRecord = `SELECT v.connection, v.type, v.id, v.version_id, v.patient_id, v.raw, NULL,
	v.last_updated, v.fetched_at, v.source
	FROM resources c JOIN resource_versions v
	ON v.connection=c.connection AND v.type=c.type AND v.id=c.id AND v.version_id=c.version_id`

// scanRecord reads a row of selectRecord.
func (d *Dialect) scanRecord(row interface{ Scan(dest ...any) error }) (store.Record, error) {
	var rec store.Record
	if err := row.Scan(&rec.Connection, &rec.Type, &rec.ID, &rec.VersionID, &rec.PatientID, &rec.Raw, &rec.Normalized,
		TimeDest(&rec.LastUpdated), TimeDest(&rec.FetchedAt), &rec.Source); err != nil {
		return store.Record{}, err
	}
	var err error
	if rec.Raw, err = d.unpack(rec.Raw); err != nil {
		return store.Record{}, fmt.Errorf("%s/%s version %s raw: %w", rec.Type, rec.ID, rec.VersionID, err)
	}
	if rec.Normalized, err = d.unpack(rec.Normalized); err != nil {
		return store.Record{}, fmt.Errorf("%s/%s version %s normalized: %w", rec.Type, rec.ID, rec.VersionID, err)
	}
	return rec, nil
}

// scanRecordRows is scanRecord for a row of rows. Where stored bodies
// are unpacked into new bytes anyway, they are read in place
// (sql.RawBytes) rather than copied first.
func (d *Dialect) scanRecordRows(rows *sql.Rows) (store.Record, error) {
	if d.Unpack == nil {
		return d.scanRecord(rows)
	}
	var rec store.Record
	var raw, norm sql.RawBytes
	if err := rows.Scan(&rec.Connection, &rec.Type, &rec.ID, &rec.VersionID, &rec.PatientID, &raw, &norm,
		TimeDest(&rec.LastUpdated), TimeDest(&rec.FetchedAt), &rec.Source); err != nil {
		return store.Record{}, err
	}
	var err error
	if rec.Raw, err = d.unpackOwned(raw); err != nil {
		return store.Record{}, fmt.Errorf("%s/%s version %s raw: %w", rec.Type, rec.ID, rec.VersionID, err)
	}
	if rec.Normalized, err = d.unpackOwned(norm); err != nil {
		return store.Record{}, fmt.Errorf("%s/%s version %s normalized: %w", rec.Type, rec.ID, rec.VersionID, err)
	}
	return rec, nil
}

// unpackOwned unpacks b, which the caller does not own: the result is
// copied when it is b itself (a body stored as it is).
func (d *Dialect) unpackOwned(b []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	out, err := d.unpack(b)
	if err == nil && len(out) > 0 && len(b) > 0 && &out[0] == &b[0] {
		out = bytes.Clone(out)
	}
	return out, err
}

// queryRecords runs a query of selectRecord's columns on Read.
func (db *DB) queryRecords(ctx context.Context, query string, args ...any) ([]store.Record, error) {
	rows, err := db.query(ctx, db.Read, query, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows, db.Dialect.scanRecordRows)
}

// Get implements store.Reader.
func (db *DB) Get(ctx context.Context, connection, typ, id string) (store.Record, error) {
	rec, err := db.Dialect.scanRecord(db.queryRow(ctx, db.Read, selectRecord+` WHERE c.connection=? AND c.type=? AND c.id=?`,
		connection, typ, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, fmt.Errorf("%s/%s on %s: %w", typ, id, connection, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("reading %s/%s: %w", typ, id, err)
	}
	return rec, nil
}

// GetVersion implements store.VersionReader.
func (db *DB) GetVersion(ctx context.Context, connection, typ, id, versionID string) (store.Record, error) {
	rec, err := db.Dialect.scanRecord(db.queryRow(ctx, db.Read, `SELECT v.connection, v.type, v.id, v.version_id,
		v.patient_id, v.raw, v.normalized, v.last_updated, v.fetched_at, v.source FROM resource_versions v
		WHERE v.connection=? AND v.type=? AND v.id=? AND v.version_id=?`, connection, typ, id, versionID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, fmt.Errorf("%s/%s version %s on %s: %w", typ, id, versionID, connection, store.ErrNotFound)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("reading %s/%s version %s: %w", typ, id, versionID, err)
	}
	return rec, nil
}

// ListByPatient implements store.Reader. Records come ordered by id.
func (db *DB) ListByPatient(ctx context.Context, connection, patientID, typ string) ([]store.Record, error) {
	recs, err := db.queryRecords(ctx, selectRecord+` WHERE c.connection=? AND c.patient_id=? AND c.type=? ORDER BY c.id`,
		connection, patientID, typ)
	if err != nil {
		return nil, fmt.Errorf("listing %s of a patient: %w", typ, err)
	}
	return recs, nil
}

// ListRawByPatient implements store.RawPatientLister.
func (db *DB) ListRawByPatient(ctx context.Context, connection, patientID, typ string) ([]store.Record, error) {
	recs, err := db.queryRecords(ctx, selectRawRecord+` WHERE c.connection=? AND c.patient_id=? AND c.type=? ORDER BY c.id`,
		connection, patientID, typ)
	if err != nil {
		return nil, fmt.Errorf("listing %s of a patient: %w", typ, err)
	}
	return recs, nil
}

// SearchPatients implements store.Reader.
func (db *DB) SearchPatients(ctx context.Context, q store.PatientQuery) ([]store.Record, error) {
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
		where = append(where, db.Dialect.Strpos+"(p.search, ?) > 0")
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
	recs, err := db.queryRecords(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("searching patients: %w", err)
	}
	return recs, nil
}

// FetchStates implements store.Reader.
func (db *DB) FetchStates(ctx context.Context, connection, patientID string) ([]store.FetchState, error) {
	rows, err := db.query(ctx, db.Read, `SELECT connection, patient_id, type, availability, count, fetched_at, detail
		FROM fetch_state WHERE connection=? AND patient_id=? ORDER BY type`, connection, patientID)
	if err != nil {
		return nil, fmt.Errorf("reading fetch state: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.FetchState, error) {
		var fs store.FetchState
		err := r.Scan(&fs.Connection, &fs.PatientID, &fs.Type, &fs.Availability, &fs.Count, TimeDest(&fs.FetchedAt), &fs.Detail)
		return fs, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading fetch state: %w", err)
	}
	return out, nil
}

// Stats implements store.Statter.
func (db *DB) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	rows, err := db.query(ctx, db.Read, `SELECT connection, type, count(*) FROM resources GROUP BY connection, type ORDER BY connection, type`)
	if err == nil {
		st.Resources, err = scanAll(rows, func(r *sql.Rows) (store.TypeCount, error) {
			var tc store.TypeCount
			err := r.Scan(&tc.Connection, &tc.Type, &tc.Count)
			return tc, err
		})
	}
	if err != nil {
		return st, fmt.Errorf("counting resources: %w", err)
	}
	if err := db.queryRow(ctx, db.Read, `SELECT count(*) FROM resource_versions`).Scan(&st.Versions); err != nil {
		return st, fmt.Errorf("counting versions: %w", err)
	}
	if err := db.queryRow(ctx, db.Read, `SELECT count(*) FROM quarantine`).Scan(&st.Quarantined); err != nil {
		return st, fmt.Errorf("counting quarantine: %w", err)
	}
	type last struct {
		conn string
		at   time.Time
	}
	rows, err = db.query(ctx, db.Read, `SELECT connection, max(fetched_at) FROM fetch_state GROUP BY connection`)
	var lasts []last
	if err == nil {
		lasts, err = scanAll(rows, func(r *sql.Rows) (last, error) {
			var l last
			err := r.Scan(&l.conn, TimeDest(&l.at))
			return l, err
		})
	}
	if err != nil {
		return st, fmt.Errorf("reading freshness: %w", err)
	}
	for _, l := range lasts {
		if st.LastFetched == nil {
			st.LastFetched = map[string]time.Time{}
		}
		st.LastFetched[l.conn] = l.at
	}
	return st, nil
}

// Quarantined implements store.QuarantineReader.
func (db *DB) Quarantined(ctx context.Context, connection string, limit int) ([]store.QuarantineItem, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.query(ctx, db.Read, `SELECT connection, type, resource_id, source, reason, raw, received_at
		FROM quarantine WHERE (?='' OR connection=?) ORDER BY seq DESC LIMIT ?`, connection, connection, limit)
	if err != nil {
		return nil, fmt.Errorf("listing quarantine: %w", err)
	}
	out, err := scanAll(rows, func(r *sql.Rows) (store.QuarantineItem, error) {
		var it store.QuarantineItem
		err := r.Scan(&it.Connection, &it.Type, &it.ResourceID, &it.Source, &it.Reason, &it.Raw, TimeDest(&it.ReceivedAt))
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing quarantine: %w", err)
	}
	return out, nil
}
