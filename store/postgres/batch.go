package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"ehrgate/store"
	"ehrgate/store/internal/sqlstore"
)

// Bulk ingest.
//
// WriteBatch stores a batch's records with the semantics of PutResources
// (sqlstore.Batch.Plan computes them from the stored state) in a handful
// of statements whatever the batch's size:
//
//  1. look up the current version of the batch's resources, without
//     locking, and claim the others: insert their current pointers, ON
//     CONFLICT DO NOTHING; the rows inserted are the resources not stored
//     yet, now locked by this transaction. When most keys of the previous
//     batch were new (an initial import) the claim comes first, for every
//     key, and only the keys it did not insert are looked up: each key is
//     then probed once instead of twice (the lookup of absent keys was
//     half the server's time of an initial import);
//  2. (the same lookup or claim, the other way round);
//  3. lock (FOR UPDATE, in key order) and read again those a record of
//     the batch changes: resources the batch leaves unchanged (a re-import)
//     are neither locked nor written;
//  4. look up the stored versions of those (new bytes under a stored
//     versionId are kept under a suffixed version);
//  5. COPY the plan's rows (bodies only for new version rows) into a
//     temporary staging table;
//  6. one merge statement: insert the version rows, upsert the current
//     pointers and the patient search keys from the staging table.
//
// Then the batch's quarantined lines, deletions and checkpoint, all in the
// same transaction.

// stageTable is the per-connection staging table of WriteBatch, emptied at
// each commit.
const stageTable = "ehrgate_batch_stage"

const createStage = `CREATE TEMP TABLE IF NOT EXISTS ` + stageTable + ` (
	ins          BOOLEAN NOT NULL, -- insert the version row
	cur          BOOLEAN NOT NULL, -- becomes the resource's current version
	pat          BOOLEAN NOT NULL, -- its search keys become the patient's
	connection   TEXT NOT NULL,
	type         TEXT NOT NULL,
	id           TEXT NOT NULL,
	version_id   TEXT NOT NULL,
	patient_id   TEXT NOT NULL,
	hash         BYTEA NOT NULL,
	raw          BYTEA,
	normalized   BYTEA,
	last_updated TIMESTAMPTZ,
	fetched_at   TIMESTAMPTZ,
	source       TEXT,
	search       TEXT,
	birth_date   TEXT
) ON COMMIT DELETE ROWS`

var stageColumns = []string{"ins", "cur", "pat", "connection", "type", "id", "version_id", "patient_id", "hash", "raw",
	"normalized", "last_updated", "fetched_at", "source", "search", "birth_date"}

const mergeStage = `WITH v AS (
	INSERT INTO resource_versions
		(connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source)
	SELECT connection, type, id, version_id, patient_id, hash, raw, normalized, last_updated, fetched_at, source
	FROM ` + stageTable + ` WHERE ins
	ON CONFLICT (connection, type, id, version_id) DO NOTHING
	RETURNING 1
), c AS (
	INSERT INTO resources (connection, type, id, version_id, hash, patient_id)
	SELECT connection, type, id, version_id, hash, patient_id FROM ` + stageTable + ` WHERE cur
	ON CONFLICT (connection, type, id) DO UPDATE SET version_id=excluded.version_id, hash=excluded.hash,
		patient_id=excluded.patient_id
	RETURNING 1
), p AS (
	INSERT INTO patients (connection, id, search, birth_date)
	SELECT connection, id, search, birth_date FROM ` + stageTable + ` WHERE pat
	ON CONFLICT (connection, id) DO UPDATE SET search=excluded.search, birth_date=excluded.birth_date
	RETURNING 1
)
SELECT (SELECT count(*) FROM v), (SELECT count(*) FROM c), (SELECT count(*) FROM p)`

// WriteBatch implements store.BatchWriter: the whole batch in one
// transaction, records through COPY and one merge (see above).
func (s *Store) WriteBatch(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	if err := sqlstore.ValidateBatch(b); err != nil {
		return store.BatchResult{}, err
	}
	var res store.BatchResult
	err := retry(ctx, func() error {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("starting batch: %w", err)
		}
		defer conn.Close()
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("starting batch: %w", err)
		}
		defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
		put := func(ctx context.Context, tx sqlstore.Querier, recs []store.Record) ([]store.Change, error) {
			return putBatch(ctx, conn, tx, recs, &s.newKeys)
		}
		if res, err = s.WriteBatchTx(ctx, tx, b, put); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("committing batch: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.BatchResult{}, err
	}
	return res, nil
}

// putBatch stores recs inside tx, a transaction on conn. newKeys says
// whether to claim before looking up (see the steps above); putBatch
// updates it for the next batch.
func putBatch(ctx context.Context, conn *sql.Conn, tx sqlstore.Querier, recs []store.Record, newKeys *atomic.Bool) ([]store.Change, error) {
	b := sqlstore.NewBatch(recs)
	first := make(map[sqlstore.ResourceKey]int, len(b.Keys)) // each resource's first record
	for i := len(recs) - 1; i >= 0; i-- {
		first[b.Key(i)] = i
	}

	current, claimed, err := lookUpAndClaim(ctx, tx, b, first, newKeys.Load())
	if err != nil {
		return nil, err
	}
	newKeys.Store(2*len(claimed) > len(b.Keys))
	// Lock what changes; a resource deleted meanwhile is claimed instead,
	// one created meanwhile is locked.
	var lock []sqlstore.ResourceKey
	for _, k := range b.Changing(current) {
		if !claimed[k] {
			lock = append(lock, k)
		}
	}
	for len(lock) > 0 {
		locked, err := currentOf(ctx, tx, lock, true)
		if err != nil {
			return nil, err
		}
		var gone []sqlstore.ResourceKey
		for _, k := range lock {
			if c, ok := locked[k]; ok {
				current[k] = c
			} else {
				delete(current, k)
				gone = append(gone, k)
			}
		}
		more, err := claim(ctx, tx, b, first, gone)
		if err != nil {
			return nil, err
		}
		lock = lock[:0]
		for _, k := range gone {
			if more[k] {
				claimed[k] = true
			} else {
				lock = append(lock, k)
			}
		}
	}

	versions, err := versionsOf(ctx, tx, b.Changing(current))
	if err != nil {
		return nil, err
	}
	plan := b.Plan(current, versions)
	// A claimed resource's pointer already names its first record's
	// version: no need to write it again when that is where it ends.
	var want [3]int64
	writes := plan.Writes[:0:0]
	for _, w := range plan.Writes {
		k := b.Key(w.Index)
		if w.Current && claimed[k] && first[k] == w.Index && w.Version == b.Versions[w.Index] {
			w.Current = false
		}
		if !w.Insert && !w.Current && !w.Patient {
			continue
		}
		for i, f := range []bool{w.Insert, w.Current, w.Patient} {
			if f {
				want[i]++
			}
		}
		writes = append(writes, w)
	}
	if len(writes) == 0 {
		return plan.Changes, nil
	}
	if err := stage(ctx, conn, tx, b, writes); err != nil {
		return nil, err
	}
	var got [3]int64
	if err := tx.QueryRowContext(ctx, mergeStage).Scan(&got[0], &got[1], &got[2]); err != nil {
		return nil, fmt.Errorf("merging batch: %w", err)
	}
	if got != want {
		return nil, fmt.Errorf("merging batch: wrote %d version rows, %d current pointers and %d patients' search keys, planned %v",
			got[0], got[1], got[2], want)
	}
	return plan.Changes, nil
}

// lookUpAndClaim returns the current version of the batch's stored
// resources and claims the others (claim), in that order, or, when
// claimFirst, claims every key first and looks up those it did not
// insert. A resource deleted between the two is in neither; the caller's
// locking loop claims it.
func lookUpAndClaim(ctx context.Context, tx sqlstore.Querier, b *sqlstore.Batch, first map[sqlstore.ResourceKey]int,
	claimFirst bool) (map[sqlstore.ResourceKey]sqlstore.Current, map[sqlstore.ResourceKey]bool, error) {
	if claimFirst {
		claimed, err := claim(ctx, tx, b, first, b.Keys)
		if err != nil {
			return nil, nil, err
		}
		var rest []sqlstore.ResourceKey
		for _, k := range b.Keys {
			if !claimed[k] {
				rest = append(rest, k)
			}
		}
		current, err := currentOf(ctx, tx, rest, false)
		return current, claimed, err
	}
	current, err := currentOf(ctx, tx, b.Keys, false)
	if err != nil {
		return nil, nil, err
	}
	var absent []sqlstore.ResourceKey
	for _, k := range b.Keys {
		if _, ok := current[k]; !ok {
			absent = append(absent, k)
		}
	}
	claimed, err := claim(ctx, tx, b, first, absent)
	return current, claimed, err
}

// oneShot, as the first argument of a query, has pgx plan it for the
// arguments at hand (an unnamed prepared statement) rather than cache it:
// a cached statement soon gets a generic plan, and a generic plan chosen
// for arrays of unknown length over a small table (the first batches into
// an empty store) joins them with a scan of the whole table, which made
// every later batch 20 times slower.
const oneShot = pgx.QueryExecModeExec

// claim inserts the current pointer (from its first record) of each of
// keys not stored, and returns those it inserted.
func claim(ctx context.Context, tx sqlstore.Querier, b *sqlstore.Batch, first map[sqlstore.ResourceKey]int,
	keys []sqlstore.ResourceKey) (map[sqlstore.ResourceKey]bool, error) {
	out := map[sqlstore.ResourceKey]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	sorted := append([]sqlstore.ResourceKey(nil), keys...)
	sqlstore.SortKeys(sorted)
	conns, types, ids := keyArrays(sorted)
	versions, patients := make([]string, len(sorted)), make([]string, len(sorted))
	hashes := make([][]byte, len(sorted))
	for j, k := range sorted {
		i := first[k]
		versions[j], hashes[j], patients[j] = b.Versions[i], b.Hashes[i], b.Recs[i].PatientID
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO resources (connection, type, id, version_id, hash, patient_id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[])
		ON CONFLICT (connection, type, id) DO NOTHING
		RETURNING connection, type, id`, oneShot, conns, types, ids, versions, hashes, patients)
	if err != nil {
		return nil, fmt.Errorf("storing new resources: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k sqlstore.ResourceKey
		if err := rows.Scan(&k.Connection, &k.Type, &k.ID); err != nil {
			return nil, fmt.Errorf("storing new resources: %w", err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storing new resources: %w", err)
	}
	return out, nil
}

// currentOf returns the current version of those of keys that are stored,
// locking their rows when lock is set.
func currentOf(ctx context.Context, tx sqlstore.Querier, keys []sqlstore.ResourceKey, lock bool) (map[sqlstore.ResourceKey]sqlstore.Current, error) {
	out := make(map[sqlstore.ResourceKey]sqlstore.Current, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	query := `SELECT r.connection, r.type, r.id, r.version_id, r.hash
		FROM unnest($1::text[], $2::text[], $3::text[]) AS k(connection, type, id)
		JOIN resources r ON r.connection=k.connection AND r.type=k.type AND r.id=k.id`
	if lock {
		query += ` ORDER BY r.connection, r.type, r.id FOR UPDATE OF r`
	}
	conns, types, ids := keyArrays(keys)
	rows, err := tx.QueryContext(ctx, query, oneShot, conns, types, ids)
	if err != nil {
		return nil, fmt.Errorf("looking up current versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k sqlstore.ResourceKey
		var c sqlstore.Current
		if err := rows.Scan(&k.Connection, &k.Type, &k.ID, &c.Version, &c.Hash); err != nil {
			return nil, fmt.Errorf("looking up current versions: %w", err)
		}
		out[k] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up current versions: %w", err)
	}
	return out, nil
}

// versionsOf returns the hash of every stored version of keys.
func versionsOf(ctx context.Context, tx sqlstore.Querier, keys []sqlstore.ResourceKey) (map[sqlstore.VersionKey][]byte, error) {
	out := make(map[sqlstore.VersionKey][]byte)
	if len(keys) == 0 {
		return out, nil
	}
	conns, types, ids := keyArrays(keys)
	rows, err := tx.QueryContext(ctx, `SELECT v.connection, v.type, v.id, v.version_id, v.hash
		FROM unnest($1::text[], $2::text[], $3::text[]) AS k(connection, type, id)
		JOIN resource_versions v ON v.connection=k.connection AND v.type=k.type AND v.id=k.id`,
		oneShot, conns, types, ids)
	if err != nil {
		return nil, fmt.Errorf("looking up versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k sqlstore.VersionKey
		var h []byte
		if err := rows.Scan(&k.Connection, &k.Type, &k.ID, &k.Version, &h); err != nil {
			return nil, fmt.Errorf("looking up versions: %w", err)
		}
		out[k] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up versions: %w", err)
	}
	return out, nil
}

func keyArrays(keys []sqlstore.ResourceKey) (conns, types, ids []string) {
	conns, types, ids = make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		conns[i], types[i], ids[i] = k.Connection, k.Type, k.ID
	}
	return conns, types, ids
}

// stage copies writes into the staging table, through conn's pgx
// connection (in tx, which runs on it).
func stage(ctx context.Context, conn *sql.Conn, tx sqlstore.Querier, b *sqlstore.Batch, writes []sqlstore.Write) error {
	if _, err := tx.ExecContext(ctx, createStage); err != nil {
		return fmt.Errorf("creating staging table: %w", err)
	}
	rows := pgx.CopyFromSlice(len(writes), func(i int) ([]any, error) {
		w := writes[i]
		r := &b.Recs[w.Index]
		row := []any{w.Insert, w.Current, w.Patient, r.Connection, r.Type, r.ID, w.Version, r.PatientID, b.Hashes[w.Index],
			nil, nil, nil, nil, nil, nil, nil}
		if w.Insert {
			row[9], row[10], row[11], row[12], row[13] = sqlstore.NonNil(r.Raw), r.Normalized, dialect.Time(r.LastUpdated),
				dialect.Time(r.FetchedAt), r.Source
		}
		if w.Patient {
			row[14], row[15] = r.Patient.SearchText(), r.Patient.BirthDate
		}
		return row, nil
	})
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("connection is a %T, not pgx's", dc)
		}
		n, err := c.Conn().CopyFrom(ctx, pgx.Identifier{stageTable}, stageColumns, rows)
		if err == nil && n != int64(len(writes)) {
			err = fmt.Errorf("copied %d rows of %d", n, len(writes))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("copying batch: %w", err)
	}
	return nil
}
